"""Modes by game date vs today in America/New_York, around midnight and across DST changes."""

from __future__ import annotations

import datetime as dt

import pytest

from phase3ops.orchestrator.readiness import evaluate, mode_for
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.specs import REPO_ROOT, write_pipeline_variant

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
ALL = set(SPEC.processor_names)
CRITICAL = set(SPEC.critical_processors)
UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "now_utc, game_date, mode",
    [
        # Standard time (UTC-5): midnight in New York is 05:00 UTC.
        ("2026-01-15T04:59:59", "2026-01-14", "same_day"),
        ("2026-01-15T05:00:00", "2026-01-14", "overnight"),
        ("2026-01-15T04:59:59", "2026-01-15", "tomorrow"),
        ("2026-01-15T05:00:00", "2026-01-15", "same_day"),
        ("2026-01-15T05:00:00", "2026-01-16", "tomorrow"),
        ("2026-01-15T05:00:00", "2026-01-17", None),
        # Daylight time (UTC-4): midnight is 04:00 UTC.
        ("2026-07-15T03:59:59", "2026-07-14", "same_day"),
        ("2026-07-15T04:00:00", "2026-07-14", "overnight"),
        # DST starts 2026-03-08 at 02:00 EST: that day begins at 05:00 UTC, the next at 04:00 UTC.
        ("2026-03-08T04:59:59", "2026-03-08", "tomorrow"),
        ("2026-03-08T05:00:00", "2026-03-08", "same_day"),
        ("2026-03-09T03:59:59", "2026-03-08", "same_day"),
        ("2026-03-09T04:00:00", "2026-03-08", "overnight"),
        # DST ends 2026-11-01 at 02:00 EDT: that day begins at 04:00 UTC, the next at 05:00 UTC.
        ("2026-11-01T03:59:59", "2026-11-01", "tomorrow"),
        ("2026-11-01T04:00:00", "2026-11-01", "same_day"),
        ("2026-11-02T04:59:59", "2026-11-01", "same_day"),  # a naive UTC-4 would already say overnight
        ("2026-11-02T05:00:00", "2026-11-01", "overnight"),
    ],
)
def test_mode_boundaries(now_utc, game_date, mode):
    resolved = mode_for(SPEC, dt.date.fromisoformat(game_date), at(now_utc))
    assert (resolved.name if resolved else None) == mode


def test_overnight_needs_all_five():
    now, date = at("2026-11-29T15:00:00"), dt.date(2026, 11, 28)
    assert not evaluate(SPEC, date, CRITICAL, now).ready
    result = evaluate(SPEC, date, ALL - {"player_game_summary"}, now)
    assert (result.ready, result.missing) == (False, ("player_game_summary",))
    assert evaluate(SPEC, date, ALL, now).ready


@pytest.mark.parametrize("game_date", ["2026-11-29", "2026-11-30"])
def test_same_day_and_tomorrow_need_the_critical_set(game_date):
    now, date = at("2026-11-29T15:00:00"), dt.date.fromisoformat(game_date)
    assert evaluate(SPEC, date, CRITICAL, now).ready
    assert not evaluate(SPEC, date, ALL - CRITICAL | {sorted(CRITICAL)[0]}, now).ready


def test_majority_threshold(tmp_path):
    spec = load_pipeline_spec(write_pipeline_variant(tmp_path, {"spec.modes.1.majority_threshold": 0.6}))
    now, today = at("2026-11-29T15:00:00"), dt.date(2026, 11, 29)
    assert not evaluate(spec, today, CRITICAL, now).ready  # 2 of 5 < ceil(0.6 * 5) = 3
    three = CRITICAL | {"player_game_summary"}
    assert evaluate(spec, today, three, now).ready


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError):
        mode_for(SPEC, dt.date(2026, 11, 28), dt.datetime(2026, 11, 29, 12))


@pytest.mark.parametrize(
    "now_utc, overdue",
    [
        ("2026-11-29T14:59:59", False),  # 09:59:59 EST the day after the game
        ("2026-11-29T15:00:00", True),  # 10:00 EST: Phase 4 should have started
    ],
)
def test_a_waiting_past_date_is_overdue_after_the_deadline(now_utc, overdue):
    result = evaluate(SPEC, dt.date(2026, 11, 28), CRITICAL, at(now_utc))
    assert (result.ready, result.overdue) == (False, overdue)


def test_the_deadline_follows_daylight_saving_time():
    from phase3ops.orchestrator.readiness import trigger_deadline

    assert trigger_deadline(SPEC, dt.date(2026, 7, 14)).astimezone(UTC) == at("2026-07-15T14:00:00")
    assert trigger_deadline(SPEC, dt.date(2026, 1, 14)).astimezone(UTC) == at("2026-01-15T15:00:00")
