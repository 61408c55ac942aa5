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
pipeline's id, an id that cannot be a document id, a malformed date) is
logged and skipped: it is Phase 4's message, not one of ours, and its own
subscription still delivers it; it never blocks the receipts of the others.
A message of ours whose recording keeps failing with an error a redelivery
does not cure is stored as poison in the rejected collection and
acknowledged, as the orchestrator does (rejected_messages.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from phase3ops.input_bounds import OutOfBounds, is_document_id, printable
from phase3ops.input_bounds import game_date as bounded_game_date
from phase3ops.orchestrator.messages import BadMessage, Delivery, parse_delivery
from phase3ops.rejected_kinds import POISON
from phase3ops.rejected_messages import POISON_AFTER_FAILURES, RejectedMessages, is_transient

log = logging.getLogger("phase3ops.receipts")

RECORDED = "recorded"
REDELIVERED = "redelivered"  # the same message again: nothing to do
DUPLICATE_PUBLISH = "duplicate_publish"  # a second message for the same trigger_id reached Phase 4
SKIPPED = "skipped"  # not a trigger of this pipeline
POISONED = "poisoned"  # kept failing past the bound: stored as poison and acknowledged


@dataclass(frozen=True)
class ReceiptOutcome:
    outcome: str
    trigger_id: str | None = None
    message_id: str | None = None
    reason: str = ""


class ReceiptRecorder:
    def __init__(
        self, client: firestore.Client, collection: str, pipeline_name: str, rejected_collection: str | None = None
    ):
        self._client = client
        self._collection = client.collection(collection)
        self._prefix = f"{pipeline_name}:"
        self._poison = (
            RejectedMessages(client, rejected_collection, handler="phase4-trigger-receipts")
            if rejected_collection
            else None
        )

    def document(self, trigger_id: str):
        return self._collection.document(trigger_id)

    def handle_event(self, event_data: Any) -> ReceiptOutcome:
        try:
            delivery = parse_delivery(event_data)
        except BadMessage as bad:
            return self._log(ReceiptOutcome(SKIPPED, reason=f"not a Pub/Sub message: {bad}"), logging.WARNING)
        try:
            return self._record(delivery)
        except Exception as error:
            if self._poison is None or is_transient(error):
                raise
            failures = self._poison.count_failure(delivery.message_id, delivery.raw_data, error)
            if failures < POISON_AFTER_FAILURES:
                raise
            reason = f"failed {failures} times, last with {type(error).__name__}: {error}"
            self._poison.store(
                delivery.raw_data,
                reason,
                "",
                delivery.message_id,
                delivery.publish_time,
                delivery.attributes,
                kind=POISON,
            )
            log.error(
                "poison message %s: %s", delivery.message_id, reason, exc_info=error, extra={"event": "poison_message"}
            )
            return self._log(
                ReceiptOutcome(POISONED, delivery.attributes.get("trigger_id"), delivery.message_id, reason),
                logging.ERROR,
            )

    def _record(self, delivery: Delivery) -> ReceiptOutcome:
        receipt = receipt_of(delivery, self._prefix)
        if isinstance(receipt, ReceiptOutcome):
            return self._log(receipt, logging.WARNING)
        trigger_id = receipt["trigger_id"]
        ref = self.document(trigger_id)
        try:
            ref.create(receipt)
            return self._log(ReceiptOutcome(RECORDED, trigger_id, delivery.message_id), logging.INFO)
        except gexc.AlreadyExists:
            pass
        existing = ref.get().to_dict()
        if existing["message_id"] == delivery.message_id or delivery.message_id in existing.get(
            "duplicate_message_ids", []
        ):
            return self._log(ReceiptOutcome(REDELIVERED, trigger_id, delivery.message_id), logging.INFO)
        ref.update({"duplicate_message_ids": firestore.ArrayUnion([delivery.message_id])})
        return self._log(
            ReceiptOutcome(
                DUPLICATE_PUBLISH,
                trigger_id,
                delivery.message_id,
                f"message {existing['message_id']} already carried {trigger_id}",
            ),
            logging.ERROR,
        )

    def _log(self, outcome: ReceiptOutcome, level: int) -> ReceiptOutcome:
        event = "phase4_trigger_duplicate" if outcome.outcome == DUPLICATE_PUBLISH else "phase4_trigger_receipt"
        log.log(
            level,
            f"{outcome.outcome}: {outcome.trigger_id or '-'} {outcome.reason}".strip(),
            extra={
                "event": event,
                "outcome": outcome.outcome,
                "trigger_id": outcome.trigger_id,
                "message_id": outcome.message_id,
                "reason": outcome.reason,
            },
        )
        return outcome


def receipt_of(delivery: Delivery, prefix: str) -> dict[str, Any] | ReceiptOutcome:
    """The receipt a Phase 4 message leaves, or SKIPPED when it is not one of this pipeline's
    triggers (pure: every value checked against what Firestore and a log line take)."""
    attributes = delivery.attributes
    trigger_id, game_date = attributes.get("trigger_id"), attributes.get("game_date")
    if not trigger_id or not trigger_id.startswith(prefix) or not is_document_id(trigger_id):
        shown = printable(trigger_id, 120) if trigger_id else None
        return ReceiptOutcome(SKIPPED, shown, delivery.message_id, f"no trigger_id of this pipeline ({prefix}...)")
    try:
        bounded_game_date(game_date, "game_date attribute")
    except OutOfBounds as out:
        return ReceiptOutcome(SKIPPED, trigger_id, delivery.message_id, out.reason)
    return {
        "trigger_id": trigger_id,
        "game_date": game_date,
        "source_table": printable(attributes.get("source_table") or "", 300) or None,
        "message_id": delivery.message_id,
        "publish_time": delivery.publish_time,
        "recorded_at": firestore.SERVER_TIMESTAMP,
        "duplicate_message_ids": [],
    }
