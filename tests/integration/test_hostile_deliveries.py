"""Hostile deliveries on the real emulators: every message that can never be valid is stored
(bounded) and acknowledged, a message that keeps failing becomes poison, and a lock token
is believed only when the lock granted it.

Before the parsers checked the bounds Firestore and Cloud Logging impose, each
message here was either refused by Firestore on every redelivery (an ERROR
traceback each time, until Pub/Sub dropped it unrecorded) or crashed the
handler before its rejection path."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging

import pytest
from google.cloud import firestore

from phase3ops.input_bounds import EXCERPT_CHARS, STORED_PREFIX_BYTES
from phase3ops.locking.lease_lock import LeaseLocks
from phase3ops.logs import JsonLineFormatter
from phase3ops.rejected_messages import POISON_AFTER_FAILURES
from tests.support.completions import completion
from tests.support.orchestration import completing_last, direct_event
from tests.support.pipelines import exactly_once, per_date_and_table

pytestmark = pytest.mark.emulators

PAST = dt.date(2026, 11, 20)
FIRESTORE_DOCUMENT_LIMIT = 1024 * 1024
CLOUD_LOGGING_ENTRY_LIMIT = 256 * 1024


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def body(day: dt.date | str = PAST, **fields) -> bytes:
    return json.dumps(completion("player_game_summary", day, **fields)).encode()


HOSTILE = {
    "record_count beyond int64": body(record_count=2**63),
    "lock_token beyond int64": body(metadata={"lock_token": 2**63}),
    "lone surrogate in execution_id": body(execution_id="run-\udc00"),
    "lone surrogate in correlation_id": body(correlation_id="\ud83d"),
    "lone surrogate in metadata": body(metadata={"note": "\udc00"}),
    "metadata 21 maps deep": body(metadata=nested(21)),
    "metadata key empty": body(metadata={"": 1}),
    "metadata key reserved": body(metadata={"__name__": 1}),
    "metadata array in array": body(metadata={"entities_changed": [["a"]]}),
    "metadata over 1 MiB": body(metadata={"blob": "x" * (1100 * 1024)}),
    "JSON 100,000 deep": b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "integer of 5,000 digits": body().replace(b'"record_count": 10', b'"record_count": ' + b"7" * 5000),
    "619 KB of bad values": json.dumps(
        {
            **completion("player_game_summary", PAST),
            "status": "s" * 206_000,
            "execution_id": "e" * 206_000,
            "correlation_id": "c" * 206_000,
        }
    ).encode(),
    "year 1": body("0001-01-01"),
    "year 9999": body("9999-12-31"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_message_that_can_never_be_valid_is_stored_bounded_and_acknowledged(pipeline, caplog, case):
    payload = HOSTILE[case]
    message_id = pipeline.publish(payload)

    with caplog.at_level("INFO", logger="phase3ops.orchestrator"):
        stats = pipeline.deliver()

    assert stats.failures == [] and stats.acked == {message_id}, stats.failures[:1]
    stored = pipeline.firestore.collection(pipeline.spec.orchestrator.collections.rejected).document(message_id).get()
    assert stored.exists and stored.to_dict()["kind"] == "rejected"
    document = stored.to_dict()
    assert document["data"] == payload[:STORED_PREFIX_BYTES] and document["data_length"] == len(payload)
    assert len(document["reason"]) <= 1100 and len(json.dumps(document, default=str)) < FIRESTORE_DOCUMENT_LIMIT
    [line] = [JsonLineFormatter().format(r) for r in caplog.records if getattr(r, "outcome", None) == "rejected"]
    assert len(line.encode()) < CLOUD_LOGGING_ENTRY_LIMIT and len(json.loads(line)["data"]) <= EXCERPT_CHARS + 50
    assert pipeline.triggers() == []


@pytest.mark.parametrize(
    "message, field",
    [
        (
            {"messageId": "projects/p/messages/1"},
            None,
        ),  # a slash: processed, and kept under its hash if it were rejected
        ({"attributes": [["trigger_id", "x"]]}, "message.attributes"),
        ({"attributes": {"k": {"nested": 1}}}, "message.attributes.k"),
        ({"messageId": ["1"]}, "message.messageId"),
    ],
)
def test_a_malformed_delivery_is_stored_and_acknowledged(pipeline, message, field):
    event = direct_event("player_game_summary", PAST, status="bogus")
    event["message"].update(message)

    decision = pipeline.orchestrator().handle_event(event)  # returns: acknowledged

    assert decision.outcome == "rejected"
    assert (decision.extra["field"] if field else "status") == (field or "status")
    stored = (
        pipeline.firestore.collection(pipeline.spec.orchestrator.collections.rejected)
        .document(decision.extra["stored_as"])
        .get()
    )
    assert stored.exists and "/" not in stored.id


def test_a_message_that_keeps_failing_is_stored_as_poison_and_acknowledged_after_the_bound(pipeline, caplog):
    orchestrator = pipeline.orchestrator()

    def broken(*args, **kwargs):
        raise KeyError("a bug every delivery meets")

    orchestrator.store.record = broken
    message_id = pipeline.publish(completion("player_game_summary", PAST))

    with caplog.at_level("INFO", logger="phase3ops.orchestrator"):
        stats = pipeline.deliver(orchestrator.handle_event)

    assert len(stats.failures) == POISON_AFTER_FAILURES - 1 and stats.acked == {message_id}
    stored = (
        pipeline.firestore.collection(pipeline.spec.orchestrator.collections.rejected)
        .document(message_id)
        .get()
        .to_dict()
    )
    assert stored["kind"] == "poison" and stored["failures"] == POISON_AFTER_FAILURES and "KeyError" in stored["reason"]
    assert stored["data"] == json.dumps(completion("player_game_summary", PAST)).encode() or stored["data_length"] > 0
    assert [r.levelname for r in caplog.records if getattr(r, "outcome", None) == "poisoned"] == ["ERROR"]


def test_a_transient_failure_never_makes_a_message_poison(pipeline):
    from google.api_core import exceptions as gexc

    orchestrator = pipeline.orchestrator()
    real_record, outages = orchestrator.store.record, {"left": POISON_AFTER_FAILURES + 2}

    def unavailable_for_a_while(*args, **kwargs):
        if outages["left"]:
            outages["left"] -= 1
            raise gexc.ServiceUnavailable("Firestore is unavailable")
        return real_record(*args, **kwargs)

    orchestrator.store.record = unavailable_for_a_while
    message_id = pipeline.publish(completion("player_game_summary", PAST))  # one message meets every outage

    stats = pipeline.deliver(orchestrator.handle_event)

    assert len(stats.failures) == POISON_AFTER_FAILURES + 2 and stats.acked == {message_id}
    records, _ = orchestrator.store.records_for_date(PAST, ["player_game_summary"])
    assert records["player_game_summary"].message_id == message_id  # recorded once Firestore came back
    rejected = pipeline.firestore.collection(pipeline.spec.orchestrator.collections.rejected).where(
        filter=firestore.FieldFilter("kind", "==", "poison")
    )
    assert list(rejected.stream()) == []


def test_a_lock_token_the_lock_never_granted_neither_refuses_later_runs_nor_wins(pipeline, caplog):
    """One completion with a huge but valid token used to make every later legitimate run
    of its (date, processor) `refused_stale_token`, so the date never triggered."""
    orchestrator = pipeline.orchestrator()
    *first, last = completing_last(pipeline.spec)
    bogus = direct_event(last, PAST, status="failed", execution_id="forged", metadata={"lock_token": 2**62})
    assert orchestrator.handle_event(bogus).record == "recorded"
    for name in first:
        orchestrator.handle_event(direct_event(name, PAST))
    locks = LeaseLocks(pipeline.firestore, pipeline.spec.analytics.lock.collection)
    lease = locks.acquire(last, PAST, owner="real-run")
    lease.release()

    with caplog.at_level("WARNING", logger="phase3ops.orchestrator"):
        decision = orchestrator.handle_event(
            direct_event(last, PAST, execution_id="real", metadata={"lock_token": lease.token})
        )

    assert (decision.record, decision.outcome) == ("updated", "triggered")
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, [PAST])
    assert [r.lock_tokens for r in caplog.records if getattr(r, "event", None) == "lock_token_not_granted"] == [[2**62]]


def test_a_granted_token_still_refuses_the_run_it_superseded(pipeline):
    """The check believes the lock: a real older token is still stale."""
    orchestrator = pipeline.orchestrator()
    locks = LeaseLocks(pipeline.firestore, pipeline.spec.analytics.lock.collection)
    older = locks.acquire("player_game_summary", PAST, owner="paused")
    older.release()
    newer = locks.acquire("player_game_summary", PAST, owner="successor")
    newer.release()
    orchestrator.handle_event(
        direct_event("player_game_summary", PAST, execution_id="new", metadata={"lock_token": newer.token})
    )

    decision = orchestrator.handle_event(
        direct_event("player_game_summary", PAST, execution_id="old", metadata={"lock_token": older.token})
    )

    assert decision.record == "refused_stale_token"


def receipt_event(trigger_id: str) -> dict:
    return {
        "message": {
            "data": base64.b64encode(b"{}").decode(),
            "messageId": "r-1",
            "attributes": {"trigger_id": trigger_id, "game_date": PAST.isoformat()},
        }
    }


@pytest.mark.parametrize("suffix", ["/etc/passwd", ":" + "t" * 1600, ":\udc00", ":__x__/y"])
def test_a_trigger_id_that_cannot_be_a_document_id_is_skipped_by_the_receipts_recorder(pipeline, suffix, caplog):
    from phase3ops.orchestrator.factory import build_receipt_recorder

    recorder = build_receipt_recorder(pipeline.spec, pipeline.project)
    with caplog.at_level(logging.WARNING, logger="phase3ops.receipts"):
        outcome = recorder.handle_event(receipt_event(f"{pipeline.spec.name}:{PAST}{suffix}"))
    assert outcome.outcome == "skipped"
    assert all(len(JsonLineFormatter().format(r)) < 4000 for r in caplog.records)
