"""The orchestrator function as the local chaos game day serves it.

Exactly the production handler, with one fault it can be armed with: when
the file named by $PHASE3OPS_CHAOS_ARMED exists, the next instance to claim a
trigger dies (no cleanup, no answer) half-way through the fan-out, after 2
of its Phase 4 messages went out, as an instance killed by the platform
would. The recovery then finds those 2 by their receipts and publishes only
the rest. The file is consumed, so it happens once per arming. Never
deployed: the cloud bundle is functions/orchestrator.
"""

from __future__ import annotations

import os
from pathlib import Path

import functions_framework

from phase3ops.orchestrator import entrypoint

ARMED_ENV = "PHASE3OPS_CHAOS_ARMED"


SENT_BEFORE_DYING = 2


def _arm(orchestrator) -> None:
    publish_all = orchestrator.publisher.publish_all

    def die_half_way(messages):
        armed = os.environ.get(ARMED_ENV)
        if armed and Path(armed).exists():
            Path(armed).unlink()
            publish_all(messages[:SENT_BEFORE_DYING])
            os._exit(137)
        return publish_all(messages)

    orchestrator.publisher.publish_all = die_half_way
    orchestrator.chaos_armed = True


@functions_framework.cloud_event
def handle_phase3_completion(cloud_event) -> None:
    orchestrator = entrypoint.orchestrator_instance()
    if not getattr(orchestrator, "chaos_armed", False):
        _arm(orchestrator)
    orchestrator.handle_event(cloud_event.data)
