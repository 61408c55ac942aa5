"""Completion messages: every message the reference publisher produces is accepted; every
kind of bad message is named by field."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from phase3ops.orchestrator.messages import BadMessage, parse_completion, parse_delivery
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.completions import completion
from tests.support.reference_messages import CLASS_NAMES, NAME_FORMS, reference_completion
from tests.support.specs import REPO_ROOT

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")


def raw(message) -> bytes:
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    "reported, table",
    [
        ("player_game_summary", "player_game_summary"),
        ("PlayerGameSummaryProcessor", "player_game_summary"),
        ("PlayerGameSummaryAsyncProcessor", "nba_analytics.player_game_summary"),
        ("playergamesummaryprocessor", "my-project.nba_analytics.player_game_summary"),
        ("UpcomingTeamGameContextProcessor", "upcoming_team_game_context"),
    ],
)
def test_processor_names_are_normalised(reported, table):
    resolved = SPEC.resolve_processor(table.rsplit(".", 1)[-1])
    assert resolved is not None
    expected = resolved.name
    parsed = parse_completion(raw(completion(reported, "2026-11-28", output_table=table)), SPEC)
    assert parsed.processor == expected
    assert parsed.reported_name == reported
    assert parsed.game_date == dt.date(2026, 11, 28)


@pytest.mark.parametrize(
    "data, field, reason",
    [
        (b"\xff\xfe", "", "not JSON"),
        (b"{", "", "not JSON"),
        (b"42", "", "must be a JSON object"),
        (
            raw(completion("PlayerGameSummaryProcessor", "2026-11-28", output_table="team_offense_game_summary")),
            "output_table",
            "is the table of 'team_offense_game_summary', not of processor",
        ),
        (
            raw(completion("ghost_processor", "2026-11-28", output_table="ghost")),
            "processor_name",
            "unknown processor 'ghost_processor'",
        ),
        (
            raw({"game_date": "2026-11-28", "status": "success", "output_table": "ghost"}),
            "output_table",
            "unknown output_table 'ghost'",
        ),
        (
            raw({"game_date": "2026-11-28", "status": "success"}),
            "processor_name",
            "needs processor_name or output_table",
        ),
        (
            raw({"processor_name": "PlayerGameSummaryProcessor", "game_date": "2026-11-28"}),
            "status",
            "'status' is a required property",
        ),
        (
            raw({**completion("player_game_summary", "2026-11-28"), "metadata": {"lock_token": "7"}}),
            "metadata.lock_token",
            "is not of type",
        ),
        (raw(completion("player_game_summary", "2026-13-01")), "game_date", "is not a calendar date"),
        (raw(completion("player_game_summary", "2026-1-01")), "game_date", "does not match"),
        (raw({**completion("player_game_summary", "2026-11-28"), "status": "ok"}), "status", "'ok' is not one of"),
        (
            raw({**completion("player_game_summary", "2026-11-28"), "record_count": -1}),
            "record_count",
            "less than the minimum",
        ),
        (
            raw({**completion("player_game_summary", "2026-11-28"), "record_count": "10"}),
            "record_count",
            "is not of type 'integer'",
        ),
        (
            raw({k: v for k, v in completion("player_game_summary", "2026-11-28").items() if k != "game_date"}),
            "game_date",
            "'game_date' is a required property",
        ),
    ],
)
def test_bad_messages_name_their_field(data, field, reason):
    with pytest.raises(BadMessage) as caught:
        parse_completion(data, SPEC)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_extra_fields_are_tolerated():
    """A producer adding a field must not stop Phase 4 from triggering."""
    message = {**completion("player_game_summary", "2026-11-28"), "new_field": {"x": 1}}
    assert parse_completion(raw(message), SPEC).processor == "player_game_summary"


@pytest.mark.parametrize("processor", sorted(CLASS_NAMES))
@pytest.mark.parametrize("form", NAME_FORMS)
@pytest.mark.parametrize("status", ["success", "partial", "failed", "no_data", "skipped"])
def test_every_reference_message_is_accepted(processor, form, status):
    message = reference_completion(processor, "2026-11-28", status=status, form=form)
    assert "correlation_id" not in message and "parent_processor" not in message  # nulls dropped, as published
    parsed = parse_completion(raw(message), SPEC, "m-1")
    assert (parsed.processor, parsed.status, parsed.execution_id) == (processor, status, message["execution_id"])
    assert parsed.counts_towards_completion is (status in ("success", "partial"))


@pytest.mark.parametrize("processor, names", sorted(CLASS_NAMES.items()))
def test_the_class_names_production_publishes(processor, names):
    for name in names:  # AsyncUpcomingPlayerGameContextProcessor among them
        assert (
            parse_completion(raw(completion(name, "2026-11-28", output_table=processor)), SPEC).processor == processor
        )


def test_an_unknown_name_falls_back_to_output_table():
    message = reference_completion("team_defense_game_summary", "2026-11-28", processor_name="TeamDefenseV2Processor")
    assert parse_completion(raw(message), SPEC).processor == "team_defense_game_summary"


def test_only_what_the_orchestrator_needs_is_required():
    minimal = {
        "processor_name": "AsyncUpcomingPlayerGameContextProcessor",
        "game_date": "2026-11-28",
        "status": "success",
    }
    parsed = parse_completion(raw(minimal), SPEC, "pubsub-42")
    assert (parsed.processor, parsed.record_count, parsed.correlation_id) == ("upcoming_player_game_context", 0, None)
    assert parsed.execution_id == "message-pubsub-42"  # redeliveries of the same message still dedupe


def test_metadata_with_nulls_and_a_lock_token():
    message = reference_completion(
        "player_game_summary",
        "2026-11-28",
        metadata={"is_incremental": None, "entities_changed": None, "lock_token": None},
    )
    assert parse_completion(raw(message), SPEC).lock_token is None
    ours = completion("player_game_summary", "2026-11-28", metadata={"lock_token": 7, "duplicates_dropped": 0})
    assert parse_completion(raw(ours), SPEC).lock_token == 7


@pytest.mark.parametrize(
    "status, counts", [("success", True), ("partial", True), ("failed", False), ("no_data", False)]
)
def test_which_statuses_count(status, counts):
    assert (
        parse_completion(
            raw(completion("player_game_summary", "2026-11-28", status=status)), SPEC
        ).counts_towards_completion
        is counts
    )


def test_delivery_envelope():
    data = base64.b64encode(b'{"a": 1}').decode()
    delivery = parse_delivery(
        {
            "message": {
                "data": data,
                "messageId": "123",
                "publishTime": "2026-11-29T07:56:25.174123456Z",
                "attributes": {"k": "v"},
            }
        }
    )
    assert delivery.message_id == "123"
    assert delivery.publish_time == dt.datetime(2026, 11, 29, 7, 56, 25, 174123, tzinfo=dt.UTC)
    assert delivery.raw_data == b'{"a": 1}'
    assert delivery.attributes == {"k": "v"}


@pytest.mark.parametrize(
    "event, field",
    [
        (None, "message"),
        ({"message": "text"}, "message"),
        ({"message": {"data": "e30="}}, "message.messageId"),
        ({"message": {"messageId": "1"}}, "message.data"),
        ({"message": {"messageId": "1", "data": "***"}}, "message.data"),
        ({"message": {"messageId": "1", "data": "e30=", "publishTime": "yesterday"}}, "message.publishTime"),
    ],
)
def test_bad_envelopes(event, field):
    with pytest.raises(BadMessage) as caught:
        parse_delivery(event)
    assert caught.value.field == field


@pytest.mark.parametrize("reported, kept", [(12.5, 12.5), (3, 3.0), ("12", None), (True, None), (None, None)])
def test_the_run_duration_is_kept_when_it_is_a_number(reported, kept):
    """`phase3ops explain` shows when a run started from its duration; anything but a number is not a duration."""
    parsed = parse_completion(
        raw({**completion("player_game_summary", "2026-11-28"), "duration_seconds": reported}), SPEC
    )
    assert parsed.duration_seconds == kept
