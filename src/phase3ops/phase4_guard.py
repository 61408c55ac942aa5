"""Phase 4's duplicate guard: one run of Phase 4's work per (trigger_id, source_table).

Pub/Sub has no idempotent publish, so no producer can promise that a trigger
reaches its topic once: a publish whose bytes were delayed in the network
can land after its sender gave up, and a message can be delivered to the
consumer again. This guard is the last link, installed by Phase 4's owners
in their push handler. It keys a marker document by the message's stable
`trigger_id` and `source_table` (which the orchestrator puts in every
message's body and attributes):

- the first delivery creates the marker (`running`, with a lease) and does
  the work; when the handler answers 2xx the marker becomes `done`;
- another message with the same key finds the marker and is answered 200
  without doing anything (`duplicate`): acknowledged, never retried;
- a redelivery of the very message being worked on is answered 409, so
  Pub/Sub keeps it until the work finishes: acknowledging it would lose the
  trigger if the worker then crashed;
- a worker that fails (raises, or answers non-2xx) drops its marker, so the
  retry does the work; a worker that crashes leaves its marker to its lease
  (`lease_seconds`, default 600 s: the longest a push request can run), and
  the next delivery after that takes the work over.

A crash mid-work therefore never loses the trigger; it can make the work run
a second time, after the lease, never two at once. That is the safe side for
Phase 4: it writes its tables by MERGE keyed by the rows' own keys, so a
second run over the same inputs leaves the same rows. (Marking the trigger
done before the work would never run it twice, and would lose it on a crash.)

A message without a `trigger_id` (the pipeline this one replaces sends none)
passes through unguarded.

Install, in the precompute service's module (two lines; `flask` and
`google-cloud-firestore` are what it already uses):

    from phase4_guard import guard_triggers          # this file, vendored or from phase3ops

    @app.route("/process", methods=["POST"])
    @guard_triggers()                                # markers in Firestore's phase4_trigger_guard
    def process(): ...

This module imports nothing else from phase3ops, so it can be copied as it is.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("phase4_guard")

GUARD_COLLECTION = "phase4_trigger_guard"
LEASE_SECONDS = 600.0  # Pub/Sub's longest push request (its maximum ack deadline)


class Verdict(str, enum.Enum):
    RUN = "run"  # this delivery does the work
    DUPLICATE = "duplicate"  # done, or being done for another message: answer 200, do nothing
    IN_PROGRESS = "in_progress"  # this very message is being worked on: answer 409, Pub/Sub retries it
    UNGUARDED = "unguarded"  # no trigger_id to key on: the work runs as before


@dataclass(frozen=True)
class TriggerKey:
    trigger_id: str
    source_table: str
    game_date: str | None = None

    @property
    def document_id(self) -> str:
        # Any trigger id and table name, of any length or characters, make a valid document id.
        return hashlib.sha256(f"{self.trigger_id}\n{self.source_table}".encode("utf-8", "surrogatepass")).hexdigest()


def trigger_key(envelope: Any) -> tuple[TriggerKey | None, str | None]:
    """The key and the Pub/Sub message id of a push envelope; no key when the message carries
    no trigger_id (the body's, else the attribute's) or no source_table."""
    message = envelope.get("message") if isinstance(envelope, Mapping) else None
    if not isinstance(message, Mapping):
        return None, None
    message_id = message.get("messageId") or message.get("message_id")
    raw_attributes = message.get("attributes")
    attributes = raw_attributes if isinstance(raw_attributes, Mapping) else {}
    try:
        body = json.loads(base64.b64decode(message.get("data") or "", validate=True))
    except (binascii.Error, ValueError, TypeError, RecursionError):  # RecursionError: JSON nested too deeply to read
        body = {}
    body = body if isinstance(body, Mapping) else {}
    trigger_id = _text(body.get("trigger_id")) or _text(attributes.get("trigger_id"))
    table = _text(body.get("source_table")) or _text(attributes.get("source_table")) or "date"
    if not trigger_id:
        return None, _text(message_id)
    date = _text(body.get("analysis_date")) or _text(body.get("game_date")) or _text(attributes.get("game_date"))
    return TriggerKey(trigger_id, table, date), _text(message_id)


MAX_KEY_CHARS = 500  # longer ids are none of the orchestrator's, and a marker must stay small


def _text(value: Any) -> str | None:
    """A key part the marker can store and a log line can hold: a short, valid UTF-8 string.
    Anything else counts as absent, so a hostile message passes unguarded to the handler,
    which refuses it, instead of failing the marker's write on every redelivery."""
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_CHARS:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON \udc00 escape
        return None
    return value


@dataclass
class Ticket:
    """One delivery's part in a trigger's work; `done()` or `abandon()` when the work ends."""

    verdict: Verdict
    key: TriggerKey | None
    message_id: str | None
    _guard: TriggerGuard | None = None
    _update_time: Any = None  # the marker's version after this delivery took it

    @property
    def runs(self) -> bool:
        return self.verdict in (Verdict.RUN, Verdict.UNGUARDED)

    def done(self) -> None:
        if self.verdict is Verdict.RUN:
            assert self._guard is not None  # the guard hands out every RUN ticket
            self._guard._finish(self, "done")

    def abandon(self) -> None:
        if self.verdict is Verdict.RUN:
            assert self._guard is not None  # the guard hands out every RUN ticket
            self._guard._finish(self, "abandoned")


