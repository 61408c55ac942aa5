"""When is a game date ready for Phase 4? Pure functions over the spec.

The answer is always derived from the set of processors whose latest
completion counts, never from a stored counter (a counter drifted in the
system this replaces: 1/5 shown while 5/5 were done).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass
from typing import Collection

from phase3ops.spec.pipeline import ModeRule, PipelineSpec

_OFFSET_KIND = {0: "today", 1: "tomorrow"}


def local_today(spec: PipelineSpec, now: dt.datetime) -> dt.date:
    """Today's date in the pipeline time zone (DST handled by zoneinfo)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(zoneinfo.ZoneInfo(spec.timezone)).date()


def mode_for(spec: PipelineSpec, game_date: dt.date, now: dt.datetime) -> ModeRule | None:
    offset = (game_date - local_today(spec, now)).days
    kind = "past" if offset < 0 else _OFFSET_KIND.get(offset)
    return next((mode for mode in spec.modes if mode.applies_to == kind), None)


def trigger_deadline(spec: PipelineSpec, game_date: dt.date) -> dt.datetime:
    """When a game date should have been triggered: the deadline time, the next day, local time."""
    local = dt.datetime.combine(game_date + dt.timedelta(days=1), spec.orchestrator.trigger_deadline)
    return local.replace(tzinfo=zoneinfo.ZoneInfo(spec.timezone))


@dataclass(frozen=True)
class Readiness:
    mode: str | None
    ready: bool
    completed: tuple[str, ...]
    missing: tuple[str, ...]
    reason: str
    overdue: bool = False  # not ready, and past its trigger deadline


def evaluate(spec: PipelineSpec, game_date: dt.date, completed: Collection[str], now: dt.datetime) -> Readiness:
    done = tuple(name for name in spec.processor_names if name in completed)
    mode = mode_for(spec, game_date, now)
    if mode is None:
        days_ahead = (game_date - local_today(spec, now)).days
        return Readiness(None, False, done, (), f"no mode decides a game date {days_ahead} days ahead")

    required = spec.processor_names if mode.requires == "all" else sorted(spec.critical_processors)
    missing = tuple(name for name in required if name not in completed)
    overdue = now >= trigger_deadline(spec, game_date)
    if missing:
        return Readiness(
            mode.name, False, done, missing, f"{mode.name} needs {mode.requires} processors; missing {', '.join(missing)}", overdue
        )
    if mode.majority_threshold is not None:
        # round() first: 0.6 * 5 is 3.0000000000000004 in floating point.
        needed = math.ceil(round(mode.majority_threshold * len(spec.processors), 9))
        if len(done) < needed:
            others = tuple(name for name in spec.processor_names if name not in completed)
            return Readiness(
                mode.name,
                False,
                done,
                others,
                f"{mode.name} needs {needed} of {len(spec.processors)} processors; {len(done)} done",
                overdue,
            )
    return Readiness(mode.name, True, done, (), f"{mode.name}: {mode.requires} processors complete ({len(done)}/{len(spec.processors)})")
