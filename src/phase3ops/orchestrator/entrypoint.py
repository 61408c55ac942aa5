"""Cloud Function gen2 entry point: one CloudEvent per Pub/Sub completion message.

Deployed with the Eventarc trigger `google.cloud.pubsub.topic.v1.messagePublished`
and RETRY_POLICY_RETRY: returning acknowledges the message, raising makes
Pub/Sub deliver it again.
"""

from __future__ import annotations

import functions_framework

from phase3ops.logs import configure_json_logging
from phase3ops.orchestrator.factory import build_orchestrator
from phase3ops.orchestrator.orchestrator import Orchestrator
from phase3ops.spec.pipeline import load_pipeline_spec

_orchestrator: Orchestrator | None = None


def orchestrator_instance() -> Orchestrator:
    # Built on first use, not at import: a missing setting then fails the
    # request (and is retried) with a message naming it, instead of crashing
    # the import in a way Cloud Functions reports as a generic startup error.
    global _orchestrator
    if _orchestrator is None:
        configure_json_logging()
        _orchestrator = build_orchestrator(load_pipeline_spec())
    return _orchestrator


@functions_framework.cloud_event
def handle_phase3_completion(cloud_event) -> None:
    orchestrator_instance().handle_event(cloud_event.data)
