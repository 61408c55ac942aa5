"""Fuzzing every message parser: whatever arrives, the only exception is the parser's own
refusal, and whatever a parser accepts fits what Firestore and a log line take.

Bounded example counts keep the file at a few seconds; a failure prints the
smallest input that broke the property."""

from __future__ import annotations

import base64
import datetime as dt
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phase3ops.analytics.service import BadPush, parse_push
from phase3ops.input_bounds import check_storable
from phase3ops.orchestrator.messages import BadMessage, Delivery, parse_completion, parse_delivery
from phase3ops.orchestrator.receipts import ReceiptOutcome, receipt_of
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.completions import completion
from tests.support.specs import REPO_ROOT

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text with lone surrogates and control characters, which JSON escapes carry.
text = st.text(st.characters(categories=["L", "N", "P", "S", "Z", "C"]), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62, max_value=2**80) | st.floats() | text
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=30
)
dates = (
    st.sampled_from(["2026-11-28", "0001-01-01", "20261128", "2026-W48-6", "9999-12-31", "2026-02-30", "2026-11-28\n"])
    | text
)


def encoded(value) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()


def completion_like(draw_fields: dict) -> dict:
    return {**completion("player_game_summary", "2026-11-28"), **draw_fields}


completion_fields = st.dictionaries(
    st.sampled_from(
        [
            "processor_name",
            "output_table",
            "game_date",
            "status",
            "execution_id",
            "correlation_id",
            "record_count",
            "records_failed",
            "metadata",
            "duration_seconds",
        ]
    ),
    st.one_of(st.integers(min_value=2**62, max_value=2**70), text, json_values, dates),
    max_size=4,
)


def assert_storable(parsed) -> None:
    for name in ("execution_id", "correlation_id", "reported_name", "output_table", "status", "record_count"):
        check_storable(getattr(parsed, name), name)
    check_storable(parsed.metadata, "metadata")
    check_storable(parsed.lock_token, "lock_token")


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_are_a_completion_or_a_bad_message(raw):
    try:
        assert_storable(parse_completion(raw, SPEC, "m"))
    except BadMessage:
        pass


@FUZZ
@given(json_values)
def test_any_json_is_a_completion_or_a_bad_message(value):
    try:
        assert_storable(parse_completion(encoded(value), SPEC, "m"))
    except BadMessage:
        pass


@FUZZ
@given(completion_fields)
def test_a_completion_with_any_field_values_is_storable_or_a_bad_message(fields):
    try:
        assert_storable(parse_completion(encoded(completion_like(fields)), SPEC, "m"))
    except BadMessage:
        pass


message_fields = st.dictionaries(
    st.sampled_from(["messageId", "message_id", "publishTime", "data", "attributes"]),
    json_values | st.just(base64.b64encode(b'{"a": 1}').decode()),
    max_size=5,
)


@FUZZ
@given(st.one_of(json_values, st.builds(lambda m: {"message": m}, message_fields)))
def test_any_event_is_a_delivery_or_a_bad_message(event):
    try:
        delivery = parse_delivery(event)
    except BadMessage:
        return
    check_storable(delivery.message_id, "message_id")
    check_storable(dict(delivery.attributes), "attributes")


@FUZZ
@given(st.dictionaries(text, text, max_size=4), st.sampled_from(["phase3-to-phase4", "other"]))
def test_any_attributes_make_a_receipt_or_a_skip(attributes, pipeline):
    delivery = Delivery("1", dt.datetime(2026, 11, 28, tzinfo=dt.UTC), attributes, b"{}")
    receipt = receipt_of(delivery, f"{pipeline}:")
    if not isinstance(receipt, ReceiptOutcome):
        check_storable({k: v for k, v in receipt.items() if k not in ("publish_time", "recorded_at")}, "receipt")


push_data = st.fixed_dictionaries(
    {},
    optional={
        "game_date": st.just("2026-11-28") | dates | json_values,
        "processors": st.lists(st.sampled_from([*SPEC.processor_names, "ghost"]), max_size=6) | json_values,
        "correlation_id": text | json_values,
        "allow_shrink": st.booleans() | json_values,
    },
)


@FUZZ
@given(
    st.one_of(
        json_values,
        st.builds(
            lambda d, mid: {"message": {"data": base64.b64encode(encoded(d)).decode(), "messageId": mid}},
            push_data,
            json_values,
        ),
    )
)
def test_any_push_body_is_a_push_or_a_bad_push(body):
    try:
        push = parse_push(body, SPEC.processor_names)
    except BadPush:
        return
    assert len(set(push.processors)) == len(push.processors) and set(push.processors) <= set(SPEC.processor_names)
    check_storable(push.correlation_id, "correlation_id")
