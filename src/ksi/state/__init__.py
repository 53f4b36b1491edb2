"""What KSI keeps on disk about runs: the run record, the shared registry (below the run and
below `ksi ls`/`ksi gc`, which all read the same format)."""
