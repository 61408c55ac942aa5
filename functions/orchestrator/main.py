"""Source root of the `phase3-to-phase4-orchestrator` and `phase4-trigger-receipts` Cloud Functions.

The deploy bundle places the `phase3ops` package and `pipeline.yaml` next to
this file; Cloud Functions runs `handle_phase3_completion` for every
completion message and `record_phase4_trigger_receipt` for every message on
the Phase 4 topic (one bundle, two entry points, two functions).
"""

from phase3ops.orchestrator.entrypoint import handle_phase3_completion, record_phase4_trigger_receipt

__all__ = ["handle_phase3_completion", "record_phase4_trigger_receipt"]
