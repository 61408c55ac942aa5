"""Completion messages: from a Pub/Sub CloudEvent to a validated `Completion`.

Anything wrong with a message that a redelivery cannot fix raises
`BadMessage` naming the field; the orchestrator logs it, stores it and
acknowledges it. Nothing here touches the network.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import jsonschema

from phase3ops.spec.documents import SCHEMA_DIR, format_path, load_schema
from phase3ops.spec.pipeline import PipelineSpec

COMPLETION_SCHEMA = SCHEMA_DIR / "completion-message.schema.json"
COUNTING_STATUSES = frozenset({"success", "partial"})


class BadMessage(ValueError):
    """A message that will never be valid, however often it is redelivered."""

    def __init__(self, reason: str, field_path: str = ""):
        self.reason = reason
        self.field = field_path
        super().__init__(f"{field_path}: {reason}" if field_path else reason)


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

    @property
    def counts_towards_completion(self) -> bool:
        return self.status in COUNTING_STATUSES


def parse_delivery(event_data: Any) -> Delivery:
    """Unwrap the `google.cloud.pubsub.topic.v1.messagePublished` payload."""
    if not isinstance(event_data, Mapping) or not isinstance(event_data.get("message"), Mapping):
        raise BadMessage("the CloudEvent data has no Pub/Sub 'message' object", "message")
    message = event_data["message"]
    message_id = message.get("messageId") or message.get("message_id")
    if not message_id:
        raise BadMessage("the Pub/Sub message has no messageId", "message.messageId")
    publish_time = _parse_timestamp(message.get("publishTime") or message.get("publish_time"))
    encoded = message.get("data")
    if not encoded:
        raise BadMessage("the Pub/Sub message has no data", "message.data")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadMessage("message data is not valid base64", "message.data") from None
    attributes = message.get("attributes") or {}
    return Delivery(str(message_id), publish_time, dict(attributes), raw)


def parse_completion(raw: bytes, spec: PipelineSpec) -> Completion:
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadMessage(f"message data is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadMessage(f"message data must be a JSON object, got {type(payload).__name__}")

    validator = jsonschema.Draft202012Validator(load_schema(COMPLETION_SCHEMA))
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise BadMessage(
            "; ".join(f"{format_path(list(e.absolute_path)) or '<message>'}: {e.message}" for e in errors),
            format_path(list(first.absolute_path)),
        )

    try:
        game_date = dt.date.fromisoformat(payload["game_date"])
    except ValueError:
        raise BadMessage(f"{payload['game_date']!r} is not a calendar date", "game_date") from None

    processor = spec.resolve_processor(payload["processor_name"])
    if processor is None:
        known = ", ".join(spec.processor_names)
        raise BadMessage(f"unknown processor {payload['processor_name']!r} (known: {known})", "processor_name")
    table_owner = spec.resolve_processor(payload["output_table"])
    if table_owner is not processor:
        raise BadMessage(
            f"output_table {payload['output_table']!r} is not the table of processor {processor.name!r} "
            f"({processor.output_table})",
            "output_table",
        )

    return Completion(
        processor=processor.name,
        reported_name=payload["processor_name"],
        game_date=game_date,
        status=payload["status"],
        execution_id=payload["execution_id"],
        correlation_id=payload.get("correlation_id"),
        output_table=processor.output_table,
        record_count=payload["record_count"],
        metadata=payload.get("metadata") or {},
    )


def encode_completion(completion: Mapping[str, Any]) -> bytes:
    """The wire format producers use (the analytics service, tests, the demo)."""
    return json.dumps(dict(completion), sort_keys=True, default=str).encode("utf-8")


def _parse_timestamp(value: Any) -> dt.datetime:
    if not value:
        # Pub/Sub always sets publishTime; without it ordering falls back to arrival.
        return dt.datetime.now(dt.timezone.utc)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadMessage(f"publishTime {value!r} is not an RFC 3339 timestamp", "message.publishTime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
