"""The whole pipeline on one machine: emulators, the orchestrator, the analytics service, a game day."""
