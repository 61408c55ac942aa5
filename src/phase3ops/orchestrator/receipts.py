"""Receipts: durable evidence that a Phase 4 trigger message really went out.

The `phase4-trigger-receipts` function is subscribed to the Phase 4 topic
(its own Eventarc trigger, so it sees every message published there) and
writes one document per trigger message, keyed by the message's stable
`trigger_id`, with `create()`. Nothing ever consumes a receipt: a recovering
orchestrator reads them just before the conditional write that decides
whether it may re-publish, so two recoverers, the reconciliation and a human all see the
same evidence.

A second message with a trigger_id that already has a receipt is a
duplicate Phase 4 received: it is logged at ERROR (`phase4_trigger_duplicate`,
alerted on) and its message id is kept on the receipt. A message that is not
one of this pipeline's triggers (no trigger_id attribute, another
pipeline's id, a malformed date) is logged and skipped; it never blocks the
receipts of the others.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from phase3ops.orchestrator.messages import BadMessage, parse_delivery

log = logging.getLogger("phase3ops.receipts")

RECORDED = "recorded"
REDELIVERED = "redelivered"  # the same message again: nothing to do
DUPLICATE_PUBLISH = "duplicate_publish"  # a second message for the same trigger_id reached Phase 4
SKIPPED = "skipped"  # not a trigger of this pipeline


@dataclass(frozen=True)
class ReceiptOutcome:
    outcome: str
    trigger_id: str | None = None
    message_id: str | None = None
    reason: str = ""


class ReceiptRecorder:
    def __init__(self, client: firestore.Client, collection: str, pipeline_name: str):
        self._client = client
        self._collection = client.collection(collection)
        self._prefix = f"{pipeline_name}:"

    def document(self, trigger_id: str):
        return self._collection.document(trigger_id)

    def handle_event(self, event_data: Any) -> ReceiptOutcome:
        try:
            delivery = parse_delivery(event_data)
        except BadMessage as bad:
            return self._log(ReceiptOutcome(SKIPPED, reason=f"not a Pub/Sub message: {bad}"), logging.WARNING)
        attributes = delivery.attributes
        trigger_id, game_date = attributes.get("trigger_id"), attributes.get("game_date")
        if not trigger_id or not trigger_id.startswith(self._prefix):
            return self._log(
                ReceiptOutcome(SKIPPED, trigger_id, delivery.message_id, f"no trigger_id of this pipeline ({self._prefix}...)"),
                logging.WARNING,
            )
        try:
            dt.date.fromisoformat(game_date or "")
        except ValueError:
            return self._log(
                ReceiptOutcome(SKIPPED, trigger_id, delivery.message_id, f"game_date attribute {game_date!r} is not a date"),
                logging.WARNING,
            )
        receipt = {
            "trigger_id": trigger_id,
            "game_date": game_date,
            "source_table": attributes.get("source_table"),
            "message_id": delivery.message_id,
            "publish_time": delivery.publish_time,
            "recorded_at": firestore.SERVER_TIMESTAMP,
            "duplicate_message_ids": [],
        }
        ref = self.document(trigger_id)
        try:
            ref.create(receipt)
            return self._log(ReceiptOutcome(RECORDED, trigger_id, delivery.message_id), logging.INFO)
        except gexc.AlreadyExists:
            pass
        existing = ref.get().to_dict()
        if existing["message_id"] == delivery.message_id or delivery.message_id in existing.get("duplicate_message_ids", []):
            return self._log(ReceiptOutcome(REDELIVERED, trigger_id, delivery.message_id), logging.INFO)
        ref.update({"duplicate_message_ids": firestore.ArrayUnion([delivery.message_id])})
        return self._log(
            ReceiptOutcome(
                DUPLICATE_PUBLISH, trigger_id, delivery.message_id, f"message {existing['message_id']} already carried {trigger_id}"
            ),
            logging.ERROR,
        )

    def _log(self, outcome: ReceiptOutcome, level: int) -> ReceiptOutcome:
        event = "phase4_trigger_duplicate" if outcome.outcome == DUPLICATE_PUBLISH else "phase4_trigger_receipt"
        log.log(
            level,
            f"{outcome.outcome}: {outcome.trigger_id or '-'} {outcome.reason}".strip(),
            extra={"event": event, "outcome": outcome.outcome, "trigger_id": outcome.trigger_id, "message_id": outcome.message_id, "reason": outcome.reason},
        )
        return outcome


def receipts_between(client: firestore.Client, collection: str, first: dt.date, last: dt.date) -> dict[str, dict[str, Any]]:
    """Every receipt of a date range by trigger_id (for the checks and `explain`)."""
    query = client.collection(collection).where(
        filter=firestore.FieldFilter("game_date", ">=", first.isoformat())
    ).where(filter=firestore.FieldFilter("game_date", "<=", last.isoformat()))
    return {snapshot.id: snapshot.to_dict() for snapshot in query.stream()}
