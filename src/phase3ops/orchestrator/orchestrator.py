"""The Phase 3 -> Phase 4 orchestrator: record a completion, then advance the date.

`handle_event` is what the Cloud Function runs for each Pub/Sub delivery.
`advance` is the exactly-once trigger path on its own; reconciliation calls
it too, so a missed trigger is repaired by the same code that normally sends
it.

Error contract with Pub/Sub (the function deploys with RETRY_POLICY_RETRY):
- a message that can never be valid is stored, logged at ERROR and
  acknowledged (the handler returns normally);
- anything that may succeed later raises, so Pub/Sub redelivers: Firestore
  or Pub/Sub unavailable, a publish that failed, and a date whose claim is
  pending under a live lease or awaiting the receipts of what its last
  attempt may have sent (whoever owns it). A delivery that saw a pending
  claim is never acknowledged before the claim is published, so a claimer
  that dies (a function instance or a reconciliation run) is always followed
  by a delivery that recovers its claim. (It first waits up to a second for
  the claim to be published: completions that arrive together then end
  `already_triggered` instead of each being redelivered.)

Every handling of a delivery claims under an owner id of its own: Pub/Sub
may hand the same message to two instances at once, and neither may act on
the other's attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

from phase3ops.orchestrator.completion_store import CompletionRecord, CompletionStore, RecordContended, RecordOutcome
from phase3ops.orchestrator.messages import BadMessage, Completion, parse_completion, parse_delivery
from phase3ops.orchestrator.phase4_publisher import Phase4Publisher, PublishFailed
from phase3ops.orchestrator.phase4_trigger import TriggerMessage, build_trigger_messages, date_trigger_id
from phase3ops.orchestrator.readiness import Readiness, evaluate, trigger_deadline
from phase3ops.orchestrator.retry_summary import RetrySummary
from phase3ops.orchestrator.trigger_claims import AttemptSuperseded, ClaimContended, Recovery, TriggerClaim, TriggerClaims
from phase3ops.spec.pipeline import PipelineSpec

log = logging.getLogger("phase3ops.orchestrator")

Clock = Callable[[], dt.datetime]

# Decision outcomes, as logged in jsonPayload.outcome (alert filters match them).
TRIGGERED = "triggered"  # this delivery claimed the date and published the trigger
REPUBLISHED = "republished"  # recovered a stale claim and published what had not gone out
CONFIRMED_BY_RECEIPT = "confirmed_by_receipt"  # a stale claim's messages all had receipts: nothing re-sent
WAITING = "waiting"  # the date is not complete yet for its mode
ALREADY_TRIGGERED = "already_triggered"
LATE = "late"  # a run the published trigger did not include (a re-run or backfill after it)
REJECTED = "rejected"
RETRY_LATER = "retry_later"  # another delivery is busy with the date (a live claim, contention): raised for redelivery
PUBLISH_FAILED = "publish_failed"  # raised for redelivery

IN_FLIGHT_WAIT_SECONDS = 1.0  # how long a delivery waits for someone else's publish before asking for redelivery
IN_FLIGHT_POLL_SECONDS = (0.01, 0.02, 0.04, 0.08)  # then every 0.08 s: a publish usually lands within the first


class RetryLater(RuntimeError):
    """Expected, not a fault: another delivery is busy with the same date. Raised so Pub/Sub
    redelivers; logged once at WARNING (`retry_later`), never as an error."""


class ClaimInFlight(RetryLater):
    """The date's claim is pending under a live lease: someone is publishing it.

    Raised so Pub/Sub redelivers later; by then the claim is published, or
    its lease has run out and that delivery recovers it.
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
    trigger_reason: str | None = None
    completed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    reason: str = ""
    overdue: bool | None = None  # a waiting past date after its trigger deadline (alerted on)
    message_id: str | None = None
    execution_id: str | None = None
    correlation_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The processor runs the date's trigger was decided on; not logged (the claim has them).
    trigger_runs: dict[str, str] = field(default_factory=dict, repr=False)


