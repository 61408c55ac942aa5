"""The overrides themselves: force a trigger, skip a processor, re-trigger a date (and the dates after it).

Every one goes through the orchestrator's own machinery, never around it:

- **force_trigger** creates the date's own claim (`phase4_triggers/{date}`,
  create-only, the stable trigger id `<pipeline>:<date>`), with the messages
  `phase4_trigger.build_trigger_messages` builds from the completion records
  that exist (`trigger_reason: forced`, `forced: true`, `degraded: true`
  unless the date was ready and its gates passed), and publishes them with
  the orchestrator's bounded publish and marks. The receipts recorder records
  them like any trigger. A completion that arrives later finds the claim and
  is `already_triggered` or `late`; a run of a `late_data: follow_up` table
  that lands after the force earns Phase 4 the usual follow-up. A date that
  already has a claim is refused (use retrigger); of two forces at once,
  the claim lets one through. A claim whose publish failed stays pending and
  is finished by the orchestrator's recovery (its next delivery, or
  `reconcile --fix`), as any trigger's.
- **retrigger** sends a triggered date to Phase 4 again as new work: a claim
  of its own per re-trigger, `phase4_triggers/{date}/retriggers/{date}~retrigger-<n>`
  (a subcollection, so nothing that reads the date's claims sees it), n the
  next number, created with `create()`: two operators racing for the same n
  make one claim, and the loser waits for it and reports it (`joined`). Its
  messages carry trigger ids of their own, `<trigger id>:retrigger-<n>`,
  which the receipts recorder records and the Phase 4 guard runs as new work,
  while a replay of the same re-trigger is a duplicate to both. They say
  `is_retrigger: true`, `retrigger_of`, and `is_incremental: false` (Phase 4
  processes the whole date). `cascade` re-sends the N following game dates
  that were triggered (their rolling windows include the fixed date), each
  once per command. A re-trigger whose publish did not finish is finished by
  the next retrigger of that date (after its lease and receipt grace, from
  the receipts, as the orchestrator recovers a claim) instead of a new one.
- **skip** records that a processor is not owed for a date (and `undo`
  removes it); nothing is triggered. `records.skipped()` is what the
  expected-work ledger reads.

Every override is recorded first (records.py), with who, when and why, and
its outcome is written when it ends.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from google.cloud import firestore

from phase3ops import cloud
from phase3ops.gates.evaluate import GateReport
from phase3ops.orchestrator.completion_store import CompletionRecord
from phase3ops.orchestrator.gate_holds import HELD as HOLD_ACTIVE
from phase3ops.orchestrator.gate_holds import Hold
from phase3ops.orchestrator.orchestrator import (
    Clock,
    Orchestrator,
    RetryLater,
    utc_now,
)
from phase3ops.orchestrator.outcomes import ALREADY_TRIGGERED, CONFIRMED_BY_RECEIPT, TRIGGERED
from phase3ops.orchestrator.phase4_publisher import PublishFailed
from phase3ops.orchestrator.phase4_trigger import TriggerMessage, build_trigger_messages, date_trigger_id
from phase3ops.orchestrator.readiness import Readiness, evaluate, local_today, mode_for
from phase3ops.orchestrator.trigger_claims import TriggerClaim, TriggerClaims
from phase3ops.overrides import inputs, records
from phase3ops.overrides.inputs import BadOverride, Operator
from phase3ops.overrides.records import (
    ERROR,
    FINISHED,
    FORCE_TRIGGER,
    IN_PROGRESS,
    JOINED,
    PENDING,
    PUBLISH_FAILED,
    PUBLISHED,
    RECORDED,
    REFUSED,
    RETRIGGER,
    SKIP,
    UNSKIP,
)
from phase3ops.spec.pipeline import PipelineSpec

log = logging.getLogger("phase3ops.overrides")

FORCED = "forced"  # trigger_reason of a forced trigger
RETRIGGERED = "retrigger"  # ... of a re-trigger of the fixed date
CASCADED = "retrigger_cascade"  # ... of a following date re-sent with it
RETRIGGERS = "retriggers"  # the subcollection of a date's claim that holds its re-triggers
OK_OUTCOMES = (PUBLISHED, JOINED, FINISHED, RECORDED)


def retrigger_key(game_date: dt.date, number: int) -> str:
    """The re-trigger claim's document id."""
    return f"{game_date.isoformat()}~retrigger-{number}"


