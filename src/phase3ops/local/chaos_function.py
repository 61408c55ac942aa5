"""The orchestrator function as the local chaos game day serves it.

Exactly the production handler, with one fault it can be armed with: when
the file named by $PHASE3OPS_CHAOS_ARMED exists, the next instance to claim a
trigger dies (no cleanup, no answer) between the claim and the publish, as an
instance killed by the platform would. The file is consumed, so it happens
once per arming. Never deployed: the cloud bundle is functions/orchestrator.
"""

from __future__ import annotations

import os
from pathlib import Path

import functions_framework

from phase3ops.orchestrator import entrypoint

ARMED_ENV = "PHASE3OPS_CHAOS_ARMED"


def _arm(orchestrator) -> None:
    publish = orchestrator.publisher.publish

    def die_before_publishing(payload):
        armed = os.environ.get(ARMED_ENV)
        if armed and Path(armed).exists():
            Path(armed).unlink()
            os._exit(137)
        return publish(payload)

    orchestrator.publisher.publish = die_before_publishing
    orchestrator.chaos_armed = True


@functions_framework.cloud_event
def handle_phase3_completion(cloud_event) -> None:
    orchestrator = entrypoint.orchestrator_instance()
    if not getattr(orchestrator, "chaos_armed", False):
        _arm(orchestrator)
    orchestrator.handle_event(cloud_event.data)
