"""Phase 5, federate: one logical cluster across the job's nodes (Liqo)."""
