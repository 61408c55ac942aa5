"""Cloud Function gen2 entry points, one CloudEvent per Pub/Sub message.

- `handle_phase3_completion` (function `phase3-to-phase4-orchestrator`, on the
  completion topic): record the completion, trigger Phase 4 when ready.
- `record_phase4_trigger_receipt` (function `phase4-trigger-receipts`, on the
  Phase 4 topic): record the evidence that a trigger message went out.

Both deploy with the Eventarc trigger `google.cloud.pubsub.topic.v1.messagePublished`
and RETRY_POLICY_RETRY: returning acknowledges the message, raising makes
Pub/Sub deliver it again.
"""

from __future__ import annotations

import threading

import functions_framework

from phase3ops.logs import configure_json_logging
from phase3ops.orchestrator.factory import build_orchestrator, build_receipt_recorder
from phase3ops.orchestrator.orchestrator import Orchestrator, RetryLater
from phase3ops.orchestrator.receipts import ReceiptRecorder
from phase3ops.spec.pipeline import load_pipeline_spec

_orchestrator: Orchestrator | None = None
_recorder: ReceiptRecorder | None = None
# A cold start's first requests arrive on several threads at once: one builds, the others wait for it.
_building = threading.Lock()


def orchestrator_instance() -> Orchestrator:
    # Built on first use, not at import: a missing setting then fails the
    # request (and is retried) with a message naming it, instead of crashing
    # the import in a way Cloud Functions reports as a generic startup error.
    global _orchestrator
    if _orchestrator is None:
        with _building:
            if _orchestrator is None:
                configure_json_logging()
                _orchestrator = build_orchestrator(load_pipeline_spec())
    return _orchestrator


def receipt_recorder_instance() -> ReceiptRecorder:
    global _recorder
    if _recorder is None:
        with _building:
            if _recorder is None:
                configure_json_logging()
                _recorder = build_receipt_recorder(load_pipeline_spec())
    return _recorder


@functions_framework.errorhandler(RetryLater)
def ask_for_redelivery(error: RetryLater):
    """An expected retry (the decision is logged at WARNING): answer non-2xx so Pub/Sub
    redelivers, without Flask logging an ERROR traceback that would page someone."""
    return f"retry later: {error}", 503


@functions_framework.cloud_event
def handle_phase3_completion(cloud_event) -> None:
    orchestrator_instance().handle_event(cloud_event.data)


@functions_framework.cloud_event
def record_phase4_trigger_receipt(cloud_event) -> None:
    receipt_recorder_instance().handle_event(cloud_event.data)
