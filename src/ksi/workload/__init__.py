"""Phase 6, run: the user's workload script (or manifests) against the cluster."""
