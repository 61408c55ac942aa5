"""The expected-work ledger and per-mode deadlines, as pure functions over the repo's pipeline.yaml."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Collection
from typing import cast

import pytest

from phase3ops.checks import expected_work, game_day_triggers
from phase3ops.checks.context import CheckContext
from phase3ops.checks.ledger import Ledger, gaps, ledger_window, owed
from phase3ops.checks.results import Status
from phase3ops.checks.state import DateState
from phase3ops.orchestrator.completion_store import CompletionRecord
from phase3ops.spec.pipeline import load_pipeline_spec
from phase3ops.warehouse.port import Warehouse
from tests.support.repo_copy import REPO_ROOT

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
NY = zoneinfo.ZoneInfo(SPEC.timezone)
DAY = dt.date(2026, 11, 20)
ALL = set(SPEC.processor_names)
UPCOMING = {"upcoming_player_game_context", "upcoming_team_game_context"}
NO_WAREHOUSE = cast(Warehouse, None)  # the checks under test never read the warehouse


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), NY)


def record(processor: str, status: str = "success", day: dt.date = DAY) -> CompletionRecord:
    counts = status in ("success", "partial")
    return CompletionRecord(day, processor, status, counts, "exec-1", "m-1", at(day, 23), 10, processor)


def state(
    day: dt.date = DAY,
    games: int = 3,
    ran: Collection[str] = frozenset(),
    rows: dict[str, int] | None = None,
    failed: Collection[str] = frozenset(),
) -> DateState:
    records = {name: record(name, day=day) for name in ran} | {name: record(name, "failed", day) for name in failed}
    return DateState(day, records=records, rows=dict(rows or {}), games=games)


def test_each_processor_is_owed_from_the_earliest_deadline_of_a_mode_that_expects_it():
    due = owed(SPEC, DAY)
    assert set(due) == ALL
    # The run for tomorrow's games (17:30 the day before) expects the upcoming context first.
    assert due["upcoming_player_game_context"] == (at(DAY - dt.timedelta(days=1), 17, 30), "tomorrow")
    assert due["player_game_summary"] == (at(DAY + dt.timedelta(days=1), 10), "overnight")


def test_a_processor_that_never_ran_is_a_gap_once_due_and_not_before():
    states = {DAY: state(ran=ALL - {"team_defense_game_summary"})}
    assert gaps(SPEC, states, {}, at(DAY + dt.timedelta(days=1), 9, 59)) == []
    [gap] = gaps(SPEC, states, {}, at(DAY + dt.timedelta(days=1), 10))
    assert (gap.game_date, gap.processor, gap.mode, gap.status) == (
        DAY,
        "team_defense_game_summary",
        "overnight",
        "no run",
    )


def test_the_upcoming_context_is_owed_on_the_day_before():
    states = {DAY: state(ran=set())}
    found = gaps(SPEC, states, {}, at(DAY - dt.timedelta(days=1), 18))
    assert {gap.processor for gap in found} == UPCOMING


def test_a_run_that_does_not_count_leaves_the_gap_and_says_so():
    [gap] = gaps(
        SPEC,
        {DAY: state(ran=ALL - {"player_game_summary"}, failed={"player_game_summary"})},
        {},
        at(DAY + dt.timedelta(days=2), 0),
    )
    assert gap.status == "its last run is failed"


@pytest.mark.parametrize(
    "resolved",
    [
        {"ran": ALL},
        {
            "ran": ALL - {"team_offense_game_summary"},
            "rows": {"team_offense_game_summary": 30},
        },  # rows without a record: completion tracking's finding
    ],
)
def test_a_run_or_rows_resolve_a_gap(resolved):
    assert gaps(SPEC, {DAY: state(**resolved)}, {}, at(DAY + dt.timedelta(days=3), 0)) == []


def test_an_operator_skip_resolves_a_gap_for_that_date_only():
    later = DAY + dt.timedelta(days=1)
    states = {
        DAY: state(ran=ALL - {"team_offense_game_summary"}),
        later: state(later, ran=ALL - {"team_offense_game_summary"}),
    }
    found = gaps(SPEC, states, {DAY: {"team_offense_game_summary"}}, at(DAY + dt.timedelta(days=5), 0))
    assert [(gap.game_date, gap.processor) for gap in found] == [(later, "team_offense_game_summary")]


def test_a_date_without_games_owes_nothing():
    assert gaps(SPEC, {DAY: state(games=0)}, {}, at(DAY + dt.timedelta(days=30), 0)) == []


def test_an_old_gap_never_leaves_the_ledger():
    """The scheduled checks look at 3 dates; the ledger reads from its start, so a gap 40 days old is still there."""
    now = at(DAY + dt.timedelta(days=40), 10, 45)
    window = ledger_window(SPEC, now)
    assert window is not None and SPEC.expected_work is not None
    first, last = window
    assert first == SPEC.expected_work.since <= DAY and last == DAY + dt.timedelta(days=41)  # tomorrow is owed today
    states = {DAY: state(ran=ALL - {"upcoming_team_game_context"})}
    context = CheckContext(
        SPEC,
        now.date() - dt.timedelta(days=2),
        now.date(),
        now,
        {},
        NO_WAREHOUSE,
        ledger=Ledger(first, last, states, {}),
    )
    result = expected_work.run(context)
    assert result.status is Status.FAILED and result.metrics == {"missing_expected_work": 1.0}
    assert result.findings[0].startswith(f"{DAY} upcoming_team_game_context: no run; owed by 11-19 17:30")
    assert "overdue 40.7 days" in result.findings[0]


def test_no_ledger_declared_is_skipped_not_passed():
    context = CheckContext(SPEC, DAY, DAY, at(DAY, 12), {}, NO_WAREHOUSE)
    assert expected_work.run(context).status is Status.SKIPPED


def _untriggered_today(now: dt.datetime):
    context = CheckContext(SPEC, DAY, DAY, now, {DAY: state(ran=set())}, NO_WAREHOUSE)
    return game_day_triggers.run(context)


def test_a_same_day_date_pages_after_its_own_deadline_not_the_next_morning():
    before = _untriggered_today(at(DAY, 12, 59))
    assert before.status is Status.OK
    after = _untriggered_today(at(DAY, 13, 45))
    assert after.status is Status.FAILED and after.metrics == {"untriggered_game_dates": 1.0}
    assert after.findings == [
        f"{DAY}: 3 games, trigger deadline 11-20 13:00 (same_day) passed, Phase 4 not triggered (no trigger claim)"
    ]


def test_a_past_date_uses_the_overnight_deadline():
    result = _untriggered_today(at(DAY + dt.timedelta(days=1), 9, 30))
    assert (
        result.status is Status.OK
    )  # same-day deadline passed yesterday, but the date is now in overnight mode, due 10:00
    assert _untriggered_today(at(DAY + dt.timedelta(days=1), 10, 5)).status is Status.FAILED


def test_repairs_look_ahead_by_their_lead_reports_do_not():
    states = {DAY: state(ran=ALL - {"player_game_summary"})}
    half_past_nine = at(DAY + dt.timedelta(days=1), 9, 30)
    assert SPEC.expected_work is not None
    lead = dt.timedelta(minutes=SPEC.expected_work.repair_lead_minutes)
    assert gaps(SPEC, states, {}, half_past_nine) == []
    assert [g.processor for g in gaps(SPEC, states, {}, half_past_nine, lead)] == ["player_game_summary"]
    assert gaps(SPEC, states, {}, at(DAY + dt.timedelta(days=1), 8, 59), lead) == []
