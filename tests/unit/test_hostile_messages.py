"""Hostile completion messages and deliveries: every one that Firestore, a log line or
the parser itself would choke on is a `BadMessage` naming the field, with a bounded reason.

Each case here passed the parser (or crashed it) before the parser checked the bounds
of `input_bounds.py`; the integration tests hand the same messages to a real
orchestrator and check they are stored and acknowledged."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from phase3ops.input_bounds import REASON_CHARS
from phase3ops.orchestrator.messages import BadMessage, parse_completion, parse_delivery
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.completions import completion
from tests.support.specs import REPO_ROOT

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
DAY = "2026-11-28"


def nested(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def refusal(payload: bytes | dict) -> BadMessage:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(BadMessage) as caught:
        parse_completion(raw, SPEC, "m-1")
    assert len(caught.value.reason) <= REASON_CHARS + 60
    return caught.value


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"record_count": 2**63}, "record_count"),
        ({"records_failed": 2**64}, "records_failed"),
        ({"metadata": {"lock_token": 2**63}}, "metadata.lock_token"),
        ({"execution_id": "run-\udc00"}, "execution_id"),
        ({"correlation_id": "\ud800"}, "correlation_id"),
        ({"metadata": {"note": "x\udc00"}}, "metadata.note"),
        ({"metadata": {"\udc00": 1}}, "metadata.<name>"),
        ({"metadata": nested(21)}, "metadata" + ".a" * 20),
        ({"metadata": {"": 1}}, "metadata"),
        ({"metadata": {"__name__": 1}}, "metadata"),
        ({"metadata": {"entities_changed": [["a"], ["b"]]}}, "metadata.entities_changed[1]"),
        ({"metadata": {"n": 2**70}}, "metadata.n"),
        ({"metadata": {"blob": "x" * (300 * 1024)}}, "metadata"),
        ({"metadata": {"many": list(range(20_000))}}, "metadata"),
    ],
)
def test_values_firestore_would_refuse_are_bad_messages_naming_the_field(overrides, field):
    bad = refusal(json.dumps(completion("player_game_summary", DAY, **overrides), ensure_ascii=True).encode())
    assert bad.field == field


def test_json_nested_far_beyond_the_recursion_limit_is_a_bad_message_not_a_crash():
    bad = refusal(b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert "deep" in bad.reason


def test_an_integer_of_thousands_of_digits_is_a_bad_message_not_a_crash():
    body = json.dumps(completion("player_game_summary", DAY)).replace(
        '"record_count": 10', '"record_count": ' + "9" * 5000
    )
    bad = refusal(body.encode())
    assert "9" * 200 not in bad.reason


def test_the_reason_never_repeats_a_huge_offending_value():
    huge = "z" * 619_000
    bad = refusal(
        {**completion("player_game_summary", DAY), "execution_id": huge, "correlation_id": huge, "status": huge}
    )
    assert huge[:2000] not in str(bad)


@pytest.mark.parametrize(
    "game_date",
    ["20251101", "2025-W45-6", "2025-11-01\n", "0001-01-01", "1900-01-01", "9999-12-31", "2026-11-28T00:00:00"],
)
def test_game_dates_are_strict_and_plausible(game_date):
    assert refusal(completion("player_game_summary", game_date)).field == "game_date"


def test_the_first_nba_season_and_a_date_a_year_ahead_are_plausible():
    for day in ("1946-11-01", (dt.date.today() + dt.timedelta(days=365)).isoformat()):
        assert (
            parse_completion(
                json.dumps(completion("player_game_summary", day)).encode(), SPEC, "m"
            ).game_date.isoformat()
            == day
        )


def test_a_numeric_duration_beyond_a_float_is_ignored_not_a_crash():
    body = json.dumps(completion("player_game_summary", DAY, duration_seconds=1)).replace(
        '"duration_seconds": 1', '"duration_seconds": 1' + "0" * 400
    )
    assert parse_completion(body.encode(), SPEC, "m").duration_seconds is None


def event(message: dict) -> dict:
    return {"message": {"data": base64.b64encode(b"{}").decode(), "messageId": "1", **message}}


@pytest.mark.parametrize(
    "message, field",
    [
        ({"attributes": ["trigger_id", "x"]}, "message.attributes"),
        ({"attributes": "a=b"}, "message.attributes"),
        ({"attributes": {"k": 1}}, "message.attributes.k"),
        ({"attributes": {"k": "\udc00"}}, "message.attributes.k"),
        ({"messageId": {"id": 1}}, "message.messageId"),
        ({"messageId": "9" * 1000}, "message.messageId"),
        ({"publishTime": ["2026"]}, "message.publishTime"),
        ({"data": 17}, "message.data"),
    ],
)
def test_malformed_deliveries_are_bad_messages_naming_the_field(message, field):
    with pytest.raises(BadMessage) as caught:
        parse_delivery(event(message))
    assert caught.value.field == field


def test_a_message_id_with_a_slash_is_still_a_delivery():
    # Pub/Sub's ids are digits; a slash only matters where an id becomes a document id, and those are hashed.
    assert parse_delivery(event({"messageId": "a/b"})).message_id == "a/b"


def test_metadata_nested_as_deep_as_firestore_stores_is_accepted():
    # Firestore stores a field holding 20 nested maps and refuses 21 (measured on the emulator).
    parsed = parse_completion(
        json.dumps(completion("player_game_summary", DAY, metadata=nested(20))).encode(), SPEC, "m"
    )
    assert parsed.metadata == nested(20)
