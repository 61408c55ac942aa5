"""The orchestrator and receipts functions as the local chaos game day serves them.

Exactly the production handlers, each with one fault it can be armed with
(by a file the chaos day writes, consumed so it happens once per arming):

- the orchestrator ($PHASE3OPS_CHAOS_ARMED): the next instance to claim a
  trigger dies (no cleanup, no answer) half-way through the fan-out, after 2
  of its Phase 4 messages went out, as an instance killed by the platform
  would. The recovery then finds those 2 by their receipts and publishes
  only the rest;
- the receipts recorder ($PHASE3OPS_CHAOS_RECEIPT_LATE, holding a game
  date): the receipt of that date's first Phase 4 message fails, and Pub/Sub
  redelivers it, until the claim's lease has run out and two seconds more.
  Recovery must wait for it (the receipt grace) instead of sending that
  message again.

Never deployed: the cloud bundle is functions/orchestrator.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import functions_framework

from phase3ops.local.state import ARMED_ENV, RECEIPT_LATE_ENV
from phase3ops.orchestrator import entrypoint
from phase3ops.spec.pipeline import load_pipeline_spec

SENT_BEFORE_DYING = 2
RECEIPT_LATE_BEYOND_LEASE_SECONDS = 2.0

_first_attempt: dict[str, float] = {}
_first_attempt_lock = threading.Lock()


def _arm(orchestrator) -> None:
    publish_all = orchestrator.publisher.publish_all

    def die_half_way(messages, *args, **kwargs):
        armed = os.environ.get(ARMED_ENV)
        if armed and Path(armed).exists():
            Path(armed).unlink()
            publish_all(messages[:SENT_BEFORE_DYING], *args, **kwargs)
            os._exit(137)
        return publish_all(messages, *args, **kwargs)

    orchestrator.publisher.publish_all = die_half_way
    orchestrator.chaos_armed = True


@functions_framework.cloud_event
def handle_phase3_completion(cloud_event) -> None:
    orchestrator = entrypoint.orchestrator_instance()
    if not getattr(orchestrator, "chaos_armed", False):
        _arm(orchestrator)
    orchestrator.handle_event(cloud_event.data)


class ReceiptLate(RuntimeError):
    """The chaos day's late receipt: this delivery fails, so Pub/Sub delivers it again."""


@functions_framework.errorhandler(ReceiptLate)
def _receipt_late(error: ReceiptLate):
    return f"chaos: {error}", 503


@functions_framework.cloud_event
def record_phase4_trigger_receipt(cloud_event) -> None:
    recorder = entrypoint.receipt_recorder_instance()  # first: it configures the JSON log lines
    _hold_back_the_armed_receipt(cloud_event.data)
    recorder.handle_event(cloud_event.data)


def _hold_back_the_armed_receipt(event_data) -> None:
    armed = Path(os.environ.get(RECEIPT_LATE_ENV) or "/nonexistent")
    if not armed.exists():
        return
    attributes = (event_data.get("message") or {}).get("attributes") or {}
    spec = load_pipeline_spec()
    if (
        attributes.get("game_date") != armed.read_text().strip()
        or attributes.get("source_table") != spec.processors[0].output_table
    ):
        return
    trigger_id = attributes.get("trigger_id", "")
    with _first_attempt_lock:
        first = _first_attempt.setdefault(trigger_id, time.monotonic())
    late_by = spec.orchestrator.claim_lease_seconds + RECEIPT_LATE_BEYOND_LEASE_SECONDS
    if time.monotonic() - first < late_by:
        time.sleep(0.5)  # Eventarc's backoff, shortened
        message = f"the receipt of {trigger_id} is held back for {late_by:.0f} s (past the claim's lease)"
        logging.getLogger("phase3ops.chaos").warning("chaos: %s", message)
        raise ReceiptLate(message)
    armed.unlink(missing_ok=True)
