"""Phase 2, plan: names, ports, subnets, paths and the kind config, decided before anything runs."""