_SEVERITY = {
    REJECTED: logging.ERROR,
    PUBLISH_FAILED: logging.ERROR,
    LATE: logging.WARNING,
    REPUBLISHED: logging.WARNING,
    CONFIRMED_BY_RECEIPT: logging.WARNING,
}
_SENT = (TRIGGERED, REPUBLISHED, CONFIRMED_BY_RECEIPT)  # outcomes that settle the date's trigger
# A run the record refused or kept out of the count is worth a look, not a page.
_RECORD_SEVERITY = {RecordOutcome.STALE_TOKEN.value: logging.WARNING, RecordOutcome.KEPT_SUCCESS.value: logging.WARNING}


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
        in_flight_wait: float = IN_FLIGHT_WAIT_SECONDS,
    ):
        self.spec = spec
        self.store = store
        self.claims = claims
        self.publisher = publisher
        # Decides which mode a date is in; leases never read it (they use Firestore's time).
        self.clock = clock
        self.in_flight_wait = in_flight_wait
        self.retries = RetrySummary()

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
            completion = parse_completion(delivery.raw_data, self.spec, delivery.message_id)
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

        try:
            record = self.store.record(completion, delivery)
        except RecordContended as exc:
            self._log(Decision(RETRY_LATER, game_date=completion.game_date.isoformat(), processor=completion.processor, reason=str(exc)))
            raise RetryLater(str(exc)) from exc
        context = dict(
            processor=completion.processor,
            status=completion.status,
            record=record.value,
            message_id=delivery.message_id,
            execution_id=completion.execution_id,
            correlation_id=completion.correlation_id,
        )
        fresh = record in (RecordOutcome.RECORDED, RecordOutcome.UPDATED)
        try:
            decision = self.advance(completion.game_date, owner=handling_owner(delivery.message_id), completing=completion if fresh else None)
        except (RetryLater, PublishFailed) as exc:
            outcome = RETRY_LATER if isinstance(exc, RetryLater) else PUBLISH_FAILED
            self._log(Decision(outcome, game_date=completion.game_date.isoformat(), reason=str(exc), **context))
            raise
        if decision.outcome == ALREADY_TRIGGERED and fresh:
            # Recorded just now, but possibly counted by a concurrent delivery's
            # trigger: late only if the trigger does not name this very run.
            if decision.trigger_runs.get(completion.processor) != completion.execution_id:
                decision = replace(
                    decision, outcome=LATE, reason=f"{completion.processor} run {completion.execution_id} completed after the trigger"
                )
        if record is RecordOutcome.STALE_TOKEN:
            decision = replace(
                decision,
                reason=f"run {completion.execution_id} wrote under lock token {completion.lock_token}, "
                f"which a newer run superseded: refused; {decision.reason}",
            )
        elif record is RecordOutcome.KEPT_SUCCESS:
            decision = replace(
                decision,
                reason=f"{completion.status} run {completion.execution_id} after a success: recorded, "
                f"the success still counts; {decision.reason}",
            )
        return self._log(replace(decision, **context))

    # -- the exactly-once trigger path ---------------------------------------

    def advance(self, game_date: dt.date, owner: str, completing: Completion | None = None) -> Decision:
        """Trigger Phase 4 for the date if it is ready and not yet triggered.

        `owner` identifies this handling, unique to it (`handling_owner`, or
        the reconciliation run); `completing` is the completion being
        delivered, whose ids become the trigger's lineage. Raises
        ClaimInFlight while the date's claim is pending under someone's live
        lease or awaits receipts, and PublishFailed when messages could not
        be confirmed.
        """
        claim, records = self._read_date(game_date)
        if claim is not None:
            return self._follow(claim, owner)

        now = self.clock()
        readiness = evaluate(self.spec, game_date, _counted(records), now)
        if not readiness.ready:
            return _decision(WAITING, game_date, readiness)
        completing_record = records.get(completing.processor) if completing is not None else None
        if completing_record is not None and completing_record.execution_id != completing.execution_id:
            completing_record = None
        messages = build_trigger_messages(self.spec, game_date, readiness, records, completing_record, now)
        trigger_id = date_trigger_id(self.spec.name, game_date)
        claim = self.claims.try_claim(game_date, trigger_id, owner, _decision_document(readiness, records), messages)
        if claim is None:
            # Another caller won the race to claim; follow its claim like any other.
            return self._follow(self.claims.get(game_date), owner)
        return self._publish(claim, claim.messages, TRIGGERED)

    def _read_date(self, game_date: dt.date) -> tuple[TriggerClaim | None, dict[str, CompletionRecord]]:
        """The claim and every processor record of a date in one batched read."""
        claim_ref = self.claims.document(game_date)
        records, extra = self.store.records_for_date(game_date, self.spec.processor_names, also_read=[claim_ref])
        return TriggerClaims.from_snapshot(extra[claim_ref.path]), records

    def _follow(self, claim: TriggerClaim, owner: str) -> Decision:
        if not claim.is_published and claim.lease_active:
            claim = self._wait_for_publish(claim)
        if claim.is_published:
            return _claim_decision(ALREADY_TRIGGERED, claim, "Phase 4 was already triggered")
        if claim.lease_active:
            raise ClaimInFlight(_in_flight(claim))
        # The claim's owner died or its publish failed. Exactly one caller decides,
        # from the receipts, what went out, and publishes the rest.
        try:
            recovery, claim = self.claims.recover(claim.key, owner)
        except ClaimContended as exc:
            raise ClaimInFlight(str(exc)) from exc
        if recovery is Recovery.ALREADY_PUBLISHED:
            return _claim_decision(ALREADY_TRIGGERED, claim, "Phase 4 was already triggered")
        if recovery is Recovery.STILL_LEASED:
            raise ClaimInFlight(_in_flight(claim))
        if recovery is Recovery.AWAITING_RECEIPTS:
            raise ClaimInFlight(_awaiting_receipts(claim))
        if recovery is Recovery.CONFIRMED:
            return _claim_decision(CONFIRMED_BY_RECEIPT, claim, "every message of the stale claim had a receipt: nothing re-sent")
        return self._publish(claim, claim.unpublished, REPUBLISHED)

    def _wait_for_publish(self, claim: TriggerClaim) -> TriggerClaim:
        """Someone holds the claim: it is usually published within milliseconds."""
        remaining = (claim.lease_expires_at - claim.read_time).total_seconds() if claim.read_time and claim.lease_expires_at else 0
        deadline = time.monotonic() + min(self.in_flight_wait, remaining)
        polls = 0
        while time.monotonic() < deadline:
            time.sleep(IN_FLIGHT_POLL_SECONDS[min(polls, len(IN_FLIGHT_POLL_SECONDS) - 1)])
            polls += 1
            claim = self.claims.get(claim.key)
            if claim.is_published or not claim.lease_active:
                break
        return claim

    def _publish(self, claim: TriggerClaim, messages: Sequence[TriggerMessage], outcome: str) -> Decision:
        """Send this attempt's messages within what is left of its lease, then record what went out.

        Every write here is conditional on the attempt still being this
        owner's: if it was taken over meanwhile (this instance paused past
        its lease and the receipt grace), it writes nothing and the delivery
        is redelivered to follow the new owner."""
        outcomes = self.publisher.publish_all(messages, deadline=claim.local_deadline)
        sent = {o.message.part: o.message_id for o in outcomes if o.ok}
        failed = [o for o in outcomes if not o.ok]
        definitive = bool(failed) and all(o.definitive for o in failed)
        try:
            claim = self.claims.mark_published(claim, sent, complete=not failed)
            if definitive:
                claim = self.claims.release_lease(claim)
        except AttemptSuperseded as exc:
            log.warning("%s", exc, extra={"event": "trigger_attempt_superseded", "game_date": claim.game_date.isoformat(),
                                          "owner": claim.owner, "attempt": claim.attempts, "sent": sorted(sent)})  # fmt: skip
            raise ClaimInFlight(f"{exc}; the new owner finishes it") from exc
        if failed:
            errors = "; ".join(f"{o.message.trigger_id}: {o.error}" for o in failed)
            verdict = (
                "nothing was sent; the claim is released"
                if definitive
                else "they may have been sent; recovery waits for their receipts before sending them again"
            )
            raise PublishFailed(f"{len(failed)} of {len(messages)} Phase 4 messages not confirmed ({verdict}): {errors}", definitive)
        reason = f"{claim.decision.get('trigger_reason')}: {len(messages)} message(s) published"
        return _claim_decision(outcome, claim, reason, published_message_ids=sent)

    def _log(self, decision: Decision) -> Decision:
        fields = {
            k: v for k, v in asdict(decision).items() if k not in ("extra", "trigger_runs") and v not in (None, (), "")
        }
        fields.update(decision.extra)
        if decision.outcome in _SENT and decision.game_date:
            # The dashboard charts this: how far ahead of the date's deadline Phase 4 got its trigger.
            deadline = trigger_deadline(self.spec, dt.date.fromisoformat(decision.game_date))
            fields["minutes_before_deadline"] = round((deadline - self.clock()).total_seconds() / 60, 1)
        severity = max(
            logging.WARNING if decision.overdue else _SEVERITY.get(decision.outcome, logging.INFO),
            _RECORD_SEVERITY.get(decision.record or "", logging.INFO),
        )
        if decision.outcome == RETRY_LATER:
            severity, quiet = self.retries.level(decision.game_date)
            if quiet:
                fields["retries_since_last_warning"] = quiet
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