def retrigger_trigger_id(trigger_id: str, number: int) -> str:
    """A re-trigger's id for one message of the original trigger: new work to the Phase 4 guard."""
    return f"{trigger_id}:retrigger-{number}"


def retrigger_collection(spec: PipelineSpec, game_date: dt.date) -> str:
    return f"{spec.orchestrator.collections.triggers}/{game_date.isoformat()}/{RETRIGGERS}"


def retrigger_number(claim: TriggerClaim) -> int:
    number = claim.decision.get("retrigger")
    return int(number) if number is not None else int(claim.key.rsplit("-", 1)[-1])


def retrigger_claims_store(client: firestore.Client, spec: PipelineSpec, game_date: dt.date) -> TriggerClaims:
    settings = spec.orchestrator
    return TriggerClaims(
        client,
        retrigger_collection(spec, game_date),
        settings.collections.receipts,
        lease=dt.timedelta(seconds=settings.claim_lease_seconds),
        receipt_grace=dt.timedelta(seconds=settings.receipt_grace_seconds),
    )


def retrigger_claims(client: firestore.Client, spec: PipelineSpec, game_date: dt.date) -> list[TriggerClaim]:
    """Every re-trigger claim of a date, by number (for explain and the health check)."""
    store = retrigger_claims_store(client, spec, game_date)
    return sorted(store.claims_on(game_date), key=retrigger_number)


@dataclass(frozen=True)
class Outcome:
    """What one override did to one game date."""

    game_date: dt.date
    kind: str
    outcome: str
    detail: str
    override_id: str | None
    trigger_ids: tuple[str, ...] = ()
    message_ids: dict[str, str] = field(default_factory=dict)
    retrigger: int | None = None
    cascade_from: dt.date | None = None
    processors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    def as_dict(self) -> dict[str, Any]:
        return {
            "game_date": self.game_date.isoformat(),
            "kind": self.kind,
            "outcome": self.outcome,
            "ok": self.ok,
            "detail": self.detail,
            "override_id": self.override_id,
            "trigger_ids": list(self.trigger_ids),
            "message_ids": dict(self.message_ids),
            "retrigger": self.retrigger,
            "cascade_from": self.cascade_from.isoformat() if self.cascade_from else None,
            "processors": list(self.processors),
        }


# The orchestrator's own publish and follow/recover steps: a claim made here is sent, marked,
# released and recovered exactly as one a delivery made.
def _publish(orchestrator: Orchestrator, claim: TriggerClaim, claims: TriggerClaims):
    return orchestrator._publish(claim, claim.messages, TRIGGERED, claims)


def _follow(orchestrator: Orchestrator, claim: TriggerClaim, owner: str, claims: TriggerClaims):
    return orchestrator._follow(claim, owner, claims)


