"""Messages acknowledged without being processed, kept so that nothing goes missing unrecorded.

Two kinds, one document each in the rejected collection:
- **rejected**: a message that can never be valid (bad JSON, an unknown
  processor, a value Firestore would refuse). Stored on first sight.
- **poison**: a message whose handling kept failing with an error that a
  redelivery does not cure (a bug, a value only a later layer refuses).
  Its failures are counted on its document; at `POISON_AFTER_FAILURES` it
  is stored as poison and acknowledged, and the handler logs `poisoned` at
  ERROR, which pages (alerts/orchestrator-poison-message.yaml). Without the
  bound, Pub/Sub would redeliver it for the subscription's retention
  (Eventarc: 24 h) with a traceback each time, then drop it unrecorded.

What is stored is bounded (input_bounds.py): the first 64 KiB of the bytes
with their full length and SHA-256, a reason of at most 1,000 characters,
attributes as strings. The document id is the Pub/Sub message id when that
is a safe id, else a hash of it (or of the whole event when there is no
usable id), so a redelivery lands on the same document.

Transient failures never count towards poison: a message that may succeed
later is always retried (`is_transient`).
"""

from __future__ import annotations

import datetime as dt
import json
import reprlib
from collections.abc import Mapping
from typing import Any, cast

from google.api_core import exceptions as gexc
from google.cloud import firestore

from phase3ops.input_bounds import OutOfBounds, document_id, load_json, printable, sha256_hex, stored_bytes
from phase3ops.input_bounds import game_date as bounded_game_date
from phase3ops.rejected_kinds import FAILING, POISON, REJECTED

POISON_AFTER_FAILURES = 5

# Errors a redelivery may cure: Firestore or Pub/Sub briefly unavailable, slow or contended.
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.Aborted,
    gexc.GatewayTimeout,
    gexc.Unknown,
    gexc.Cancelled,
    ConnectionError,
    TimeoutError,
)


def is_transient(error: BaseException, expected: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether a redelivery may succeed: `expected` adds the handler's own retry signals."""
    return isinstance(error, (*_TRANSIENT, *expected))


class RejectedMessages:
    def __init__(self, client: firestore.Client, collection: str, handler: str):
        self._collection = client.collection(collection)
        self.handler = handler  # which function refused it: the same collection serves several

    def store(
        self,
        raw: bytes,
        reason: str,
        field: str,
        message_id: str | None = None,
        published_at: dt.datetime | None = None,
        attributes: Mapping[str, Any] | None = None,
        kind: str = REJECTED,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Keep what we acknowledge without processing; returns the document id."""
        ref = self._collection.document(self.document_id(message_id, raw))
        ref.set(
            {
                "kind": kind,
                "handler": self.handler,
                "message_id": printable(message_id, 256) if message_id is not None else None,
                "published_at": published_at,
                "attributes": _bounded_attributes(attributes),
                **stored_bytes(raw),
                "reason": printable(reason, 1000),
                "field": printable(field, 200),
                "rejected_at": firestore.SERVER_TIMESTAMP,
                **dict(extra or {}),
                **what_it_claims(raw),
            },
            merge=True,  # keeps the failure count of a message stored as poison
        )
        return ref.id

    def count_failure(self, message_id: str | None, raw: bytes, error: BaseException) -> int:
        """Count one more failed handling of the message; returns how many there were so far."""
        # A sync collection's documents are sync; the library annotates the shared base class.
        ref = cast(firestore.DocumentReference, self._collection.document(self.document_id(message_id, raw)))
        ref.set(
            {
                "kind": FAILING,
                "handler": self.handler,
                "message_id": printable(message_id, 256) if message_id is not None else None,
                "failures": firestore.Increment(1),
                "last_error": printable(f"{type(error).__name__}: {error}", 1000),
                "last_failed_at": firestore.SERVER_TIMESTAMP,
            },
            merge=True,
        )
        return int(ref.get(field_paths=["failures"]).get("failures") or 0)

    def for_date(self, game_date: dt.date) -> list[dict[str, Any]]:
        """The rejected and poison messages that name this game date (as far as they could be read)."""
        query = self._collection.where(filter=firestore.FieldFilter("game_date", "==", game_date.isoformat()))
        # A query yields only documents that exist, so every to_dict() is a dict.
        return [data for snapshot in query.stream() if (data := snapshot.to_dict()) is not None]

    def refused_between(self, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        """Every message this collection stored as rejected or poison in [start, end], by any handler
        (one range on one field: no composite index); a message still failing is not refused yet."""
        query = self._collection.where(filter=firestore.FieldFilter("rejected_at", ">=", start)).where(
            filter=firestore.FieldFilter("rejected_at", "<=", end)
        )
        found = (data for snapshot in query.stream() if (data := snapshot.to_dict()) is not None)
        return [data for data in found if data.get("kind") in (REJECTED, POISON)]

    @staticmethod
    def document_id(message_id: str | None, raw: bytes) -> str:
        if message_id:
            return document_id(message_id)
        return f"event-sha256-{sha256_hex(raw)}"


def _bounded_attributes(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    if not isinstance(attributes, Mapping):
        return {} if attributes is None else {"<not an object>": printable(repr(attributes)[:1000], 1000)}
    return {
        printable(str(key), 256) or "<empty>": printable(str(value), 1024)
        for key, value in list(attributes.items())[:100]
    }


def what_it_claims(raw: bytes) -> dict[str, str]:
    """The game date and processor a rejected message names, when they can be read, so the
    story of a date (`phase3ops explain`) includes the messages that were refused for it."""
    try:
        payload = load_json(raw)
    except OutOfBounds:
        return {}
    if not isinstance(payload, dict):
        return {}
    claims: dict[str, str] = {}
    day = payload.get("game_date") or payload.get("analysis_date")
    try:
        claims["game_date"] = bounded_game_date(day).isoformat()
    except OutOfBounds:
        pass
    name = payload.get("processor_name") or payload.get("output_table")
    if isinstance(name, str):
        claims["processor"] = printable(name, 200)
    return claims


def event_bytes(event_data: Any) -> bytes:
    """The bytes of a delivery that could not even be unwrapped, to store and hash."""
    try:
        return json.dumps(event_data, default=repr, ensure_ascii=True).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        # Repr() takes its limits as keywords only from Python 3.12 on.
        shortener = reprlib.Repr()
        shortener.maxlevel = 8
        shortener.maxstring = 4000
        shortener.maxother = 4000
        return shortener.repr(event_data).encode("utf-8", "backslashreplace")