class TriggerGuard:
    def __init__(self, client, collection: str = GUARD_COLLECTION, lease_seconds: float = LEASE_SECONDS):
        self._client = client
        self._collection = client.collection(collection)
        self.lease_seconds = float(lease_seconds)

    def begin(self, envelope: Any) -> Ticket:
        """Decide what this delivery does: run the work, or not (and why)."""
        from google.api_core import exceptions as gexc
        from google.cloud import firestore

        key, message_id = trigger_key(envelope)
        if key is None:
            return Ticket(Verdict.UNGUARDED, None, message_id)
        ref = self._collection.document(key.document_id)
        fresh = {
            "trigger_id": key.trigger_id,
            "source_table": key.source_table,
            "game_date": key.game_date,
            "state": "running",
            "message_id": message_id,
            "lease_started_at": firestore.SERVER_TIMESTAMP,
            "lease_seconds": self.lease_seconds,
            "work_started": 1,
            "first_received_at": firestore.SERVER_TIMESTAMP,
        }
        for _ in range(10):
            try:
                written = ref.create(fresh)
                return self._ticket(Verdict.RUN, key, message_id, written.update_time)
            except gexc.AlreadyExists:
                pass
            snapshot = ref.get()
            if not snapshot.exists:
                continue  # a failed worker dropped it between our create and our read
            marker = snapshot.to_dict()
            live = marker["state"] == "running" and snapshot.read_time < marker["lease_started_at"] + dt.timedelta(
                seconds=marker.get("lease_seconds", self.lease_seconds)
            )
            if marker["state"] == "done" or (live and marker.get("message_id") != message_id):
                # Written by nobody but a worker, so a worker's own finish is conditional on its own write.
                return self._ticket(Verdict.DUPLICATE, key, message_id)
            if live:
                return self._ticket(Verdict.IN_PROGRESS, key, message_id)  # this very message: keep it unacknowledged
            # Its worker died (the lease ran out): this delivery does the work.
            takeover = {
                "state": "running",
                "message_id": message_id,
                "lease_started_at": firestore.SERVER_TIMESTAMP,
                "work_started": firestore.Increment(1),
            }
            try:
                written = ref.update(takeover, option=self._client.write_option(last_update_time=snapshot.update_time))
            except (gexc.FailedPrecondition, gexc.NotFound):
                time.sleep(0.01)
                continue  # changed meanwhile: read it again
            return self._ticket(Verdict.RUN, key, message_id, written.update_time)
        raise RuntimeError(f"the guard marker of {key.trigger_id} {key.source_table} kept changing; retry the delivery")

    def _ticket(self, verdict: Verdict, key: TriggerKey, message_id: str | None, update_time: Any = None) -> Ticket:
        log.info(
            "trigger %s %s: %s",
            key.trigger_id,
            key.source_table,
            verdict.value,
            extra={
                "event": "phase4_guard",
                "verdict": verdict.value,
                "trigger_id": key.trigger_id,
                "source_table": key.source_table,
                "game_date": key.game_date,
                "message_id": message_id,
            },
        )
        return Ticket(verdict, key, message_id, self, update_time)

    def _finish(self, ticket: Ticket, how: str) -> None:
        from google.api_core import exceptions as gexc
        from google.cloud import firestore

        key = ticket.key
        assert key is not None  # only UNGUARDED tickets have no key, and they never finish
        ref = self._collection.document(key.document_id)
        option = self._client.write_option(last_update_time=ticket._update_time)
        try:
            if how == "done":
                ref.update(
                    {"state": "done", "done_at": firestore.SERVER_TIMESTAMP, "message_id": ticket.message_id},
                    option=option,
                )
            else:  # the work failed: the retry (or any duplicate) does it
                ref.delete(option=option)
        except (gexc.FailedPrecondition, gexc.NotFound):
            # Another delivery took the work over after this one's lease ran out; it finishes the marker.
            log.warning(
                "trigger %s %s: the marker changed before this delivery finished (%s)",
                key.trigger_id,
                key.source_table,
                how,
            )

    def flask_view(self, view: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a Flask push handler: duplicates answer 200 without calling it."""

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            from flask import jsonify, make_response, request

            ticket = self.begin(request.get_json(silent=True))
            if ticket.verdict is Verdict.DUPLICATE:
                assert ticket.key is not None  # only UNGUARDED tickets have no key
                return jsonify(
                    status="duplicate", trigger_id=ticket.key.trigger_id, source_table=ticket.key.source_table
                ), 200
            if ticket.verdict is Verdict.IN_PROGRESS:
                assert ticket.key is not None  # only UNGUARDED tickets have no key
                return jsonify(
                    status="in_progress", trigger_id=ticket.key.trigger_id, source_table=ticket.key.source_table
                ), 409
            try:
                response = make_response(view(*args, **kwargs))
            except BaseException:
                ticket.abandon()
                raise
            if 200 <= response.status_code < 300:
                ticket.done()
            else:
                ticket.abandon()
            return response

        return guarded


def guard_triggers(client=None, collection: str = GUARD_COLLECTION, lease_seconds: float = LEASE_SECONDS):
    """Decorator for a Flask push handler. The Firestore client is built on the first request
    (from the environment, like every Google client) unless one is given."""
    built: list[TriggerGuard] = []
    lock = threading.Lock()

    def guard() -> TriggerGuard:
        with lock:
            if not built:
                from google.cloud import firestore

                built.append(TriggerGuard(client or firestore.Client(), collection, lease_seconds))
            return built[0]

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return guard().flask_view(view)(*args, **kwargs)

        return guarded

    return decorate