def _decision_document(readiness: Readiness, records: dict[str, CompletionRecord]) -> dict[str, Any]:
    """What the claim remembers of the decision: which rule fired, on which runs."""
    return {
        "mode": readiness.mode,
        "trigger_reason": readiness.trigger_reason,
        "reason": readiness.reason,
        "completed": list(readiness.completed),
        "executions": {name: records[name].execution_id for name in readiness.completed},
    }


def handling_owner(message_id: str) -> str:
    """An owner id unique to one handling of a delivery: Pub/Sub may deliver one message twice at once."""
    return f"delivery-{message_id}-{uuid.uuid4().hex[:8]}"


def _awaiting_receipts(claim: TriggerClaim) -> str:
    due = claim.receipts_due_by.isoformat() if claim.receipts_due_by else "-"
    return (
        f"the Phase 4 trigger of {claim.key}: attempt {claim.attempts} by {claim.owner} may have sent "
        f"{len(claim.unpublished)} message(s) without a receipt yet; waiting for their receipts until {due}; retry later"
    )


def _in_flight(claim: TriggerClaim) -> str:
    until = claim.lease_expires_at.isoformat() if claim.lease_expires_at else "its lease runs out"
    return f"the Phase 4 trigger of {claim.key} is being published by {claim.owner} (lease until {until}); retry later"


def _claim_decision(outcome: str, claim: TriggerClaim, reason: str, **extra: Any) -> Decision:
    return Decision(
        outcome,
        game_date=claim.game_date.isoformat(),
        mode=claim.decision.get("mode"),
        trigger_id=claim.trigger_id,
        trigger_reason=claim.decision.get("trigger_reason"),
        completed=tuple(claim.decision.get("completed", ())),
        reason=reason,
        extra=extra,
        trigger_runs=claim.executions,
    )
