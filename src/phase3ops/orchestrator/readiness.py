"""When is a game date ready for Phase 4? Pure functions over the spec.

The answer is always derived from the set of processors whose completion
counts, never from a stored counter (a counter drifted in the system this
replaces: 1/5 shown while 5/5 were done).

The rule is the reference orchestrator's, declared per mode in
pipeline.yaml: every critical processor done, and either `expected_count`
of critical + optional done (`all_complete`) or at least `min_fraction` of
them (`critical_plus_majority_<pct>pct`, the percentage rounded down as the
reference does). Unlike the reference, a date is never ready while a
critical processor is missing, and only the mode's own processors count.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Collection
from dataclasses import dataclass

from phase3ops.spec.pipeline import ModeRule, PipelineSpec

_OFFSET_KIND = {0: "today", 1: "tomorrow"}
ALL_COMPLETE = "all_complete"


def local_today(spec: PipelineSpec, now: dt.datetime) -> dt.date:
    """Today's date in the pipeline time zone (DST handled by zoneinfo)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(zoneinfo.ZoneInfo(spec.timezone)).date()


def mode_for(spec: PipelineSpec, game_date: dt.date, now: dt.datetime) -> ModeRule | None:
    offset = (game_date - local_today(spec, now)).days
    kind = "past" if offset < 0 else _OFFSET_KIND.get(offset)
    return next((mode for mode in spec.modes if mode.applies_to == kind), None)


def mode_deadline(spec: PipelineSpec, mode: ModeRule, game_date: dt.date) -> dt.datetime:
    """By when `mode` wants the date triggered: its deadline day (relative to the game date) and time, local time."""
    local = dt.datetime.combine(game_date + dt.timedelta(days=mode.deadline_day), mode.deadline_time)
    return local.replace(tzinfo=zoneinfo.ZoneInfo(spec.timezone))


def decided_deadline(spec: PipelineSpec, mode_name: str | None, game_date: dt.date) -> dt.datetime:
    """The deadline a trigger decided under `mode_name` was due by (the latest, for an unknown mode):
    what `minutes_before_deadline` in the orchestrator's log and the SLO report both measure against."""
    mode = next((m for m in spec.modes if m.name == mode_name), None)
    return mode_deadline(spec, mode, game_date) if mode else trigger_deadline(spec, game_date)


def minutes_before(deadline: dt.datetime, at: dt.datetime) -> float:
    """How long before `deadline` `at` is, in minutes to one decimal (negative: after it), as logged."""
    return round((deadline - at).total_seconds() / 60, 1)


def trigger_deadline(spec: PipelineSpec, game_date: dt.date) -> dt.datetime:
    """The deadline by which a played date must have been triggered at the latest: that of the
    mode for past dates (Phase 4's overnight run), else the latest any mode sets."""
    past = [mode for mode in spec.modes if mode.applies_to == "past"]
    return max(mode_deadline(spec, mode, game_date) for mode in (past or spec.modes))


def majority_reason(done: int, expected: int) -> str:
    return f"critical_plus_majority_{done * 100 // expected}pct"


@dataclass(frozen=True)
class Readiness:
    mode: str | None
    ready: bool
    completed: tuple[str, ...]  # every counting processor, in spec order
    missing: tuple[str, ...]  # the mode's processors not complete yet
    reason: str  # for people: which rule fired, or what is still missing
    trigger_reason: str | None = None  # the reference's value: all_complete | critical_plus_majority_<pct>pct
    overdue: bool = False  # not ready, and past its trigger deadline


def evaluate(spec: PipelineSpec, game_date: dt.date, completed: Collection[str], now: dt.datetime) -> Readiness:
    done_all = tuple(name for name in spec.processor_names if name in completed)
    mode = mode_for(spec, game_date, now)
    if mode is None:
        days_ahead = (game_date - local_today(spec, now)).days
        return Readiness(None, False, done_all, (), f"no mode decides a game date {days_ahead} days ahead")
    return judge(spec, mode, game_date, completed, now)


def judge(
    spec: PipelineSpec, mode: ModeRule, game_date: dt.date, completed: Collection[str], now: dt.datetime
) -> Readiness:
    """The date under one mode's rule, whichever mode applies to it today (`explain` shows them all)."""
    done_all = tuple(name for name in spec.processor_names if name in completed)
    expected = mode.expected
    done = [name for name in expected if name in completed]
    missing = tuple(name for name in expected if name not in completed)
    missing_critical = [name for name in mode.critical if name not in completed]
    counts = f"{len(done)}/{len(expected)} of {mode.name}'s processors"
    if not missing_critical and len(done) >= mode.all_complete_at:
        return Readiness(mode.name, True, done_all, missing, f"{ALL_COMPLETE}: {counts}", ALL_COMPLETE)
    if not missing_critical and mode.majority_met(len(done)):
        rule = majority_reason(len(done), len(expected))
        return Readiness(mode.name, True, done_all, missing, f"{rule}: critical done, {counts}", rule)

    overdue = now >= mode_deadline(spec, mode, game_date)
    if missing_critical:
        why = f"critical {', '.join(missing_critical)} missing"
    else:
        needed = f"{mode.all_complete_at}" + (f" or {mode.min_fraction:.0%}" if mode.min_fraction is not None else "")
        why = f"needs {needed}; missing {', '.join(missing)}"
    return Readiness(mode.name, False, done_all, missing, f"{mode.name} waiting: {counts}, {why}", None, overdue)