class Overrides:
    def __init__(self, orchestrator: Orchestrator, client: firestore.Client, clock: Clock | None = None):
        self.orchestrator = orchestrator
        self.spec = orchestrator.spec
        self.client = client
        self.clock = clock or orchestrator.clock
        self.log = records.OverrideLog(client, self.spec.orchestrator.collections.overrides)

    # -- trigger --force ---------------------------------------------------------------------

    def force_trigger(self, game_date: dt.date | str, reason: str, operator: Operator) -> Outcome:
        """Trigger a date that is not ready, through the date's own create-only claim."""
        game_date, reason = inputs.game_date(game_date), inputs.reason(reason)
        spec, orchestrator, now = self.spec, self.orchestrator, self.clock()
        mode = mode_for(spec, game_date, now)
        if mode is None:
            today = local_today(spec, now)
            raise BadOverride(
                "DATE",
                f"{game_date} is {(game_date - today).days} days after today ({today}, {spec.timezone}): "
                "no mode triggers it (Phase 4 takes game dates up to tomorrow)",
            )
        claim, completions, hold = self._read_date(game_date)
        readiness = evaluate(spec, game_date, _counted(completions), now)
        override_id = records.new_id(game_date, FORCE_TRIGGER)
        fields = {
            **self._fields(
                FORCE_TRIGGER,
                game_date,
                readiness.missing,
                operator,
                reason,
                f"phase3ops trigger {game_date} --force",
                override_id,
            ),
            "ready": readiness.ready,
            "completed": list(readiness.completed),
            "missing": list(readiness.missing),
            "claim": orchestrator.claims.document(game_date).path,
        }
        if claim is not None:
            return self._create(override_id, fields, REFUSED, _already_claimed(claim))

        report = orchestrator.gates.evaluate(game_date, mode) if orchestrator.gates is not None else GateReport()
        degraded = not readiness.ready or not report.passed
        why = f"forced by {operator.name}: {reason}"
        forced = replace(readiness, mode=mode.name, ready=True, reason=why, trigger_reason=FORCED)
        messages = [
            _with_fields(m, m.trigger_id, forced=True, override_id=override_id)
            for m in build_trigger_messages(spec, game_date, forced, completions, None, now, report, degraded)
        ]
        decision = {
            "mode": mode.name,
            "trigger_reason": FORCED,
            "reason": why,
            "completed": list(readiness.completed),
            "missing": list(readiness.missing),
            "executions": {n: completions[n].execution_id for n in readiness.completed},
            "gates": report.as_document(),
            "degraded": degraded,
            "override": {
                "id": override_id,
                "kind": FORCE_TRIGGER,
                "operator": operator.name,
                "reason": reason,
                "ready": readiness.ready,
            },
        }
        trigger_ids = [m.trigger_id for m in messages]
        self._create(
            override_id, {**fields, "degraded": degraded, "trigger_ids": trigger_ids}, PENDING, "claiming the date"
        )

        def claim_and_publish() -> Outcome:
            owner = _owner(FORCE_TRIGGER, operator)
            claimed = orchestrator.claims.try_claim(
                game_date, date_trigger_id(spec.name, game_date), owner, decision, messages
            )
            if claimed is None:  # another force, a delivery or a reconciliation claimed it since our read
                other = orchestrator.claims.get(game_date)
                detail = "claimed by someone else at the same moment: not sent again. " + (
                    _already_claimed(other) if other else ""
                )
                return self._finish(override_id, fields, REFUSED, detail, trigger_ids=[])
            try:
                sent = _publish(orchestrator, claimed, orchestrator.claims).extra.get("published_message_ids", {})
            except PublishFailed as exc:
                return self._finish(
                    override_id,
                    fields,
                    PUBLISH_FAILED,
                    f"{exc}. The claim stays pending: the orchestrator's next "
                    f"delivery or `scripts/reconcile_phase3_completion.py --date {game_date} --fix` finishes it",
                    trigger_ids=trigger_ids,
                )
            except RetryLater as exc:  # this attempt was taken over (paused past its lease): its new owner finishes it
                return self._finish(override_id, fields, IN_PROGRESS, str(exc), trigger_ids=trigger_ids)
            if hold is not None and hold.state == HOLD_ACTIVE and orchestrator.holds is not None:
                orchestrator.holds.release(game_date, claimed.trigger_id, degraded)
            state = "ready" if readiness.ready else f"not ready ({readiness.reason})"
            detail = (
                f"{len(messages)} Phase 4 message(s) published under {claimed.trigger_id}; the date was {state}"
                + (f"; gates: {report.summary}" if report.results else "")
            )
            return self._finish(override_id, fields, PUBLISHED, detail, trigger_ids=trigger_ids, message_ids=sent)

        return self._recording_errors(override_id, fields, claim_and_publish)

    # -- skip ------------------------------------------------------------------------------

    def skip(
        self, game_date: dt.date | str, processor: str, reason: str, operator: Operator, undo: bool = False
    ) -> Outcome:
        """Record that `processor` is not owed for the date (or, with `undo`, that it is again)."""
        game_date, reason = inputs.game_date(game_date), inputs.reason(reason)
        name = inputs.processor(self.spec, processor).name
        kind = UNSKIP if undo else SKIP
        current = records.skipped(self.client, self.spec, game_date).get(name)
        override_id = records.new_id(game_date, kind)
        command = f"phase3ops skip {game_date} {name}" + (" --undo" if undo else "")
        fields = self._fields(kind, game_date, [name], operator, reason, command, override_id)
        if undo and current is None:
            return self._create(override_id, fields, REFUSED, f"{name} is not skipped for {game_date}: nothing to undo")
        if undo:
            assert current is not None  # an undo with nothing to undo was refused above
            detail = f"{name} is owed for {game_date} again (undoes the skip by {current.operator}: {current.reason})"
        elif current is not None:
            detail = f"{name} was already skipped for {game_date} by {current.operator}; this record and its reason now stand"
        else:
            detail = f"{name} is not owed for {game_date}; nothing was triggered (the expected-work ledger reads this)"
        return self._create(override_id, fields, RECORDED, detail)

    # -- retrigger -------------------------------------------------------------------------

    def retrigger(self, game_date: dt.date | str, reason: str, operator: Operator, cascade: int = 0) -> list[Outcome]:
        """Send a triggered date to Phase 4 again as new work, and the `cascade` following triggered dates."""
        game_date, reason, cascade = inputs.game_date(game_date), inputs.reason(reason), inputs.cascade(cascade)
        invocation = uuid.uuid4().hex[:12]
        command = f"phase3ops retrigger {game_date}" + (f" --cascade {cascade}" if cascade else "")
        claim = self.orchestrator.claims.get(game_date)
        if claim is None or not claim.is_published:
            override_id = records.new_id(game_date, RETRIGGER)
            fields = self._fields(RETRIGGER, game_date, (), operator, reason, command, invocation)
            if claim is None:
                detail = (
                    f"{game_date} was never triggered: there is nothing to send again. A date that is not ready is sent with "
                    f"`phase3ops trigger {game_date} --force --reason ...`"
                )
            else:
                detail = (
                    f"{game_date}'s trigger is still pending (claimed by {claim.owner}): Phase 4 gets the date when it goes out; "
                    f"`scripts/reconcile_phase3_completion.py --date {game_date} --fix` finishes a stalled one"
                )
            return [
                self._create(
                    override_id, {**fields, "claim": self.orchestrator.claims.document(game_date).path}, REFUSED, detail
                )
            ]
        following, passed_over = self._following_triggered(game_date, cascade)
        cascade_info = {
            "asked": cascade,
            "dates": [c.game_date.isoformat() for c in following],
            "passed_over": passed_over,
        }
        outcomes = [
            self._retrigger_date(claim, reason, operator, command, invocation, None, cascade_info if cascade else None)
        ]
        for following_claim in following:
            outcomes.append(
                self._retrigger_date(following_claim, reason, operator, command, invocation, game_date, None)
            )
        return outcomes

    def _following_triggered(self, game_date: dt.date, count: int) -> tuple[list[TriggerClaim], list[str]]:
        """The `count` game dates after `game_date` whose trigger was published, in date order; and the
        dates passed over on the way because their trigger is still pending."""
        if count == 0:
            return [], []
        query = (
            self.client.collection(self.spec.orchestrator.collections.triggers)
            .where(filter=firestore.FieldFilter("game_date", ">", game_date.isoformat()))
            .order_by("game_date")
        )
        found: list[TriggerClaim] = []
        passed_over: list[str] = []
        for snapshot in query.stream():
            claim = TriggerClaims.from_snapshot(snapshot)
            assert claim is not None  # a query yields only documents that exist
            if claim.is_published:
                found.append(claim)
                if len(found) == count:
                    break
            else:
                passed_over.append(claim.game_date.isoformat())
        return found, passed_over

    def _retrigger_date(
        self,
        date_claim: TriggerClaim,
        reason: str,
        operator: Operator,
        command: str,
        invocation: str,
        cascade_from: dt.date | None,
        cascade_info: dict[str, Any] | None,
    ) -> Outcome:
        day = date_claim.game_date
        store = retrigger_claims_store(self.client, self.spec, day)
        existing = sorted(store.claims_on(day), key=retrigger_number)
        latest = existing[-1] if existing else None
        override_id = records.new_id(day, RETRIGGER)
        fields = self._fields(RETRIGGER, day, (), operator, reason, command, invocation)
        if cascade_from is not None:
            fields["cascade_from"] = cascade_from.isoformat()
        if cascade_info is not None:
            fields["cascade"] = cascade_info
        owner = _owner(RETRIGGER, operator)

        if latest is not None and not latest.is_published:
            # An earlier re-trigger of the date has not gone out (its command died, its publish failed, or it
            # is being published right now): finish that one, from its receipts, instead of adding another.
            number = retrigger_number(latest)
            fields.update(
                retrigger=number,
                claim=store.document(latest.key).path,
                processors=list(latest.decision.get("completed") or ()),
            )
            trigger_ids = [m.trigger_id for m in latest.messages]
            self._create(
                override_id, {**fields, "trigger_ids": trigger_ids}, PENDING, f"finishing re-trigger #{number}"
            )
            return self._recording_errors(
                override_id, fields, lambda: self._settle(override_id, fields, latest, store, owner)
            )

        number = (retrigger_number(latest) if latest is not None else 0) + 1
        now = self.clock()
        completions, _ = self.orchestrator.store.records_for_date(day, self.spec.processor_names)
        messages, decision = self._retrigger_messages(
            date_claim, completions, number, override_id, operator, reason, cascade_from, now
        )
        key = retrigger_key(day, number)
        trigger_ids = [m.trigger_id for m in messages]
        fields.update(
            retrigger=number,
            claim=store.document(key).path,
            processors=list(decision["completed"]),
            degraded=decision["degraded"],
        )
        self._create(override_id, {**fields, "trigger_ids": trigger_ids}, PENDING, f"claiming re-trigger #{number}")

        def claim_and_publish() -> Outcome:
            claimed = store.try_claim(
                day, retrigger_trigger_id(date_claim.trigger_id, number), owner, decision, messages, key=key
            )
            if (
                claimed is None
            ):  # another operator's retrigger took this number at the same moment: one re-trigger, not two
                other = store.get(key)
                return self._settle(override_id, fields, other, store, owner)
            try:
                sent = _publish(self.orchestrator, claimed, store).extra.get("published_message_ids", {})
            except PublishFailed as exc:
                return self._finish(
                    override_id,
                    fields,
                    PUBLISH_FAILED,
                    f"{exc}. Re-trigger #{number} stays pending: "
                    f"`phase3ops retrigger {day} --reason ...` finishes it (from its receipts, after its lease)",
                    trigger_ids=trigger_ids,
                )
            except RetryLater as exc:
                return self._finish(override_id, fields, IN_PROGRESS, str(exc), trigger_ids=trigger_ids)
            what = f"following {cascade_from}, whose rolling windows it includes" if cascade_from else "as new work"
            detail = (
                f"re-trigger #{number}: {len(messages)} Phase 4 message(s) published {what} ({', '.join(trigger_ids)})"
            )
            return self._finish(override_id, fields, PUBLISHED, detail, trigger_ids=trigger_ids, message_ids=sent)

        return self._recording_errors(override_id, fields, claim_and_publish)

    def _retrigger_messages(
        self,
        date_claim: TriggerClaim,
        completions: dict[str, CompletionRecord],
        number: int,
        override_id: str,
        operator: Operator,
        reason: str,
        cascade_from: dt.date | None,
        now: dt.datetime,
    ) -> tuple[list[TriggerMessage], dict[str, Any]]:
        spec, day = self.spec, date_claim.game_date
        readiness = evaluate(spec, day, _counted(completions), now)
        mode = mode_for(spec, day, now)
        mode_name = mode.name if mode is not None else date_claim.decision.get("mode")
        report = (
            self.orchestrator.gates.evaluate(day, mode)
            if self.orchestrator.gates is not None and mode is not None
            else GateReport()
        )
        degraded = not report.passed
        trigger_reason = CASCADED if cascade_from is not None else RETRIGGERED
        why = f"re-trigger #{number} by {operator.name}: {reason}" + (
            f" (following {cascade_from})" if cascade_from else ""
        )
        basis = Readiness(mode_name, True, readiness.completed, readiness.missing, why, trigger_reason)
        extra: dict[str, Any] = {
            "is_retrigger": True,
            "retrigger": number,
            "override_id": override_id,
            "is_incremental": False,
            "entities_changed": {},
        }
        if cascade_from is not None:
            extra["cascade_from"] = cascade_from.isoformat()
        messages = [
            _with_fields(m, retrigger_trigger_id(m.trigger_id, number), retrigger_of=m.trigger_id, **extra)
            for m in build_trigger_messages(spec, day, basis, completions, None, now, report, degraded)
        ]
        decision = {
            "mode": mode_name,
            "trigger_reason": trigger_reason,
            "reason": why,
            "completed": list(readiness.completed),
            "executions": {n: completions[n].execution_id for n in readiness.completed},
            "gates": report.as_document(),
            "degraded": degraded,
            "retrigger": number,
            "retrigger_of": date_claim.trigger_id,
            "cascade_from": cascade_from.isoformat() if cascade_from else None,
            "override": {"id": override_id, "kind": RETRIGGER, "operator": operator.name, "reason": reason},
        }
        return messages, decision

    def _settle(
        self, override_id: str, fields: dict[str, Any], claim: TriggerClaim | None, store: TriggerClaims, owner: str
    ) -> Outcome:
        """Someone else's re-trigger claim: wait for it to be published, or recover it as the orchestrator would."""
        if claim is None:
            return self._finish(
                override_id,
                fields,
                ERROR,
                "the re-trigger claim vanished (claims are never deleted: look at the collection)",
            )
        number = retrigger_number(claim)
        by = (claim.decision.get("override") or {}).get("operator") or claim.owner
        trigger_ids = [m.trigger_id for m in claim.messages]
        try:
            decision = _follow(self.orchestrator, claim, owner, store)
        except RetryLater as exc:
            return self._finish(
                override_id,
                fields,
                IN_PROGRESS,
                f"re-trigger #{number} by {by} is not finished: {exc}; "
                "run the command again then (it finishes that re-trigger, it does not add one)",
                trigger_ids=trigger_ids,
            )
        except PublishFailed as exc:
            return self._finish(
                override_id,
                fields,
                PUBLISH_FAILED,
                f"finishing re-trigger #{number} by {by}: {exc}",
                trigger_ids=trigger_ids,
            )
        settled = store.get(claim.key) or claim
        sent = {part: p.message_id for part, p in settled.published.items()}
        fields.update(retrigger=number, claim=store.document(claim.key).path)
        if decision.outcome == ALREADY_TRIGGERED:
            return self._finish(
                override_id,
                fields,
                JOINED,
                f"re-trigger #{number} was made by {by} at the same moment: it is published once, not sent again",
                trigger_ids=trigger_ids,
                message_ids=sent,
            )
        how = (
            "every message had a receipt: nothing re-sent"
            if decision.outcome == CONFIRMED_BY_RECEIPT
            else "sent what had not gone out"
        )
        return self._finish(
            override_id,
            fields,
            FINISHED,
            f"re-trigger #{number} by {by} had stalled; finished it: {how}",
            trigger_ids=trigger_ids,
            message_ids=sent,
        )

    # -- the record ------------------------------------------------------------------------

    @staticmethod
    def _fields(
        kind: str, game_date: dt.date, processors, operator: Operator, reason: str, command: str, invocation: str
    ) -> dict[str, Any]:
        return {
            "kind": kind,
            "game_date": game_date.isoformat(),
            "processors": list(processors),
            "operator": operator.name,
            "operator_source": operator.source,
            "reason": reason,
            "command": command,
            "invocation": invocation,
            "trigger_ids": [],
            "message_ids": {},
            "claim": None,
            "retrigger": None,
            "cascade_from": None,
        }

    def _create(self, override_id: str, fields: dict[str, Any], outcome: str, detail: str) -> Outcome:
        self.log.create(override_id, {**fields, "outcome": outcome, "detail": detail})
        return self._outcome(override_id, fields, outcome, detail)

    def _finish(self, override_id: str, fields: dict[str, Any], outcome: str, detail: str, **changes: Any) -> Outcome:
        fields.update(changes)
        stored = {k: fields[k] for k in ("trigger_ids", "message_ids", "retrigger", "claim") if k in fields}
        self.log.finish(override_id, outcome, detail, **stored)
        return self._outcome(override_id, fields, outcome, detail)

    def _outcome(self, override_id: str, fields: dict[str, Any], outcome: str, detail: str) -> Outcome:
        result = Outcome(
            dt.date.fromisoformat(fields["game_date"]),
            fields["kind"],
            outcome,
            detail,
            override_id,
            tuple(fields.get("trigger_ids") or ()),
            dict(fields.get("message_ids") or {}),
            fields.get("retrigger"),
            dt.date.fromisoformat(fields["cascade_from"]) if fields.get("cascade_from") else None,
            tuple(fields.get("processors") or ()),
        )
        level = logging.INFO if result.ok or outcome == PENDING else logging.WARNING
        log.log(
            level,
            f"{fields['kind']} {result.game_date}: {outcome}: {detail}",
            extra={"event": "phase3_override", **{k: v for k, v in result.as_dict().items() if k != "detail"}},
        )
        return result

    def _recording_errors(self, override_id: str, fields: dict[str, Any], action) -> Outcome:
        """Run `action`; an unexpected error is written to the record (best effort) before it propagates."""
        try:
            return action()
        except Exception as exc:
            try:
                self.log.finish(override_id, ERROR, f"{type(exc).__name__}: {exc}")
            except Exception:  # the store itself is down: the record stays `pending`, which the health check reports
                log.warning("could not record the error of override %s", override_id, exc_info=True)
            raise

    def _read_date(self, game_date: dt.date) -> tuple[TriggerClaim | None, dict[str, CompletionRecord], Hold | None]:
        """The date's claim, hold and completion records in one batched read."""
        orchestrator = self.orchestrator
        claim_ref = orchestrator.claims.document(game_date)
        hold_ref = orchestrator.holds.document(game_date) if orchestrator.holds is not None else None
        completions, extra = orchestrator.store.records_for_date(
            game_date, self.spec.processor_names, also_read=[claim_ref, *([hold_ref] if hold_ref is not None else [])]
        )
        hold_snapshot = extra.get(hold_ref.path) if hold_ref is not None else None
        hold = (
            Hold.from_document(hold_snapshot.to_dict()) if hold_snapshot is not None and hold_snapshot.exists else None
        )
        return TriggerClaims.from_snapshot(extra[claim_ref.path]), completions, hold


