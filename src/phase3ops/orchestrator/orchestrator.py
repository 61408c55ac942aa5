"""The Phase 3 -> Phase 4 orchestrator: record a completion, then advance the date.

`handle_event` is what the Cloud Function runs for each Pub/Sub delivery.
`advance` is the exactly-once trigger path on its own; reconciliation calls
it too, so a missed trigger is repaired by the same code that normally sends
it.

Error contract with Pub/Sub (the function deploys with RETRY_POLICY_RETRY):
- a message that can never be valid is stored, logged at ERROR and
  acknowledged (the handler returns normally);
- anything that may succeed later (Firestore or Pub/Sub unavailable, a claim
  still leased by the delivery being retried) raises, so Pub/Sub redelivers.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from phase3ops.orchestrator.completion_store import CompletionRecord, CompletionStore, RecordOutcome
from phase3ops.orchestrator.messages import BadMessage, parse_completion, parse_delivery
from phase3ops.orchestrator.phase4_publisher import Phase4Publisher, PublishFailed, trigger_id_for
from phase3ops.orchestrator.readiness import Readiness, evaluate
from phase3ops.orchestrator.trigger_claims import TriggerClaim, TriggerClaims
from phase3ops.spec.pipeline import PipelineSpec

log = logging.getLogger("phase3ops.orchestrator")

Clock = Callable[[], dt.datetime]

# Decision outcomes, as logged in jsonPayload.outcome (alert filters match them).
TRIGGERED = "triggered"  # this delivery claimed the date and published the trigger
REPUBLISHED = "republished"  # finished a stale claim that had not been published
CONFIRMED_BY_RECEIPT = "confirmed_by_receipt"  # a stale claim turned out to be published already
WAITING = "waiting"  # the date is not complete yet for its mode
ALREADY_TRIGGERED = "already_triggered"
LATE = "late"  # a run the published trigger did not include (a re-run or backfill after it)
IN_FLIGHT = "trigger_in_flight"  # another delivery holds a live claim and will publish
REJECTED = "rejected"
RETRY_LATER = "retry_later"  # this message's own claim is still leased: raised for redelivery
PUBLISH_FAILED = "publish_failed"  # raised for redelivery; the claim's lease was released


class ClaimStillLeased(RuntimeError):
    """This message's own earlier delivery claimed the date and may still be publishing.

    Raised so Pub/Sub redelivers later; by then the claim is published or
    its lease has run out and this delivery finishes it.
    """


@dataclass(frozen=True)
class Decision:
    outcome: str
    game_date: str | None = None
    processor: str | None = None
    status: str | None = None
    record: str | None = None
    mode: str | None = None
    trigger_id: str | None = None
    completed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    reason: str = ""
    overdue: bool | None = None  # a waiting past date after its trigger deadline (alerted on)
    message_id: str | None = None
    execution_id: str | None = None
    correlation_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The processor runs the date's trigger included; not logged (the trigger message has them).
    trigger_runs: dict[str, str] = field(default_factory=dict, repr=False)


_SEVERITY = {
    REJECTED: logging.ERROR,
    PUBLISH_FAILED: logging.ERROR,
    RETRY_LATER: logging.WARNING,
    LATE: logging.WARNING,
    REPUBLISHED: logging.WARNING,
    CONFIRMED_BY_RECEIPT: logging.WARNING,
}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Orchestrator:
    def __init__(
        self,
        spec: PipelineSpec,
        store: CompletionStore,
        claims: TriggerClaims,
        publisher: Phase4Publisher,
        clock: Clock = utc_now,
    ):
        self.spec = spec
        self.store = store
        self.claims = claims
        self.publisher = publisher
        self.clock = clock

    # -- one Pub/Sub delivery -------------------------------------------------

    def handle_event(self, event_data: Any) -> Decision:
        try:
            delivery = parse_delivery(event_data)
        except BadMessage as bad:
            # Without a message id there is nothing to store the bytes under; the log line keeps them.
            return self._log(
                Decision(REJECTED, reason=bad.reason, extra={"field": bad.field, "event_data": repr(event_data)[:4000]})
            )
        try:
            completion = parse_completion(delivery.raw_data, self.spec)
        except BadMessage as bad:
            self.store.store_rejected(delivery, bad.reason, bad.field)
            return self._log(
                Decision(
                    REJECTED,
                    reason=bad.reason,
                    message_id=delivery.message_id,
                    extra={"field": bad.field, "data": delivery.raw_data[:4000].decode("utf-8", "replace")},
                )
            )

        record = self.store.record(completion, delivery)
        context = dict(
            processor=completion.processor,
            status=completion.status,
            record=record.value,
            message_id=delivery.message_id,
            execution_id=completion.execution_id,
            correlation_id=completion.correlation_id,
        )
        try:
            decision = self.advance(completion.game_date, owner=delivery.message_id)
        except (ClaimStillLeased, PublishFailed) as exc:
            outcome = RETRY_LATER if isinstance(exc, ClaimStillLeased) else PUBLISH_FAILED
            self._log(Decision(outcome, game_date=completion.game_date.isoformat(), reason=str(exc), **context))
            raise
        if decision.outcome == ALREADY_TRIGGERED and record in (RecordOutcome.RECORDED, RecordOutcome.UPDATED):
            # Recorded just now, but possibly counted by a concurrent delivery's
            # trigger: late only if the trigger does not name this very run.
            if decision.trigger_runs.get(completion.processor) != completion.execution_id:
                decision = replace(decision, outcome=LATE, reason=f"{completion.processor} run {completion.execution_id} completed after the trigger")
        return self._log(replace(decision, **context))

    # -- the exactly-once trigger path ---------------------------------------

    def advance(self, game_date: dt.date, owner: str) -> Decision:
        """Trigger Phase 4 for the date if it is ready and not yet triggered.

        `owner` identifies the caller (a Pub/Sub message id, or the
        reconciliation run); a claim it makes is finished by the same owner
        after a redelivery, or by anyone once its lease has run out.
        """
        now = self.clock()
        claim, records = self._read_date(game_date)
        if claim is not None:
            return self._follow(claim, owner, now)

        readiness = evaluate(self.spec, game_date, _counted(records), now)
        if not readiness.ready:
            return _decision(WAITING, game_date, readiness)
        trigger_id = trigger_id_for(self.spec.name, game_date.isoformat())
        payload = self._payload(game_date, trigger_id, readiness, records, now)
        claim = self.claims.try_claim(game_date, trigger_id, owner, payload, now)
        if claim is None:
            # Another delivery won the race to claim; follow its claim like any other.
            existing = self.claims.get(game_date)
            return self._follow(existing, owner, now)
        return self._publish(claim, TRIGGERED, now)

    def _read_date(self, game_date: dt.date) -> tuple[TriggerClaim | None, dict[str, CompletionRecord]]:
        """The claim and every processor record of a date in one batched read."""
        claim_ref = self.claims.document(game_date)
        records, extra = self.store.records_for_date(game_date, self.spec.processor_names, also_read=[claim_ref])
        return TriggerClaims.from_snapshot(extra[claim_ref.path]), records

    def confirm_published_from_receipts(self) -> set[str]:
        """Mark every claim that Pub/Sub shows as published; returns their dates."""
        now = self.clock()
        confirmed = set()
        for receipt in self.publisher.drain_receipts():
            if self.claims.confirm_published(dt.date.fromisoformat(receipt.game_date), receipt.message_id, now):
                confirmed.add(receipt.game_date)
        return confirmed

    def _follow(self, claim: TriggerClaim, owner: str, now: dt.datetime) -> Decision:
        if claim.is_published:
            return _claim_decision(ALREADY_TRIGGERED, claim, "Phase 4 was already triggered")
        if claim.lease_active(now):
            if claim.owner == owner:
                raise ClaimStillLeased(
                    f"trigger claim for {claim.game_date} is still leased by this message until "
                    f"{claim.lease_expires_at.isoformat()}; retry later"
                )
            return _claim_decision(IN_FLIGHT, claim, f"claim held by {claim.owner} until {claim.lease_expires_at.isoformat()}")

        # The claim's owner crashed or failed to publish. Did its publish get through anyway?
        if self.publisher.can_confirm:
            self.confirm_published_from_receipts()
            refreshed = self.claims.get(claim.game_date)
            if refreshed is not None and refreshed.is_published:
                return _claim_decision(CONFIRMED_BY_RECEIPT, refreshed, "the stale claim's trigger had been published")
        taken = self.claims.take_over(claim.game_date, owner, now)
        if taken is None:
            return _claim_decision(IN_FLIGHT, claim, "another delivery took over the stale claim")
        return self._publish(taken, REPUBLISHED, now)

    def _publish(self, claim: TriggerClaim, outcome: str, now: dt.datetime) -> Decision:
        try:
            message_id = self.publisher.publish(claim.payload)
        except PublishFailed:
            try:
                self.claims.release_lease(claim, now)
            except Exception:  # the lease runs out by itself; the publish error is what matters
                log.warning("could not release the trigger claim lease", exc_info=True)
            raise
        self.claims.mark_published(claim.game_date, message_id, self.clock(), confirmed_by="publisher")
        return _claim_decision(outcome, claim, claim.payload.get("reason", ""), published_message_id=message_id)

    def _payload(
        self,
        game_date: dt.date,
        trigger_id: str,
        readiness: Readiness,
        records: dict[str, CompletionRecord],
        now: dt.datetime,
    ) -> dict[str, Any]:
        return {
            "trigger_id": trigger_id,
            "game_date": game_date.isoformat(),
            "mode": readiness.mode,
            "reason": readiness.reason,
            "completed_processors": list(readiness.completed),
            "completed_tables": [self.spec.processor(name).output_table for name in readiness.completed],
            # Which run of each processor Phase 4 gets: lineage, and how a later run is known to be late.
            "executions": {name: records[name].execution_id for name in readiness.completed},
            "triggered_at": now.isoformat(),
            "source": self.spec.orchestrator.function_name,
        }

    def _log(self, decision: Decision) -> Decision:
        fields = {
            k: v for k, v in asdict(decision).items() if k not in ("extra", "trigger_runs") and v not in (None, (), "")
        }
        fields.update(decision.extra)
        severity = logging.WARNING if decision.overdue else _SEVERITY.get(decision.outcome, logging.INFO)
        log.log(
            severity,
            f"{decision.outcome}: {decision.game_date or '-'} {decision.processor or ''} {decision.reason}".strip(),
            extra={"event": "phase3_completion", **fields},
        )
        return decision


def _counted(records: dict[str, CompletionRecord]) -> set[str]:
    return {name for name, record in records.items() if record.counts}


def _decision(outcome: str, game_date: dt.date, readiness: Readiness) -> Decision:
    return Decision(
        outcome,
        game_date=game_date.isoformat(),
        mode=readiness.mode,
        completed=readiness.completed,
        missing=readiness.missing,
        reason=readiness.reason,
        overdue=readiness.overdue,
    )


def _claim_decision(outcome: str, claim: TriggerClaim, reason: str, **extra: Any) -> Decision:
    return Decision(
        outcome,
        game_date=claim.game_date.isoformat(),
        mode=claim.payload.get("mode"),
        trigger_id=claim.trigger_id,
        completed=tuple(claim.payload.get("completed_processors", ())),
        reason=reason,
        extra=extra,
        trigger_runs=dict(claim.payload.get("executions", {})),
    )
