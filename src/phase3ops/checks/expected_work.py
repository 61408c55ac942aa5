"""Expected work: every (game date, processor) the schedule owes, since the ledger's start, has run or was skipped.

Not bounded by the health check's window: the ledger reads every date from
`expected_work.since`, so a gap is reported every day until a run fills it
or an operator skips it, instead of leaving the window unresolved.
"""

from __future__ import annotations

from phase3ops.checks.context import CheckContext
from phase3ops.checks.results import CheckResult, Status

NAME = "expected_work"
TITLE = "Expected work"
EXPLANATION = (
    "A processor that never runs for a game date is silent: no completion, no error, and a date can still "
    "trigger without an optional processor. Phase 4 then works on a date with a table missing. Re-request the "
    "run (reconcile --fix does, within its bounds), fix the processor, or skip the pair with a reason."
)
FIX = "phase3ops reconcile --fix (re-requests missing runs), or phase3ops skip DATE PROCESSOR --reason ..."
SHOWN = 20  # findings listed; the count and the metric cover the rest


def run(context: CheckContext) -> CheckResult:
    ledger = context.ledger
    if ledger is None:
        return CheckResult(NAME, TITLE, Status.SKIPPED, "pipeline.yaml declares no expected_work ledger", EXPLANATION)
    found = ledger.gaps(context.spec, context.now)
    skipped = sum(len(names) for names in ledger.skipped.values())
    findings = [gap.describe(context.now) for gap in found[:SHOWN]]
    if len(found) > SHOWN:
        findings.append(f"... and {len(found) - SHOWN} more, newer than these")
    dates = sorted({gap.game_date for gap in found})
    return CheckResult(
        NAME,
        TITLE,
        Status.FAILED if found else Status.OK,
        f"{ledger.game_dates} game dates since {ledger.first}"
        + (
            f", {len(found)} owed runs missing on {len(dates)} dates (oldest {dates[0]})"
            if found
            else ", nothing owed is missing"
        )
        + (f", {skipped} skipped by an operator" if skipped else ""),
        EXPLANATION,
        FIX,
        findings,
        [f"{day}: skipped {', '.join(sorted(names))}" for day, names in sorted(ledger.skipped.items()) if names],
        {"missing_expected_work": float(len(found))},
    )
