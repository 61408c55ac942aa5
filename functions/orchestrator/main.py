"""Source root of the `phase3-to-phase4-orchestrator` Cloud Function.

The deploy bundle places the `phase3ops` package and `pipeline.yaml` next to
this file; Cloud Functions runs `handle_phase3_completion` for every
completion message.
"""

from phase3ops.orchestrator.entrypoint import handle_phase3_completion

__all__ = ["handle_phase3_completion"]
