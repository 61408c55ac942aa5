"""Operator overrides without services: what an operator may type, the record's reading, the re-trigger ids."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from phase3ops.orchestrator.messages import Delivery
from phase3ops.orchestrator.receipts import receipt_of
from phase3ops.overrides import (
    BadOverride,
    Override,
    effective_skips,
    inputs,
    retrigger_collection,
    retrigger_key,
    retrigger_trigger_id,
)
from phase3ops.phase4_guard import trigger_key
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.repo_copy import REPO_ROOT

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
T0 = dt.datetime(2026, 11, 29, 15, tzinfo=dt.UTC)


def refused(call, argument: str, fragment: str) -> None:
    with pytest.raises(BadOverride) as raised:
        call()
    assert raised.value.argument == argument
    assert fragment in str(raised.value) and str(raised.value).startswith(f"argument {argument}: ")


# -- what an operator types -------------------------------------------------------------------


def test_a_reason_is_required_bounded_and_plain_text():
    assert inputs.reason("  UPGC scraper retired (INC-7)\n") == "UPGC scraper retired (INC-7)"
    assert inputs.reason("line one\n\tline two") == "line one\n\tline two"
    refused(lambda: inputs.reason(""), "--reason", "must not be empty")
    refused(lambda: inputs.reason(" \n\t "), "--reason", "must not be empty")
    refused(lambda: inputs.reason(None), "--reason", "must not be empty")
    refused(
        lambda: inputs.reason("x" * (inputs.MAX_REASON_CHARS + 1)),
        "--reason",
        f"501 characters; at most {inputs.MAX_REASON_CHARS}",
    )
    refused(lambda: inputs.reason("why\x1b[31m"), "--reason", "control characters")
    refused(lambda: inputs.reason("caf\udce9"), "--reason", "not valid UTF-8")  # a Latin-1 byte in argv
    assert inputs.reason("x" * inputs.MAX_REASON_CHARS) == "x" * inputs.MAX_REASON_CHARS


def test_the_operator_is_explicit_else_the_gcloud_account_else_the_login():
    environ = {"CLOUDSDK_CORE_ACCOUNT": "ops@example.com", "USER": "alice"}
    assert inputs.operator("bob@example.com", environ) == inputs.Operator("bob@example.com", "--operator")
    assert inputs.operator(None, environ) == inputs.Operator("ops@example.com", "CLOUDSDK_CORE_ACCOUNT")
    assert inputs.operator(None, {"USER": "alice", "CLOUDSDK_CORE_ACCOUNT": "  "}) == inputs.Operator("alice", "USER")
    refused(lambda: inputs.operator(None, {}), "--operator", "pass --operator or set $CLOUDSDK_CORE_ACCOUNT or $USER")
    refused(lambda: inputs.operator("", environ), "--operator", "must not be empty")
    refused(lambda: inputs.operator(None, {"USER": "a" * 201}), "--operator", "$USER 201 characters")


def test_a_game_date_is_strict_and_plausible():
    assert inputs.game_date("2026-11-28") == dt.date(2026, 11, 28)
    assert inputs.game_date(dt.date(2026, 11, 28)) == dt.date(2026, 11, 28)
    refused(lambda: inputs.game_date("2026-11-31"), "DATE", "is not a calendar date")
    refused(
        lambda: inputs.game_date("20261128"), "DATE", "is not a YYYY-MM-DD date"
    )  # date.fromisoformat would take it
    refused(lambda: inputs.game_date("1900-01-01"), "DATE", "outside the plausible game dates")


def test_a_processor_is_named_as_the_spec_and_the_completions_name_it():
    for name in (
        "team_offense_game_summary",
        "TeamOffenseGameSummaryProcessor",
        "nba_analytics.team_offense_game_summary",
    ):
        assert inputs.processor(SPEC, name).name == "team_offense_game_summary"
    assert inputs.processor(SPEC, "AsyncUpcomingPlayerGameContextProcessor").name == "upcoming_player_game_context"
    refused(
        lambda: inputs.processor(SPEC, "box_scores"),
        "PROCESSOR",
        "unknown processor 'box_scores': one of player_game_summary, ",
    )
    refused(lambda: inputs.processor(SPEC, ""), "PROCESSOR", "unknown processor ''")


def test_a_cascade_is_a_bounded_whole_number():
    assert [inputs.cascade(v) for v in ("0", "3", 30)] == [0, 3, 30]
    refused(lambda: inputs.cascade("-1"), "--cascade", "-1 must be between 0 and 30")
    refused(lambda: inputs.cascade("31"), "--cascade", "31 must be between 0 and 30")
    refused(lambda: inputs.cascade("two"), "--cascade", "'two' is not a whole number")
    refused(lambda: inputs.cascade(True), "--cascade", "is not a whole number")


# -- reading the records --------------------------------------------------------------------


def record(
    kind: str, processor: str, minutes: int, outcome: str = "recorded", reason: str = "why", id_: str | None = None
) -> Override:
    return Override(
        id_ or f"{kind}-{processor}-{minutes}",
        kind,
        dt.date(2026, 11, 28),
        "alice",
        reason,
        outcome,
        (processor,),
        at=T0 + dt.timedelta(minutes=minutes),
    )


def test_skips_in_force_replay_skip_and_undo_in_firestores_order():
    overrides = [
        record("unskip", "team_offense_game_summary", 5),  # listed first, happened after the skip below
        record("skip", "team_offense_game_summary", 1),
        record("skip", "upcoming_team_game_context", 2),
        record("unskip", "upcoming_team_game_context", 3, outcome="refused"),  # refused: changes nothing
        record("skip", "player_game_summary", 4),
        record("unskip", "player_game_summary", 6),
        record("skip", "player_game_summary", 7, reason="skipped again"),
        record("force_trigger", "upcoming_player_game_context", 8, outcome="published"),
    ]
    skips = effective_skips(overrides)
    assert sorted(skips) == ["player_game_summary", "upcoming_team_game_context"]
    assert skips["player_game_summary"].reason == "skipped again"
    assert effective_skips([]) == {}


def test_a_record_written_by_hand_still_reads_and_renders():
    minimal = Override.from_document(
        "by-hand",
        {
            "game_date": "2026-11-28",
            "kind": "skip",
            "processors": ["player_game_summary"],
            "note": "typed in the console",
        },
    )
    assert (minimal.kind, minimal.reason, minimal.operator, minimal.outcome, minimal.extra) == (
        "skip",
        "",
        "",
        "",
        {"note": "typed in the console"},
    )
    full = Override.from_document(
        "x",
        {
            "game_date": "2026-11-28",
            "kind": "retrigger",
            "operator": "bob",
            "reason": "fix",
            "outcome": "published",
            "at": T0,
            "retrigger": 2,
            "cascade_from": "2026-11-27",
            "trigger_ids": ["a:2026-11-28:t:retrigger-2"],
            "cascade": {"asked": 1},
        },
    )
    assert full.cascade_from == dt.date(2026, 11, 27) and full.retrigger == 2
    json.dumps(full.as_dict())  # JSON-ready
    document = full.as_document()
    assert document["at"] == T0 and document["cascade"] == {"asked": 1} and document["processor"] is None
    assert minimal.as_document()["processor"] == "player_game_summary"


# -- re-trigger ids: new work to the guard and the receipts, the same id on a replay ----------


def test_a_retrigger_id_is_a_receipt_of_this_pipeline_and_new_work_to_the_guard():
    original = f"{SPEC.name}:2026-11-28:player_game_summary"
    again = retrigger_trigger_id(original, 1)
    assert again == f"{SPEC.name}:2026-11-28:player_game_summary:retrigger-1"
    delivery = Delivery(
        "m-1", T0, {"trigger_id": again, "game_date": "2026-11-28", "source_table": "player_game_summary"}, b"{}"
    )
    receipt = receipt_of(delivery, f"{SPEC.name}:")
    assert isinstance(receipt, dict) and receipt["trigger_id"] == again

    def key(trigger_id: str):
        body = json.dumps(
            {"trigger_id": trigger_id, "source_table": "player_game_summary", "analysis_date": "2026-11-28"}
        )
        import base64

        found, _ = trigger_key({"message": {"data": base64.b64encode(body.encode()).decode(), "messageId": "m"}})
        assert found is not None
        return found.document_id

    assert len({key(original), key(again), key(retrigger_trigger_id(original, 2))}) == 3
    assert key(again) == key(retrigger_trigger_id(original, 1))  # a replay of the same re-trigger: the same marker


def test_retrigger_claims_live_beside_the_dates_claim_not_among_them():
    day = dt.date(2026, 11, 28)
    assert retrigger_key(day, 3) == "2026-11-28~retrigger-3"
    assert retrigger_collection(SPEC, day) == f"{SPEC.orchestrator.collections.triggers}/2026-11-28/retriggers"
