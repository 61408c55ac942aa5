"""`phase3ops holds`: the game dates a data gate holds from Phase 4, and their re-evaluation.

A held date has no trigger claim; its next completion evaluates its gates
again, and so does `--recheck`, which the `phase3-hold-recheck` job runs
every 15 minutes: data that landed without a completion (a backfill, a
correction) releases the date, and a deadline that passed applies its
mode's `on_deadline` (trigger degraded, or hold on). Re-evaluation is the
orchestrator's own `advance`: the same gates, claim and exactly-once path.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from phase3ops.checks.state import DateState
from phase3ops.orchestrator.gate_holds import HELD, Hold
from phase3ops.orchestrator.orchestrator import Orchestrator, RetryLater
from phase3ops.orchestrator.readiness import mode_deadline
from phase3ops.spec.pipeline import PipelineSpec


@dataclass(frozen=True)
class Rechecked:
    game_date: dt.date
    outcome: str  # the orchestrator's: triggered, held, waiting ... or retry_later, error
    reason: str


def held(states: dict[dt.date, DateState]) -> dict[dt.date, Hold]:
    """Dates whose last gate evaluation held them and that have no published trigger since."""
    return {
        day: state.hold
        for day, state in sorted(states.items())
        if state.hold is not None and state.hold.state == HELD and not (state.claim and state.claim.is_published)
    }


def describe(spec: PipelineSpec, hold: Hold) -> str:
    results = hold.report.get("results") or {}
    gates = "; ".join(f"{name} ({results.get(name, {}).get('detail', '')})" for name in hold.blocked_by)
    mode = next((m for m in spec.modes if m.name == hold.mode), None)
    deadline = (
        f"deadline {mode_deadline(spec, mode, hold.game_date):%m-%d %H:%M %Z}, then {mode.on_deadline}" if mode else ""
    )
    return f"{hold.mode}: held by {gates}; {hold.evaluations} evaluations; {deadline}"


def recheck(orchestrator: Orchestrator, dates: list[dt.date], now: dt.datetime) -> list[Rechecked]:
    run_id = f"recheck-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    results = []
    for day in dates:
        try:
            decision = orchestrator.advance(day, owner=f"{run_id}-{day}")
        except RetryLater as exc:
            results.append(Rechecked(day, "retry_later", str(exc)))
            continue
        except Exception as exc:  # reported per date, never as a pass
            results.append(Rechecked(day, "error", f"{type(exc).__name__}: {exc}"))
            continue
        results.append(Rechecked(day, decision.outcome, decision.reason))
    return results
