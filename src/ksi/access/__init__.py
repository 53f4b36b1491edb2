"""Phase 4, access: readiness, the admin service account, its token and the API URL."""
