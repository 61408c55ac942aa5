"""The Phase 3 -> Phase 4 orchestrator (Cloud Function) and the library it runs."""
