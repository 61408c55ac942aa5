"""Data gates: no ready date is silently kept from Phase 4 by its data.

A ready date whose tables fail a `block` gate is held (gate_holds.py): the
orchestrator re-evaluates it on its next completion and every 15 minutes,
and at its mode's deadline triggers it degraded or holds on. Held is not
lost, but it is not done either: every held date is a finding here, with
the gate, its figure and since when, and a date triggered degraded is shown.
"""

from __future__ import annotations

import zoneinfo

from phase3ops.checks.context import CheckContext
from phase3ops.checks.results import CheckResult, Status
from phase3ops.orchestrator.gate_holds import HELD

NAME = "data_gates"
TITLE = "Data gates"
EXPLANATION = (
    "The date is complete by its processors' reports, but its tables failed a data gate in pipeline.yaml, so Phase 4 "
    "was not triggered: it would compute on missing or poor data. It is re-evaluated as data lands, and its mode's "
    "deadline decides what happens if it never passes."
)


def held_dates(context: CheckContext) -> dict:
    return {
        day: state.hold
        for day, state in context.states.items()
        if state.hold is not None and state.hold.state == HELD and not (state.claim and state.claim.is_published)
    }


def run(context: CheckContext) -> CheckResult:
    zone = zoneinfo.ZoneInfo(context.spec.timezone)
    findings, details = [], []
    held = held_dates(context)
    for day, hold in sorted(held.items()):
        results = hold.report.get("results") or {}
        first = results.get(hold.blocked_by[0], {}) if hold.blocked_by else {}
        since = f" since {hold.first_held_at.astimezone(zone):%m-%d %H:%M}" if hold.first_held_at else ""
        deadline = ", past its deadline" if hold.past_deadline else ""
        findings.append(
            f"{day}: held by {', '.join(hold.blocked_by)}{since} ({hold.evaluations} evaluations{deadline}): {first.get('detail', '')}"
        )
    for day, state in sorted(context.states.items()):
        decision = state.claim.decision if state.claim is not None else {}
        if decision.get("degraded"):
            failing = ", ".join((decision.get("gates") or {}).get("blocked_by") or ()) or "a gate"
            details.append(f"{day}: triggered degraded at its deadline ({failing} still failing)")
    return CheckResult(
        NAME,
        TITLE,
        Status.FAILED if findings else Status.OK,
        f"{len(held)} dates held by a gate" if held else "no date held by a gate",
        EXPLANATION,
        f"phase3ops holds --days {context.days} (what holds each date); phase3ops holds --days {context.days} --recheck "
        "once the data is fixed; docs/runbook.md#phase4-trigger-held",
        findings,
        details,
        {"held_game_dates": float(len(held))},
    )