def build_overrides(
    spec: PipelineSpec,
    project: str | None = None,
    clock: Clock = utc_now,
    firestore_client=None,
    publisher_client=None,
    warehouse=None,
) -> Overrides:
    """The orchestrator (its store, claims, publisher, gates) and the override log, on one Firestore client."""
    from phase3ops.orchestrator.factory import build_orchestrator

    project = cloud.project_id(project)
    db = firestore_client or cloud.firestore_client(project)
    orchestrator = build_orchestrator(
        spec, project, clock=clock, firestore_client=db, publisher_client=publisher_client, warehouse=warehouse
    )
    # An operator's command may wait for a concurrent publish as long as one may take.
    orchestrator.in_flight_wait = max(orchestrator.in_flight_wait, spec.orchestrator.publish_timeout_seconds)
    return Overrides(orchestrator, db)


def _counted(completions: dict[str, CompletionRecord]) -> set[str]:
    return {name for name, record in completions.items() if record.counts}


def _owner(kind: str, operator: Operator) -> str:
    """An owner id unique to this command's attempt at a claim, saying who made it."""
    return f"override-{kind}-{operator.name}-{uuid.uuid4().hex[:8]}"


def _with_fields(message: TriggerMessage, trigger_id: str, **fields: Any) -> TriggerMessage:
    return TriggerMessage(
        message.part, trigger_id, message.game_date, {**message.body, **fields, "trigger_id": trigger_id}
    )


def _already_claimed(claim: TriggerClaim) -> str:
    by = (claim.decision.get("override") or {}).get("operator")
    how = f"forced by {by}" if by else f"{claim.decision.get('trigger_reason')}, claimed by {claim.owner}"
    if claim.is_published:
        return (
            f"{claim.game_date} is already triggered ({claim.trigger_id}, {how}): to send Phase 4 the date again after a "
            f"fix, use `phase3ops retrigger {claim.game_date} --reason ...`"
        )
    return (
        f"{claim.game_date} is being triggered ({claim.trigger_id}, {how}; the claim is pending): not sent again. If it stays "
        f"pending, `scripts/reconcile_phase3_completion.py --date {claim.game_date} --fix` finishes it"
    )
