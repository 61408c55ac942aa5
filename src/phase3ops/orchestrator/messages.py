"""Completion messages: from a Pub/Sub CloudEvent to a validated `Completion`.

Every message the reference pipeline's publisher produces is accepted:
class names (with the `Async` prefix its async processors publish), table
names, a fallback to `output_table`, null-dropped optional fields, extra
fields, metadata with nulls. Anything wrong with a message that a redelivery
cannot fix raises `BadMessage` naming the field; the orchestrator logs it,
stores it and acknowledges it. That includes every value Firestore or a log
line would refuse later (input_bounds.py): a parser that let it through
would fail the message on every redelivery instead of once, here. Nothing
here touches the network.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from phase3ops.input_bounds import (
    REASON_CHARS,
    OutOfBounds,
    bounded_text,
    capped,
    check_size,
    check_storable,
    load_json,
    quoted,
)
from phase3ops.input_bounds import game_date as bounded_game_date
from phase3ops.spec.documents import SCHEMA_DIR, SpecValidator, format_path, load_schema
from phase3ops.spec.pipeline import PipelineSpec, Processor

COMPLETION_SCHEMA = SCHEMA_DIR / "completion-message.schema.json"
COUNTING_STATUSES = frozenset({"success", "partial"})
MAX_MESSAGE_ID_CHARS = 256
MAX_ATTRIBUTES = 100  # Pub/Sub's own limit per message
MAX_ATTRIBUTE_CHARS = 1024  # Pub/Sub's limit on an attribute value (bytes, so characters are fewer)
MAX_METADATA_BYTES = 256 * 1024  # stored with the record; a record document must stay under Firestore's 1 MiB
# What of a completion is stored as sent, and so must fit Firestore (metadata is checked apart).
STORED_TEXT_FIELDS = ("processor_name", "output_table", "execution_id", "correlation_id", "status")


class BadMessage(ValueError):
    """A message that will never be valid, however often it is redelivered."""

    def __init__(self, reason: str, field_path: str = ""):
        self.reason = capped(reason, REASON_CHARS)  # it is stored and logged: never the whole of a hostile value
        self.field = capped(field_path, 200)
        super().__init__(f"{self.field}: {self.reason}" if self.field else self.reason)


@dataclass(frozen=True)
class Delivery:
    """What Pub/Sub says about the message, as opposed to what the producer said."""

    message_id: str
    publish_time: dt.datetime
    attributes: Mapping[str, str]
    raw_data: bytes


@dataclass(frozen=True)
class Completion:
    processor: str  # the canonical processor name from the pipeline spec
    reported_name: str
    game_date: dt.date
    status: str
    execution_id: str
    correlation_id: str | None
    output_table: str
    record_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    duration_seconds: float | None = None  # how long the run took, when the producer says

    @property
    def counts_towards_completion(self) -> bool:
        return self.status in COUNTING_STATUSES

    @property
    def lock_token(self) -> int | None:
        """The fencing token the run wrote under, when the producer reports one (this project's runner does)."""
        token = self.metadata.get("lock_token")
        return token if isinstance(token, int) and not isinstance(token, bool) else None


def parse_delivery(event_data: Any) -> Delivery:
    """Unwrap the `google.cloud.pubsub.topic.v1.messagePublished` payload."""
    if not isinstance(event_data, Mapping) or not isinstance(event_data.get("message"), Mapping):
        raise BadMessage("the CloudEvent data has no Pub/Sub 'message' object", "message")
    message = event_data["message"]
    message_id = message.get("messageId") or message.get("message_id")
    if not message_id:
        raise BadMessage("the Pub/Sub message has no messageId", "message.messageId")
    if isinstance(message_id, int) and not isinstance(message_id, bool):
        message_id = str(message_id)
    _bounded(bounded_text, message_id, "message.messageId", MAX_MESSAGE_ID_CHARS, required=True)
    publish_time = _parse_timestamp(message.get("publishTime") or message.get("publish_time"))
    encoded = message.get("data")
    if not encoded:
        raise BadMessage("the Pub/Sub message has no data", "message.data")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadMessage("message data is not valid base64", "message.data") from None
    return Delivery(message_id, publish_time, _attributes(message.get("attributes")), raw)


def _attributes(attributes: Any) -> dict[str, str]:
    """Pub/Sub attributes are string to string, at most 100 of them (its own limits bound their size)."""
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping) or len(attributes) > MAX_ATTRIBUTES:
        raise BadMessage(
            f"attributes must be an object of at most {MAX_ATTRIBUTES} strings, got {quoted(attributes)}",
            "message.attributes",
        )
    for key, value in attributes.items():
        _bounded(bounded_text, key, "message.attributes", MAX_ATTRIBUTE_CHARS, required=True)
        _bounded(bounded_text, value, f"message.attributes.{key}", MAX_ATTRIBUTE_CHARS, required=False)
    return {key: value for key, value in attributes.items() if value is not None}


