"""Completion tracking: what Firestore says each processor finished agrees with what the warehouse holds."""

from __future__ import annotations

from phase3ops.checks.context import CheckContext
from phase3ops.checks.results import CheckResult, Status
from phase3ops.orchestrator.gate_holds import HELD
from phase3ops.orchestrator.readiness import evaluate
from phase3ops.orchestrator.trigger_claims import TriggerClaim

NAME = "completion_tracking"
TITLE = "Completion tracking"
EXPLANATION = (
    "Phase 4 starts only when the recorded completions say a date is complete. A processor that wrote rows "
    "without reporting (backfills do) leaves the date waiting forever; a complete date without a published "
    "trigger means Phase 4 never ran for it."
)


def pending_state(claim: TriggerClaim) -> str:
    """Where a pending claim stands: being published, waiting for receipts (until when), or stale."""
    if claim.lease_active:
        return f"pending: attempt {claim.attempts} publishing, lease until {claim.lease_expires_at:%H:%M:%S %Z}"
    if claim.awaiting_receipts:
        return f"pending: attempt {claim.attempts} may have sent messages; awaiting their receipts until {claim.receipts_due_by:%H:%M:%S %Z}"
    return f"pending: attempt {claim.attempts} is stale; the next delivery or reconcile --fix finishes it"


def run(context: CheckContext) -> CheckResult:
    findings, details, waiting = [], [], []
    pairs = agreeing = 0
    pending_limit = context.spec.scraper_timing.pending_claim_minutes
    for day, state in sorted(context.states.items()):
        for processor in context.spec.processor_names:
            rows = state.rows.get(processor, 0)
            record = state.records.get(processor)
            counted = record is not None and record.counts
            if rows == 0 and not counted:
                continue
            pairs += 1
            if rows > 0 and not counted:
                status = f"a {record.status} record" if record else "no completion record"
                findings.append(f"{day} {processor}: wrote {rows} rows but has {status} (tracking failure)")
            elif counted and record is not None and rows == 0 and record.record_count > 0:
                findings.append(
                    f"{day} {processor}: reported {record.record_count} rows, the table has none for the date"
                )
            else:
                agreeing += 1
        readiness = evaluate(context.spec, day, state.counted, context.now)
        claim = state.claim
        held = state.hold is not None and state.hold.state == HELD
        if readiness.ready and claim is None and not held:  # a held date is the Data gates check's finding
            findings.append(f"{day}: complete ({readiness.reason}) but Phase 4 was never triggered")
        if claim is not None and not claim.is_published:
            age = (context.now - claim.claimed_at).total_seconds() / 60 if claim.claimed_at else float("inf")
            if age > pending_limit:
                findings.append(
                    f"{day}: trigger claim {claim.trigger_id} pending for {age:.0f} min (limit {pending_limit})"
                )
            waiting.append(f"{day} {pending_state(claim)}")
        details.append(
            f"{day}: {len(state.counted)}/{len(context.spec.processors)} complete, mode {readiness.mode}, "
            f"trigger {'published' if claim and claim.is_published else pending_state(claim) if claim else 'none'}"
        )
    accuracy = agreeing / pairs if pairs else 1.0
    pending = sum(1 for s in context.states.values() if s.claim and not s.claim.is_published)
    return CheckResult(
        NAME,
        TITLE,
        Status.FAILED if findings else Status.OK,
        f"{context.days} dates, {pairs} (date, processor) pairs, accuracy {accuracy:.1%}"
        + (f", {len(findings)} problems" if findings else "")
        + (f"; trigger claim {'; '.join(waiting)}" if waiting else ""),
        EXPLANATION,
        context.reconcile_command(),
        findings,
        details,
        {"completion_accuracy": accuracy, "pending_trigger_claims": float(pending)},
    )
