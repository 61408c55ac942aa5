"""The Phase 3 -> Phase 4 orchestrator: record a completion, then advance the date.

`handle_event` is what the Cloud Function runs for each Pub/Sub delivery.
`advance` is the exactly-once trigger path on its own; reconciliation and the
recheck of held dates call it too, so a missed trigger is repaired by the
same code that normally sends it.

Before a ready date is claimed, its mode's data gates are evaluated in one
warehouse query (gates/). A date a `block` gate fails is held: recorded
(gate_holds.py), logged `held` with the gate and its figure, acknowledged,
and evaluated again by its next completion and by the scheduled recheck.
At the mode's deadline a still-held date follows the mode's `on_deadline`:
held on, or triggered with `degraded: true` and the failing gates in the
message. Once a date is triggered, a later run that changes a table's rows
(and whose table declares `late_data: follow_up`) sends Phase 4 one
follow-up message for that table, exactly once per run, through the same
claim, receipt and recovery machinery as the trigger.

Error contract with Pub/Sub (the function deploys with RETRY_POLICY_RETRY):
- a message that can never be valid is stored, logged at ERROR and
  acknowledged (the handler returns normally);
- a message whose handling keeps failing with an error a redelivery does not
  cure is stored as poison after `POISON_AFTER_FAILURES` failures, logged
  `poisoned` at ERROR and acknowledged (rejected_messages.py);
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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypedDict

from phase3ops.gates.evaluate import GateEvaluator, GateReport
from phase3ops.input_bounds import EXCERPT_CHARS, printable
from phase3ops.orchestrator.completion_store import CompletionRecord, CompletionStore, RecordContended, RecordOutcome
from phase3ops.orchestrator.gate_holds import HELD as HOLD_ACTIVE
from phase3ops.orchestrator.gate_holds import GateHolds, Hold
from phase3ops.orchestrator.messages import BadMessage, Completion, Delivery, parse_completion, parse_delivery
from phase3ops.orchestrator.outcomes import (
    ALREADY_TRIGGERED,
    CONFIRMED_BY_RECEIPT,
    FOLLOWED_UP,
    HELD,
    LATE,
    POISONED,
    PUBLISH_FAILED,
    REJECTED,
    REPUBLISHED,
    RETRY_LATER,
    TRIGGERED,
    WAITING,
)
from phase3ops.orchestrator.phase4_publisher import Phase4Publisher, PublishFailed
from phase3ops.orchestrator.phase4_trigger import (
    TriggerMessage,
    build_follow_up_message,
    build_trigger_messages,
    date_trigger_id,
    follow_up_key,
    rows_changed,
)
from phase3ops.orchestrator.readiness import Readiness, decided_deadline, evaluate, minutes_before, mode_deadline
from phase3ops.orchestrator.retry_summary import RetrySummary
from phase3ops.orchestrator.trigger_claims import (
    AttemptSuperseded,
    ClaimContended,
    Recovery,
    TriggerClaim,
    TriggerClaims,
)
from phase3ops.rejected_kinds import POISON
from phase3ops.rejected_messages import POISON_AFTER_FAILURES, event_bytes, is_transient
from phase3ops.spec.pipeline import PipelineSpec

log = logging.getLogger("phase3ops.orchestrator")

Clock = Callable[[], dt.datetime]


IN_FLIGHT_WAIT_SECONDS = 1.0  # how long a delivery waits for someone else's publish before asking for redelivery
IN_FLIGHT_POLL_SECONDS = (
    0.01,
    0.02,
    0.03,
    0.04,
    0.05,
    0.08,
)  # then every 0.08 s: a claim is usually published within 150 ms


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


class _DeliveryFields(TypedDict):
    """The Decision fields a completion delivery fills in, whatever the decision."""

    processor: str
    status: str
    record: str
    message_id: str | None
    execution_id: str
    correlation_id: str | None


_SEVERITY = {
    REJECTED: logging.ERROR,
    POISONED: logging.ERROR,
    PUBLISH_FAILED: logging.ERROR,
    LATE: logging.WARNING,
    REPUBLISHED: logging.WARNING,
    CONFIRMED_BY_RECEIPT: logging.WARNING,
    HELD: logging.WARNING,
}
_SENT = (TRIGGERED, REPUBLISHED, CONFIRMED_BY_RECEIPT)  # outcomes that settle the date's trigger
# A run the record refused or kept out of the count is worth a look, not a page.
_RECORD_SEVERITY = {RecordOutcome.STALE_TOKEN.value: logging.WARNING, RecordOutcome.KEPT_SUCCESS.value: logging.WARNING}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Orchestrator:
    def __init__(
        self,
        spec: PipelineSpec,
        store: CompletionStore,
        claims: TriggerClaims,
        publisher: Phase4Publisher,
        clock: Clock = utc_now,
        in_flight_wait: float = IN_FLIGHT_WAIT_SECONDS,
        gates: GateEvaluator | None = None,
        holds: GateHolds | None = None,
        followups: TriggerClaims | None = None,
    ):
        self.spec = spec
        self.store = store
        self.claims = claims
        self.publisher = publisher
        self.gates = gates
        self.holds = holds
        self.followups = followups
        # Decides which mode a date is in; leases never read it (they use Firestore's time).
        self.clock = clock
        self.in_flight_wait = in_flight_wait
        self.retries = RetrySummary()

    # -- one Pub/Sub delivery -------------------------------------------------

    def handle_event(self, event_data: Any) -> Decision:
        try:
            delivery = parse_delivery(event_data)
        except BadMessage as bad:
            raw = event_bytes(event_data)
            stored = self.store.rejected.store(raw, bad.reason, bad.field)
            return self._log(
                Decision(
                    REJECTED,
                    reason=bad.reason,
                    extra={"field": bad.field, "stored_as": stored, "event_data": _excerpt(raw)},
                )
            )
        try:
            return self._handle_delivery(delivery)
        except Exception as error:
            if is_transient(error, expected=(RetryLater, PublishFailed, RecordContended, ClaimContended)):
                raise
            return self._poisoned_or_raise(delivery, error)

    def _poisoned_or_raise(self, delivery: Delivery, error: Exception) -> Decision:
        """A failure a redelivery does not cure: count it; past the bound, store the message as
        poison and acknowledge it (logged `poisoned` at ERROR, which pages)."""
        try:
            failures = self.store.rejected.count_failure(delivery.message_id, delivery.raw_data, error)
        except Exception:
            log.warning(
                "could not count a failure of message %s",
                delivery.message_id,
                exc_info=True,
                extra={"event": "failure_count_failed"},
            )
            raise error from None
        if failures < POISON_AFTER_FAILURES:
            raise error
        reason = f"failed {failures} times, last with {type(error).__name__}: {error}"
        stored = self.store.rejected.store(
            delivery.raw_data, reason, "", delivery.message_id, delivery.publish_time, delivery.attributes, kind=POISON
        )
        log.error(
            "poison message %s: %s",
            delivery.message_id,
            reason,
            exc_info=error,
            extra={"event": "poison_message", "stored_as": stored},
        )
        return self._log(Decision(POISONED, reason=reason, message_id=delivery.message_id, extra={"stored_as": stored}))

    def _handle_delivery(self, delivery: Delivery) -> Decision:
        try:
            completion = parse_completion(delivery.raw_data, self.spec, delivery.message_id, today=self.clock().date())
        except BadMessage as bad:
            stored = self.store.rejected.store(
                delivery.raw_data,
                bad.reason,
                bad.field,
                delivery.message_id,
                delivery.publish_time,
                delivery.attributes,
            )
            return self._log(
                Decision(
                    REJECTED,
                    reason=bad.reason,
                    message_id=delivery.message_id,
                    extra={"field": bad.field, "stored_as": stored, "data": _excerpt(delivery.raw_data)},
                )
            )

        try:
            record = self.store.record(completion, delivery)
        except RecordContended as exc:
            self._log(
                Decision(
                    RETRY_LATER,
                    game_date=completion.game_date.isoformat(),
                    processor=completion.processor,
                    reason=str(exc),
                )
            )
            raise RetryLater(str(exc)) from exc
        context: _DeliveryFields = {
            "processor": completion.processor,
            "status": completion.status,
            "record": record.value,
            "message_id": delivery.message_id,
            "execution_id": completion.execution_id,
            "correlation_id": completion.correlation_id,
        }
        fresh = record in (RecordOutcome.RECORDED, RecordOutcome.UPDATED)
        try:
            decision = self.advance(
                completion.game_date,
                owner=handling_owner(delivery.message_id),
                completing=completion if fresh else None,
                delivered=completion,
            )
        except (RetryLater, PublishFailed) as exc:
            outcome = RETRY_LATER if isinstance(exc, RetryLater) else PUBLISH_FAILED
            self._log(Decision(outcome, game_date=completion.game_date.isoformat(), reason=str(exc), **context))
            raise
        # Recorded just now, but possibly counted by a concurrent delivery's
        # trigger: late only if the trigger does not name this very run.
        counted_another_run = decision.trigger_runs.get(completion.processor) != completion.execution_id
        if decision.outcome == ALREADY_TRIGGERED and fresh and counted_another_run:
            decision = replace(
                decision,
                outcome=LATE,
                reason=f"{completion.processor} run {completion.execution_id} completed after the trigger",
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

    def advance(
        self, game_date: dt.date, owner: str, completing: Completion | None = None, delivered: Completion | None = None
    ) -> Decision:
        """Trigger Phase 4 for the date if it is ready, its data passes the gates, and it is not yet
        triggered; and, once it is, tell Phase 4 of `delivered` if it is late data for its table.

        `owner` identifies this handling, unique to it (`handling_owner`, or
        the reconciliation run); `completing` is the completion being
        delivered when it was recorded just now, whose ids become the
        trigger's lineage. Raises ClaimInFlight while the date's claim is
        pending under someone's live lease or awaits receipts, and
        PublishFailed when messages could not be confirmed.
        """
        claim, records, hold = self._read_date(game_date)
        if claim is not None:
            return self._follow_then_follow_up(claim, records, delivered, owner)

        readiness = evaluate(self.spec, game_date, _counted(records), self.clock())
        if not readiness.ready:
            return _decision(WAITING, game_date, readiness)
        # Claim first, then look at the data: of the deliveries that find the date ready at once,
        # exactly one evaluates its gates (one warehouse query per ready date), the others follow.
        trigger_id = date_trigger_id(self.spec.name, game_date)
        claim = self.claims.try_claim(
            game_date, trigger_id, owner, {**_decision_document(readiness, records), "gating": True}, ()
        )
        if claim is None:
            # Another caller won the race to claim; follow its claim like any other. The records just
            # read serve as they do for a claim found at once: only the claim is read again.
            claim = self.claims.get(game_date)
            if claim is None:  # it was held and let go of the claim meanwhile
                raise ClaimInFlight(
                    f"the data gates of {game_date} were evaluated by another delivery just now; retry later"
                )
            return self._follow_then_follow_up(claim, records, delivered, owner)
        completing_record = records.get(completing.processor) if completing is not None else None
        if (
            completing is not None
            and completing_record is not None
            and completing_record.execution_id != completing.execution_id
        ):
            completing_record = None
        return self._gate_and_publish(claim, readiness, records, completing_record, hold)

    def _gate_and_publish(
        self,
        claim: TriggerClaim,
        readiness: Readiness,
        records: dict[str, CompletionRecord],
        completing_record: CompletionRecord | None,
        hold: Hold | None,
    ) -> Decision:
        """The claim's owner, before anything is published: evaluate the date's gates; hold the date
        (and let go of the claim) or write the messages into the claim and publish them."""
        game_date, now = claim.game_date, self.clock()
        assert readiness.mode is not None  # only a date with no mode is never ready
        mode = self.spec.mode(readiness.mode)
        report = self.gates.evaluate(game_date, mode) if self.gates is not None else GateReport()
        past_deadline = now >= mode_deadline(self.spec, mode, game_date)
        degraded = not report.passed
        try:
            if degraded and (not past_deadline or mode.on_deadline == "hold"):
                # The claim goes and the hold is written in one batch: an owner that was taken over meanwhile writes neither.
                held = (
                    self.holds.held(game_date, mode.name, report.as_document(), past_deadline, hold)
                    if self.holds is not None
                    else None
                )
                self.claims.let_go(claim, also=held)
                return _held(game_date, readiness, report, past_deadline, mode.on_deadline)
            messages = build_trigger_messages(
                self.spec, game_date, readiness, records, completing_record, now, report, degraded
            )
            claim = self.claims.set_messages(claim, _decision_document(readiness, records, report, degraded), messages)
        except AttemptSuperseded as exc:  # this owner paused past its lease; another took the claim over
            raise ClaimInFlight(f"{exc}; the new owner finishes it") from exc
        decision = self._publish(claim, claim.messages, TRIGGERED, self.claims)
        if hold is not None and hold.state == HOLD_ACTIVE and self.holds is not None:
            self.holds.release(game_date, claim.trigger_id, degraded)
        return decision

    def _gate_after_takeover(self, claim: TriggerClaim, owner: str) -> Decision:
        """A claim whose owner died while evaluating the gates (it holds no messages yet): its new
        owner evaluates them, on the date as it stands now."""
        _, records, hold = self._read_date(claim.game_date)
        readiness = evaluate(self.spec, claim.game_date, _counted(records), self.clock())
        if not readiness.ready:  # its mode changed meanwhile (midnight): not ready under the new one
            try:
                self.claims.let_go(claim)
            except AttemptSuperseded as exc:
                raise ClaimInFlight(str(exc)) from exc
            return _decision(WAITING, claim.game_date, readiness)
        return self._gate_and_publish(claim, readiness, records, None, hold)

    def _read_date(self, game_date: dt.date) -> tuple[TriggerClaim | None, dict[str, CompletionRecord], Hold | None]:
        """The claim, the hold and every processor record of a date in one batched read."""
        claim_ref = self.claims.document(game_date)
        hold_ref = self.holds.document(game_date) if self.holds is not None else None
        records, extra = self.store.records_for_date(
            game_date, self.spec.processor_names, also_read=[claim_ref, *filter(None, [hold_ref])]
        )
        hold_snapshot = extra.get(hold_ref.path) if hold_ref is not None else None
        hold = (
            Hold.from_document(hold_snapshot.to_dict()) if hold_snapshot is not None and hold_snapshot.exists else None
        )
        return TriggerClaims.from_snapshot(extra[claim_ref.path]), records, hold

    def _follow_then_follow_up(
        self, claim: TriggerClaim, records: dict[str, CompletionRecord], delivered: Completion | None, owner: str
    ) -> Decision:
        decision, followed = self._follow_to_the_end(claim, owner, self.claims)
        if delivered is None or self.followups is None or decision.outcome not in (ALREADY_TRIGGERED, *_SENT):
            return decision
        settled = followed if followed.is_published else self.claims.get(claim.key)
        if settled is None or not settled.is_published:
            return decision
        try:
            follow_up = self._follow_up(settled, records, delivered, owner)
        except Exception:
            if decision.outcome in _SENT:
                self._log(decision)  # the trigger went out, whatever became of the follow-up
            raise
        if follow_up is None:
            return decision  # logged once, by the caller
        if decision.outcome in _SENT:
            self._log(decision)  # the trigger's own line, before the follow-up's
        return follow_up

    def _follow_up(
        self, claim: TriggerClaim, records: dict[str, CompletionRecord], delivered: Completion, owner: str
    ) -> Decision | None:
        """Once Phase 4 has the date, a run reported after the trigger was decided, whose table now
        holds other rows than the run Phase 4 was last told of, earns one follow-up message for
        that table, whichever delivery of that run gets here first (a redelivery finds the
        follow-up's claim and follows it: exactly once per run)."""
        followups = self.followups
        assert followups is not None  # _follow_then_follow_up comes here only with follow-ups on
        processor = self.spec.processor(delivered.processor)
        if processor.late_data != "follow_up":
            return None
        if delivered.execution_id in claim.executions.values():
            return None  # the trigger's own run, which never earns a follow-up: no need to look for one
        key = follow_up_key(claim.game_date, processor.output_table, delivered.execution_id)
        follow_up = followups.get(key)
        if follow_up is not None:  # this run's own follow-up, sent or left pending by an earlier delivery of it
            return self._follow(follow_up, owner, followups)
        record = records.get(processor.name)
        if record is None or not record.counts or record.execution_id != delivered.execution_id:
            return None  # not the run that stands for the table now
        announced = _announced_run(claim, record, processor.output_table)
        if announced is None or delivered.execution_id == announced:
            return None  # reported before the trigger was decided, or the run whose rows it saw
        # A follow-up still pending counts as told: its own run's delivery is not acknowledged until it is sent.
        told = {announced} | {
            run
            for f in followups.claims_on(claim.game_date)
            if f.messages and f.messages[0].part == processor.output_table
            for run in f.executions.values()
        }
        if delivered.execution_id in told or not rows_changed(record, told):
            return None  # Phase 4 was told of these very rows
        message = build_follow_up_message(
            self.spec, claim.trigger_id, claim.game_date, claim.decision.get("mode"), record, self.clock()
        )
        decision = {
            "mode": claim.decision.get("mode"),
            "trigger_reason": "late_data",
            "follows": claim.trigger_id,
            "executions": {processor.name: record.execution_id},
        }
        follow_up = followups.try_claim(claim.game_date, message.trigger_id, owner, decision, [message], key=key)
        if follow_up is not None:
            return self._publish(follow_up, follow_up.messages, FOLLOWED_UP, followups)
        existing = followups.get(key)
        assert existing is not None  # another delivery claimed it, and follow-ups are never let go of
        return self._follow(existing, owner, followups)

    def _follow(self, claim: TriggerClaim, owner: str, claims: TriggerClaims) -> Decision:
        return self._follow_to_the_end(claim, owner, claims)[0]

    def _follow_to_the_end(
        self, claim: TriggerClaim, owner: str, claims: TriggerClaims
    ) -> tuple[Decision, TriggerClaim]:
        """The decision, and the claim as last read or written here (published, unless this
        handling sent or recovered it: then the caller reads it again if it needs it published)."""
        if not claim.is_published and claim.lease_active:
            waited = self._wait_for_publish(claim, claims)
            if waited is None:
                raise ClaimInFlight(
                    f"the data gates held {claim.game_date} just now; its next delivery evaluates them again"
                )
            claim = waited
        if claim.is_published:
            return _claim_decision(ALREADY_TRIGGERED, claim, "Phase 4 was already triggered"), claim
        if claim.lease_active:
            raise ClaimInFlight(_in_flight(claim))
        # The claim's owner died or its publish failed. Exactly one caller decides,
        # from the receipts, what went out, and publishes the rest.
        key = claim.key
        try:
            recovery, recovered = claims.recover(key, owner)
        except ClaimContended as exc:
            raise ClaimInFlight(str(exc)) from exc
        if recovery is Recovery.GONE:
            raise ClaimInFlight(f"the data gates held {key} just now; its next delivery evaluates them again")
        assert recovered is not None  # every recovery but GONE has the claim
        claim = recovered
        if recovery is Recovery.ALREADY_PUBLISHED:
            return _claim_decision(ALREADY_TRIGGERED, claim, "Phase 4 was already triggered"), claim
        if recovery is Recovery.STILL_LEASED:
            raise ClaimInFlight(_in_flight(claim))
        if recovery is Recovery.AWAITING_RECEIPTS:
            raise ClaimInFlight(_awaiting_receipts(claim))
        if recovery is Recovery.CONFIRMED:
            confirmed = _claim_decision(
                CONFIRMED_BY_RECEIPT, claim, "every message of the stale claim had a receipt: nothing re-sent"
            )
            return confirmed, claim
        if not claim.messages:  # its owner died evaluating the date's gates: nothing was sent
            return self._gate_after_takeover(claim, owner), claim
        return self._publish(claim, claim.unpublished, REPUBLISHED, claims), claim

    def _wait_for_publish(self, claim: TriggerClaim, claims: TriggerClaims) -> TriggerClaim | None:
        """Someone holds the claim: it is usually published within milliseconds."""
        remaining = (
            (claim.lease_expires_at - claim.read_time).total_seconds()
            if claim.read_time and claim.lease_expires_at
            else 0
        )
        deadline = time.monotonic() + min(self.in_flight_wait, remaining)
        polls = 0
        while time.monotonic() < deadline:
            time.sleep(IN_FLIGHT_POLL_SECONDS[min(polls, len(IN_FLIGHT_POLL_SECONDS) - 1)])
            polls += 1
            latest = claims.get(claim.key)
            if latest is None:  # let go of: the date was held by its gates
                return None
            claim = latest
            if claim.is_published or not claim.lease_active:
                break
        return claim

    def _publish(
        self, claim: TriggerClaim, messages: Sequence[TriggerMessage], outcome: str, claims: TriggerClaims
    ) -> Decision:
        """Send this attempt's messages within what is left of its lease, then record what went out.

        Every write here is conditional on the attempt still being this
        owner's: if it was taken over meanwhile (this instance paused past
        its lease and the receipt grace), it writes nothing and the delivery
        is redelivered to follow the new owner."""
        outcomes = self.publisher.publish_all(messages, deadline=claim.local_deadline)
        sent = {o.message.part: o.message_id for o in outcomes if o.message_id is not None}
        failed = [o for o in outcomes if not o.ok]
        definitive = bool(failed) and all(o.definitive for o in failed)
        try:
            claim = claims.mark_published(claim, sent, complete=not failed)
            if definitive:
                claim = claims.release_lease(claim)
        except AttemptSuperseded as exc:
            log.warning(
                "%s",
                exc,
                extra={
                    "event": "trigger_attempt_superseded",
                    "game_date": claim.game_date.isoformat(),
                    "owner": claim.owner,
                    "attempt": claim.attempts,
                    "sent": sorted(sent),
                },
            )
            raise ClaimInFlight(f"{exc}; the new owner finishes it") from exc
        if failed:
            errors = "; ".join(f"{o.message.trigger_id}: {o.error}" for o in failed)
            verdict = (
                "nothing was sent; the claim is released"
                if definitive
                else "they may have been sent; recovery waits for their receipts before sending them again"
            )
            raise PublishFailed(
                f"{len(failed)} of {len(messages)} Phase 4 messages not confirmed ({verdict}): {errors}", definitive
            )
        reason = f"{claim.decision.get('trigger_reason')}: {len(messages)} message(s) published"
        return _claim_decision(outcome, claim, reason, published_message_ids=sent)

    def _log(self, decision: Decision) -> Decision:
        fields = {
            k: v for k, v in asdict(decision).items() if k not in ("extra", "trigger_runs") and v not in (None, (), "")
        }
        fields.update(decision.extra)
        if decision.outcome in _SENT and decision.game_date:
            # The dashboard charts this: how far ahead of the date's deadline Phase 4 got its trigger.
            deadline = decided_deadline(self.spec, decision.mode, dt.date.fromisoformat(decision.game_date))
            fields["minutes_before_deadline"] = minutes_before(deadline, self.clock())
        severity = max(
            logging.WARNING if decision.overdue else _SEVERITY.get(decision.outcome, logging.INFO),
            _RECORD_SEVERITY.get(decision.record or "", logging.INFO),
            logging.ERROR
            if decision.outcome == HELD and decision.overdue
            else logging.INFO,  # held past its deadline: page
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


def _excerpt(raw: bytes) -> str:
    """What a log line quotes of a message's bytes: a bounded, printable prefix."""
    return printable(raw[:EXCERPT_CHARS].decode("utf-8", "replace"), EXCERPT_CHARS)


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


def _decision_document(
    readiness: Readiness, records: dict[str, CompletionRecord], gates: GateReport | None = None, degraded: bool = False
) -> dict[str, Any]:
    """What the claim remembers of the decision: which rule fired, on which runs, what the gates said."""
    decision: dict[str, Any] = {
        "mode": readiness.mode,
        "trigger_reason": readiness.trigger_reason,
        "reason": readiness.reason,
        "completed": list(readiness.completed),
        "executions": {name: records[name].execution_id for name in readiness.completed},
    }
    if gates is not None:
        decision.update({"gates": gates.as_document(), "degraded": degraded})
    return decision


def _held(
    game_date: dt.date, readiness: Readiness, report: GateReport, past_deadline: bool, on_deadline: str
) -> Decision:
    blocking = report.blocking
    first = blocking[0]
    if past_deadline:
        reason = f"held past its deadline (on_deadline: {on_deadline}): {report.summary}"
    else:
        reason = f"held until its data passes the gates (or its deadline, then {on_deadline}): {report.summary}"
    return Decision(
        HELD,
        game_date=game_date.isoformat(),
        mode=readiness.mode,
        trigger_reason=readiness.trigger_reason,
        completed=readiness.completed,
        missing=readiness.missing,
        reason=reason,
        overdue=past_deadline,
        extra={
            "gate": first.name,
            "figure": first.figure,
            "threshold": first.threshold,
            "gate_detail": first.detail,
            "blocked_by": [r.name for r in blocking],
            "gate_error": first.error,
        },
    )


def _announced_run(claim: TriggerClaim, record: CompletionRecord, table: str) -> str | None:
    """The run of the table whose rows the trigger announced, as far as the record tells: the
    counting run that stood when the trigger was decided (its messages written). When none stood but
    the gates saw rows in the table, its first run reported after the decision is the one whose
    rows they saw (written before it reported). None when the record's current run was reported
    before the decision: Phase 4 was told of it by the trigger itself. "" when Phase 4 was told of
    no rows at all (the table was empty, or not measured): any run is news."""
    decided = claim.decision.get("decided_at") or claim.claimed_at
    runs = [r for r in record.runs if r.get("counts") and r.get("published_at") is not None]
    current = next((r for r in reversed(runs) if r.get("execution_id") == record.execution_id), None)
    if decided is None or current is None:
        return claim.executions.get(record.processor, "")
    if current["published_at"] <= decided:
        return None
    before = [r for r in runs if r["published_at"] <= decided]
    if before:
        return before[-1]["execution_id"]
    seen_rows = ((claim.decision.get("gates") or {}).get("table_rows") or {}).get(table, 0)
    return next((r["execution_id"] for r in runs if r["published_at"] > decided), "") if seen_rows else ""


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
    if outcome in _SENT:
        # The SLO "Phase 4 triggered on complete data" counts the sent triggers that were not degraded.
        extra = {"degraded": bool(claim.decision.get("degraded")), **extra}
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
