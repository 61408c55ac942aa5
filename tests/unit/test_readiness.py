"""Modes by game date vs today in America/New_York, around midnight and across DST changes,
and the reference's decision rules per mode."""

from __future__ import annotations

import datetime as dt

import pytest

from phase3ops.orchestrator.readiness import evaluate, mode_for
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.specs import DELETE, REPO_ROOT, write_pipeline_variant

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
ALL = set(SPEC.processor_names)
PGS, TOGS, TDGS, UPGC, UTGC = SPEC.processor_names
OVERNIGHT_CRITICAL = {PGS, UPGC}
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # 10:00 in New York
PAST, TODAY, TOMORROW = dt.date(2026, 11, 28), dt.date(2026, 11, 29), dt.date(2026, 11, 30)


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


def test_the_shipped_rules_are_the_reference_orchestrators():
    modes = {m.name: m for m in SPEC.modes}
    assert (set(modes["overnight"].critical), set(modes["overnight"].optional)) == ({PGS, UPGC}, {TOGS, TDGS, UTGC})
    assert (modes["overnight"].all_complete_at, modes["overnight"].min_fraction) == (5, 0.6)
    for name in ("same_day", "tomorrow"):
        assert (modes[name].critical, modes[name].optional, modes[name].all_complete_at) == ((UPGC,), (UTGC,), 1)


@pytest.mark.parametrize(
    "completed, ready, trigger_reason",
    [
        (ALL, True, "all_complete"),
        (ALL - {TDGS}, True, "critical_plus_majority_80pct"),
        ({PGS, UPGC, TOGS}, True, "critical_plus_majority_60pct"),  # 3/5 meets 60 % exactly
        ({PGS, UPGC}, False, None),  # critical done, 40 % < 60 %
        (ALL - {UPGC}, False, None),  # 80 %, but a critical processor is missing
        (ALL - {PGS}, False, None),
        (set(), False, None),
    ],
)
def test_overnight_rules(completed, ready, trigger_reason):
    result = evaluate(SPEC, PAST, completed, NOW)
    assert (result.mode, result.ready, result.trigger_reason) == ("overnight", ready, trigger_reason)
    if not completed >= OVERNIGHT_CRITICAL:
        assert "critical" in result.reason and not result.ready


@pytest.mark.parametrize("game_date, mode", [(TODAY, "same_day"), (TOMORROW, "tomorrow")])
@pytest.mark.parametrize(
    "completed, ready",
    [
        ({UPGC}, True),  # the one critical processor is all the reference expects
        ({UPGC, UTGC}, True),
        ({UTGC}, False),  # the optional one alone never triggers
        ({PGS, TOGS, TDGS, UTGC}, False),  # processors outside the mode do not count
        (set(), False),
    ],
)
def test_same_day_and_tomorrow_need_their_critical_processor(game_date, mode, completed, ready):
    result = evaluate(SPEC, game_date, completed, NOW)
    assert (result.mode, result.ready) == (mode, ready)
    assert result.trigger_reason == ("all_complete" if ready else None)


def test_a_date_two_days_ahead_is_never_ready():
    result = evaluate(SPEC, dt.date(2026, 12, 1), ALL, NOW)
    assert (result.mode, result.ready) == (None, False)
    assert "2 days ahead" in result.reason


def test_min_fraction_without_expected_count_waits_for_all(tmp_path):
    spec = load_pipeline_spec(write_pipeline_variant(tmp_path, {"spec.modes.0.min_fraction": DELETE}))
    assert not evaluate(spec, PAST, ALL - {TDGS}, NOW).ready
    assert evaluate(spec, PAST, ALL, NOW).trigger_reason == "all_complete"


def test_the_percentage_rounds_down_like_the_reference(tmp_path):
    # 2 of 3 is 66.67 %: the reference writes int(ratio * 100) = 66.
    spec = load_pipeline_spec(
        write_pipeline_variant(
            tmp_path,
            {"spec.modes.0.optional": [TOGS, TDGS], "spec.modes.0.critical": [UPGC], "spec.modes.0.min_fraction": 0.6},
        )
    )
    assert evaluate(spec, PAST, {UPGC, TOGS}, NOW).trigger_reason == "critical_plus_majority_66pct"


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
    result = evaluate(SPEC, dt.date(2026, 11, 28), OVERNIGHT_CRITICAL, at(now_utc))
    assert (result.ready, result.overdue) == (False, overdue)


def test_the_deadline_follows_daylight_saving_time():
    from phase3ops.orchestrator.readiness import trigger_deadline

    assert trigger_deadline(SPEC, dt.date(2026, 7, 14)).astimezone(UTC) == at("2026-07-15T14:00:00")
    assert trigger_deadline(SPEC, dt.date(2026, 1, 14)).astimezone(UTC) == at("2026-01-15T15:00:00")
