"""Game-day triggers: every date with games is triggered by its deadline; a date without games never pages.

Replaces a "no trigger for 23 hours" absence alert, which paged through
every off-day and the whole off-season: whether a trigger is owed is a
question for the game schedule, not the clock.
"""

from __future__ import annotations

from phase3ops.checks.context import CheckContext
from phase3ops.checks.results import CheckResult, Status
from phase3ops.orchestrator.readiness import mode_deadline, mode_for, trigger_deadline

NAME = "game_day_triggers"
TITLE = "Game-day triggers"
EXPLANATION = (
    "Each mode has its trigger deadline: the same-day run's by early afternoon, the overnight run's the next "
    "morning. A date with games and no published trigger by the deadline of the mode it is in means Phase 4 "
    "runs on stale data; dates without games owe nothing."
)


def run(context: CheckContext) -> CheckResult:
    findings, details = [], []
    game_days = 0
    for day, state in sorted(context.states.items()):
        if not state.games:
            details.append(f"{day}: no games, no trigger owed")
            continue
        game_days += 1
        # The deadline of the mode the date is in now: a same-day date that stalls pages after its
        # own deadline, not the overnight run's the next morning.
        mode = mode_for(context.spec, day, context.now)
        deadline = mode_deadline(context.spec, mode, day) if mode is not None else trigger_deadline(context.spec, day)
        deadline_time = f"{deadline:%m-%d %H:%M} ({mode.name if mode else 'latest'})"
        claim = state.claim
        if claim is not None and claim.is_published:
            details.append(f"{day}: {state.games} games, triggered")
        elif context.now < deadline:
            details.append(f"{day}: {state.games} games, deadline {deadline_time} not reached yet")
        else:
            where = "its claim is still pending" if claim is not None else "no trigger claim"
            findings.append(
                f"{day}: {state.games} games, trigger deadline {deadline_time} passed, Phase 4 not triggered ({where})"
            )
    return CheckResult(
        NAME,
        TITLE,
        Status.FAILED if findings else Status.OK,
        f"{game_days} dates with games"
        + (f", {len(findings)} not triggered by their deadline" if findings else ", none overdue"),
        EXPLANATION,
        context.reconcile_command(),
        findings,
        details,
        {"untriggered_game_dates": float(len(findings))},
    )
