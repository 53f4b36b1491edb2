"""Phase 3, provision: the kind cluster, created through a container runtime provider."""
