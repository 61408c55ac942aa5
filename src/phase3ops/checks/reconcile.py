"""`phase3ops reconcile`: find dates whose recorded state disagrees with itself or the warehouse, and repair them.

Dry run by default. `--fix` records the completions processors forgot to
report (rows in the table, no completion), then sends every affected date
through the orchestrator's own exactly-once path (`Orchestrator.advance`):
a missed trigger is published, a stale claim is confirmed from the receipts
or finished by exactly one caller, and a second `--fix` publishes nothing.
(The reference only flipped a `_triggered` flag and never published, was
blind to the mode rules, and printed success when a fix failed.) A run the
expected-work ledger misses, however old, is re-requested from the
analytics service (`checks/repairs.py`: once per repair, bounded).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from phase3ops.checks.ledger import Gap
from phase3ops.checks.repairs import ProcessorRepairs
from phase3ops.checks.state import DateState
from phase3ops.orchestrator import orchestrator as outcomes
from phase3ops.orchestrator.gate_holds import HELD
from phase3ops.orchestrator.messages import Completion, Delivery
from phase3ops.orchestrator.orchestrator import Orchestrator, RetryLater
from phase3ops.orchestrator.readiness import evaluate
from phase3ops.spec.pipeline import PipelineSpec

UNTRIGGERED = "complete but untriggered"
HELD_BY_GATE = "held by a data gate"
PENDING_CLAIM = "pending trigger claim"
MISSING_COMPLETION = "completion missing for a table with rows"
MISSING_RUN = "owed run missing"
FIXED_OUTCOMES = {outcomes.TRIGGERED, outcomes.REPUBLISHED, outcomes.CONFIRMED_BY_RECEIPT, outcomes.ALREADY_TRIGGERED}


@dataclass(frozen=True)
class Issue:
    game_date: dt.date
    kind: str
    detail: str
    processor: str | None = None
    rows: int = 0
    gap: Gap | None = None  # MISSING_RUN: what the ledger owes


@dataclass(frozen=True)
class FixResult:
    game_date: dt.date
    ok: bool
    message: str


def find_issues(
    spec: PipelineSpec, states: dict[dt.date, DateState], now: dt.datetime, gaps: Sequence[Gap] = ()
) -> list[Issue]:
    """The window's inconsistencies, then every run the expected-work ledger misses (`gaps`, whatever their age)."""
    issues = []
    for day, state in sorted(states.items()):
        missing = []
        for processor in spec.processor_names:
            rows = state.rows.get(processor, 0)
            if rows > 0 and processor not in state.counted:
                missing.append(processor)
                record = state.records.get(processor)
                recorded = f"a {record.status} record" if record else "no completion record"
                issues.append(
                    Issue(day, MISSING_COMPLETION, f"{processor} wrote {rows} rows but has {recorded}", processor, rows)
                )
        claim = state.claim
        if claim is not None and not claim.is_published:
            issues.append(
                Issue(
                    day,
                    PENDING_CLAIM,
                    f"claim {claim.trigger_id} by {claim.owner} still pending since {claim.claimed_at}",
                )
            )
        elif claim is None and state.hold is not None and state.hold.state == HELD:
            issues.append(
                Issue(
                    day,
                    HELD_BY_GATE,
                    f"{', '.join(state.hold.blocked_by)} failed at the last evaluation; --fix evaluates it again",
                )
            )
        elif claim is None:
            # Mode-aware: what would count once the missing completions are recorded.
            readiness = evaluate(spec, day, state.counted | set(missing), now)
            if readiness.ready and not missing:
                issues.append(Issue(day, UNTRIGGERED, readiness.reason))
            elif readiness.ready:
                issues.append(Issue(day, UNTRIGGERED, f"{readiness.reason} once the missing completions are recorded"))
    issues.extend(Issue(gap.game_date, MISSING_RUN, gap.describe(now), gap.processor, gap=gap) for gap in gaps)
    return issues


def fix(
    orchestrator: Orchestrator, issues: list[Issue], now: dt.datetime, repairs: ProcessorRepairs | None = None
) -> list[FixResult]:
    run_id = f"reconcile-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    results = []
    gaps = [issue.gap for issue in issues if issue.gap is not None]
    if repairs is not None and gaps:
        for repair in repairs.request(gaps, now, run_id):
            results.append(
                FixResult(
                    repair.game_date,
                    repair.ok,
                    f"{repair.processor}: {repair.outcome.replace('_', ' ')}: {repair.detail}",
                )
            )
    for issue in issues:
        if issue.kind != MISSING_COMPLETION:
            continue
        assert issue.processor is not None  # a missing completion is always some processor's
        completion = Completion(
            processor=issue.processor,
            reported_name=issue.processor,
            game_date=issue.game_date,
            status="success",
            execution_id=f"{run_id}-{issue.processor}",
            correlation_id=run_id,
            output_table=orchestrator.spec.processor(issue.processor).output_table,
            record_count=issue.rows,
            metadata={"recorded_by": "reconciliation"},
        )
        delivery = Delivery(f"{run_id}:{issue.game_date}:{issue.processor}", now, {}, b"")
        try:
            orchestrator.store.record(completion, delivery)
            results.append(
                FixResult(issue.game_date, True, f"recorded the completion of {issue.processor} ({issue.rows} rows)")
            )
        except Exception as exc:
            results.append(
                FixResult(issue.game_date, False, f"could not record {issue.processor}: {type(exc).__name__}: {exc}")
            )
    for day in sorted({i.game_date for i in issues if i.kind != MISSING_RUN}):
        try:
            decision = orchestrator.advance(day, owner=run_id)
        except RetryLater as exc:
            results.append(FixResult(day, False, f"not repaired yet: {exc}"))
            continue
        except Exception as exc:
            results.append(FixResult(day, False, f"triggering Phase 4 failed: {type(exc).__name__}: {exc}"))
            continue
        if decision.outcome in FIXED_OUTCOMES:
            results.append(
                FixResult(day, True, f"Phase 4 {decision.outcome.replace('_', ' ')} ({decision.trigger_id})")
            )
        elif decision.outcome == outcomes.WAITING:
            results.append(FixResult(day, True, f"not complete yet: {decision.reason}"))
        elif decision.outcome == outcomes.HELD:
            results.append(FixResult(day, False, f"still {decision.reason}"))
        else:
            results.append(FixResult(day, False, f"not repaired: {decision.outcome}: {decision.reason}"))
    return results
