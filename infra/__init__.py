"""The Pulumi program that deploys the Phase 3 -> Phase 4 hand-off (entry point: __main__.py)."""