def parse_completion(raw: bytes, spec: PipelineSpec, message_id: str = "", today: dt.date | None = None) -> Completion:
    """`today` bounds the plausible game dates (the orchestrator passes its clock's date)."""
    payload = _bounded(load_json, raw)
    if not isinstance(payload, dict):
        raise BadMessage(f"message data must be a JSON object, got {type(payload).__name__}")

    errors = sorted(_completion_validator().iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        reasons = (
            f"{format_path(list(e.absolute_path)) or '<message>'}: {capped(_describe(e), 200)}" for e in errors[:5]
        )
        raise BadMessage(
            capped("; ".join(reasons), REASON_CHARS),
            format_path(list(first.absolute_path)) or _missing_field(first),
        )

    game_date = _bounded(bounded_game_date, payload["game_date"], "game_date", today)
    for name in STORED_TEXT_FIELDS:
        _bounded(check_storable, payload.get(name), name)
    metadata = payload.get("metadata") or {}
    _bounded(check_storable, metadata, "metadata")
    _bounded(check_size, metadata, "metadata", MAX_METADATA_BYTES)

    processor = _processor_of(payload, spec)
    execution_id = payload.get("execution_id") or (f"message-{message_id}" if message_id else "")
    if not execution_id:
        raise BadMessage("no execution_id and no Pub/Sub message id to stand in for it", "execution_id")
    return Completion(
        processor=processor.name,
        reported_name=payload.get("processor_name") or payload["output_table"],
        game_date=game_date,
        status=payload["status"],
        execution_id=execution_id,
        correlation_id=payload.get("correlation_id"),
        output_table=processor.output_table,
        record_count=payload.get("record_count") or 0,
        metadata=metadata,
        duration_seconds=_number(payload.get("duration_seconds")),
    )


@functools.lru_cache(maxsize=1)
def _completion_validator() -> jsonschema.Validator:
    return SpecValidator(load_schema(COMPLETION_SCHEMA))


def _bounded(check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run an input_bounds check; its refusal is a BadMessage."""
    try:
        return check(*args, **kwargs)
    except OutOfBounds as out:
        raise BadMessage(out.reason, out.field) from None


def _number(value: Any) -> float | None:
    """An optional figure: a number beyond a float's range or not finite is dropped, not refused."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _processor_of(payload: dict[str, Any], spec: PipelineSpec) -> Processor:
    """The reference's order: the reported name, else the output table; the two must not contradict."""
    name, table = payload.get("processor_name"), payload.get("output_table")
    by_name = spec.resolve_processor(name) if name else None
    by_table = spec.resolve_processor(table) if table else None
    processor = by_name or by_table
    if processor is None:
        known = ", ".join(spec.processor_names)
        reported = (
            f"processor {name!r}" + (f" (output_table {table!r})" if table else "")
            if name
            else f"output_table {table!r}"
        )
        raise BadMessage(
            capped(f"unknown {reported}; known: {known}", REASON_CHARS), "processor_name" if name else "output_table"
        )
    if by_name is not None and by_table is not None and by_table is not by_name:
        raise BadMessage(
            f"output_table {table!r} is the table of {by_table.name!r}, not of processor {name!r} ({by_name.output_table})",
            "output_table",
        )
    return processor


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "anyOf" and not error.absolute_path:
        return "names no processor: needs processor_name or output_table"
    return error.message


def _missing_field(error: jsonschema.ValidationError) -> str:
    """A `required` error sits on the parent; name the missing field itself."""
    if error.validator == "required":
        missing = error.message.split("'")
        return missing[1] if len(missing) > 2 else ""
    if error.validator == "anyOf":
        return "processor_name"
    return ""


def encode_completion(completion: Mapping[str, Any]) -> bytes:
    """The wire format producers use (the analytics service, tests, the demo)."""
    return json.dumps(dict(completion), sort_keys=True, default=str).encode("utf-8")


def _parse_timestamp(value: Any) -> dt.datetime:
    if not value:
        # Pub/Sub always sets publishTime; without it ordering falls back to arrival.
        return dt.datetime.now(dt.UTC)
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadMessage(f"publishTime {quoted(value)} is not an RFC 3339 timestamp", "message.publishTime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
