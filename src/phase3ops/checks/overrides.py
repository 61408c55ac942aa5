"""Operator overrides: every forced trigger, skip and re-trigger of the checked dates, with who and why.

Each override is listed (with --verbose). It is a finding when a skip
stands without a reason, or when a forced trigger or a re-trigger did not
reach Phase 4: its record never got past `pending` (the command died), its
publish was not confirmed, or it failed, and its claim is still not
published (the orchestrator's recovery or a later command may have finished
it since: then it is only listed).
"""

from __future__ import annotations

import zoneinfo

from phase3ops.checks.context import CheckContext
from phase3ops.checks.results import CheckResult, Status
from phase3ops.orchestrator.trigger_claims import TriggerClaims
from phase3ops.overrides.records import FORCE_TRIGGER, RECORDED, REFUSED, RETRIGGER, SETTLED, SKIP, Override, between

NAME = "overrides"
TITLE = "Operator overrides"
EXPLANATION = (
    "An override changes what Phase 4 is sent or what a date owes outside the normal path. Each needs a reason on "
    "record, and a forced trigger or re-trigger that did not reach Phase 4 leaves the date short of what the operator "
    "decided it needs."
)


def run(context: CheckContext, client=None) -> CheckResult:
    """`client`: the Firestore client to read with (default: built for the context's project)."""
    if client is None:
        from phase3ops import cloud

        client = cloud.firestore_client(context.project or None)
    spec = context.spec
    zone = zoneinfo.ZoneInfo(spec.timezone)
    by_date = between(client, spec, context.first, context.last)
    overrides = [o for day in sorted(by_date) for o in by_date[day]]
    unsettled = [o for o in overrides if o.kind in (FORCE_TRIGGER, RETRIGGER) and o.outcome not in (*SETTLED, REFUSED)]
    unsettled_ids = {o.id for o in unsettled}
    paths = sorted({o.claim for o in unsettled if o.claim})
    claims = (
        {s.reference.path: TriggerClaims.from_snapshot(s) for s in client.get_all([client.document(p) for p in paths])}
        if paths
        else {}
    )

    findings, details, fixes = [], [], []
    for override in overrides:
        line = _describe(override, zone)
        if override.kind == SKIP and override.outcome == RECORDED and not override.reason.strip():
            findings.append(f"{line}: a skip without a reason")
            fixes.append(
                f"phase3ops skip {override.game_date} {' '.join(override.processors)} --reason ... (or --undo)"
            )
        elif override.id in unsettled_ids:
            claim = claims.get(override.claim) if override.claim else None
            if claim is not None and claim.is_published:
                details.append(f"{line} (its claim has been published since)")
                continue
            state = (
                "no claim was made"
                if claim is None
                else f"its claim is still pending (attempt {claim.attempts}, owner {claim.owner})"
            )
            findings.append(f"{line}: did not reach Phase 4: {state}")
            if override.kind == FORCE_TRIGGER and claim is not None:
                fixes.append(f"scripts/reconcile_phase3_completion.py --date {override.game_date} --fix")
            else:
                verb = (
                    f"trigger {override.game_date} --force"
                    if override.kind == FORCE_TRIGGER
                    else f"retrigger {override.game_date}"
                )
                fixes.append(f"phase3ops {verb} --reason ...")
        else:
            details.append(line)
    dates = len({o.game_date for o in overrides})
    if overrides:
        summary = (
            f"{len(overrides)} override{'s' if len(overrides) != 1 else ''} on {dates} date{'s' if dates != 1 else ''}"
        )
        summary += (
            f", {len(findings)} need{'s' if len(findings) == 1 else ''} attention"
            if findings
            else ", all recorded with a reason and settled"
        )
    else:
        summary = "no overrides in the checked dates"
    return CheckResult(
        NAME,
        TITLE,
        Status.FAILED if findings else Status.OK,
        summary,
        EXPLANATION,
        "; ".join(dict.fromkeys(fixes)),
        findings,
        details,
    )


def _describe(override: Override, zone: zoneinfo.ZoneInfo) -> str:
    at = f" {override.at.astimezone(zone):%m-%d %H:%M %Z}" if override.at else ""
    number = f" #{override.retrigger}" if override.retrigger else ""
    what = f" {', '.join(override.processors)}" if override.kind in (SKIP, "unskip") else ""
    cascade = f" (cascade from {override.cascade_from})" if override.cascade_from else ""
    reason = override.reason.strip() or "no reason given"
    return f"{override.game_date}{at} {override.kind}{number}{what}{cascade} by {override.operator or 'unknown'}: {override.outcome} ({reason})"
