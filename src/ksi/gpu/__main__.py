"""`python3 -m ksi.gpu --report | --json`: what KSI's GPU discovery finds on this node."""

from ksi.gpu.describe import main

raise SystemExit(main())
