"""The story of one game date, read from what the pipeline stored.

Firestore holds the completions (every run, with its lock token and owner),
the rejected messages that name the date, each processor's lock (its last
grants: who held it under which token, who took it over from whom), the
data gates' hold (which gates, their figures, from when until when), the
trigger claim (who claimed, the decision, each Phase 4 message and how it
was confirmed, takeovers), the follow-ups late data sent, and the receipts
the Phase 4 topic produced, the runs reconcile --fix re-requested, and the
operators' overrides; the warehouse holds the rows. Nothing here reads
logs: the story is the same a month later, and on the emulators. Locally,
the Phase 4 stand-in's ledger also says whether Phase 4 took each message.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore

from phase3ops.checks.ledger import gaps
from phase3ops.checks.state import DateState
from phase3ops.locking.lease_lock import lock_document_id
from phase3ops.orchestrator.completion_store import CompletionRecord, CompletionStore
from phase3ops.orchestrator.gate_holds import HELD, GateHolds, Hold
from phase3ops.orchestrator.outcomes import RecordOutcome
from phase3ops.orchestrator.readiness import Readiness, evaluate, judge, mode_deadline, mode_for, trigger_deadline
from phase3ops.orchestrator.trigger_claims import TriggerClaim, TriggerClaims
from phase3ops.spec.pipeline import PipelineSpec
from phase3ops.warehouse.port import Warehouse

# Event kinds, in the order events at the same instant are told.
LOCK, RUN, LATE, REJECTED, HOLD, OVERRIDE, REPAIR, CLAIM, PUBLISHED, FOLLOW_UP, RECEIPT, PHASE4 = (
    "lock",
    "run",
    "late",
    "rejected",
    "hold",
    "override",
    "repair",
    "claim",
    "published",
    "follow_up",
    "receipt",
    "phase4",
)
_KIND_ORDER = {
    kind: index
    for index, kind in enumerate(
        (LOCK, RUN, LATE, REJECTED, HOLD, OVERRIDE, REPAIR, CLAIM, PUBLISHED, FOLLOW_UP, RECEIPT, PHASE4)
    )
}

_RUN_OUTCOMES = {
    RecordOutcome.RECORDED.value: "recorded",
    RecordOutcome.UPDATED.value: "recorded (replaces the earlier run)",
    RecordOutcome.SUPERSEDED.value: "kept in the history: an earlier run is newer",
    RecordOutcome.KEPT_SUCCESS.value: "kept in the history: the success before it stands",
    RecordOutcome.STALE_TOKEN.value: "refused: written under a superseded lock token",
}


class NothingStored(LookupError):
    """No completion, claim, rejected message, lock, scheduled game or row names the date."""


@dataclass(frozen=True)
class Event:
    at: dt.datetime | None
    subject: str  # a processor, or "trigger"
    kind: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "subject": self.subject, "kind": self.kind, "text": self.text}


@dataclass(frozen=True)
class TableState:
    processor: str
    table: str
    rows: int
    duplicates: int
    status: str | None  # of the current completion record
    counts: bool
    reported_rows: int | None
    runs: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class ModeJudgement:
    mode: str
    applies_to: str
    applies_now: bool
    readiness: Readiness

    def as_dict(self) -> dict[str, Any]:
        r = self.readiness
        return {
            "mode": self.mode,
            "applies_to": self.applies_to,
            "applies_now": self.applies_now,
            "ready": r.ready,
            "trigger_reason": r.trigger_reason,
            "reason": r.reason,
            "missing": list(r.missing),
        }


@dataclass(frozen=True)
class TriggerPart:
    part: str
    message_id: str | None
    confirmed_by: str | None
    receipt_message_ids: tuple[str, ...]  # every message the Phase 4 topic delivered for it

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "receipt_message_ids": list(self.receipt_message_ids)}


@dataclass
class DateStory:
    game_date: dt.date
    timezone: str
    now: dt.datetime
    deadline: dt.datetime
    mode_now: str | None
    games: int
    events: list[Event] = field(default_factory=list)
    judgements: list[ModeJudgement] = field(default_factory=list)
    claim: TriggerClaim | None = None
    hold: Hold | None = None
    follow_ups: list[TriggerClaim] = field(default_factory=list)
    parts: list[TriggerPart] = field(default_factory=list)
    tables: list[TableState] = field(default_factory=list)
    rejected: int = 0
    missing: list[str] = field(default_factory=list)  # owed processors past due, neither run nor skipped
    skipped: list[str] = field(default_factory=list)
    phase4_taken: dict[str, bool] | None = (
        None  # trigger id -> Phase 4 (the local stand-in) started its work; None: not known
    )
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        claim = self.claim
        return {
            "game_date": self.game_date.isoformat(),
            "timezone": self.timezone,
            "explained_at": _iso(self.now),
            "trigger_deadline": _iso(self.deadline),
            "mode_now": self.mode_now,
            "games": self.games,
            "events": [e.as_dict() for e in self.events],
            "readiness": [j.as_dict() for j in self.judgements],
            "trigger": None
            if claim is None
            else {
                "trigger_id": claim.trigger_id,
                "state": claim.state,
                "owner": claim.owner,
                "attempts": claim.attempts,
                "mode": claim.decision.get("mode"),
                "trigger_reason": claim.decision.get("trigger_reason"),
                "claimed_at": _iso(claim.claimed_at),
                "published_at": _iso(claim.published_at),
                "parts": [p.as_dict() for p in self.parts],
            },
            "hold": None
            if self.hold is None
            else {
                "state": self.hold.state,
                "blocked_by": self.hold.blocked_by,
                "gates": self.hold.report.get("results"),
                "first_held_at": _iso(self.hold.first_held_at),
                "released_at": _iso(self.hold.released_at),
                "evaluations": self.hold.evaluations,
                "degraded": self.hold.degraded,
            },
            "follow_ups": [
                {
                    "trigger_id": f.trigger_id,
                    "table": f.messages[0].part if f.messages else None,
                    "state": f.state,
                    "run": next(iter(f.executions.values()), None),
                }
                for f in self.follow_ups
            ],
            "tables": [t.as_dict() for t in self.tables],
            "rejected_messages": self.rejected,
            "missing_runs": list(self.missing),
            "skipped": list(self.skipped),
            "phase4_took": self.phase4_taken,
            "findings": list(self.findings),
            "notes": list(self.notes),
        }


def read_story(
    spec: PipelineSpec,
    store: CompletionStore,
    claims: TriggerClaims,
    firestore_client,
    warehouse: Warehouse,
    game_date: dt.date,
    now: dt.datetime,
    holds: GateHolds | None = None,
    followups: TriggerClaims | None = None,
    overrides: Sequence[dict[str, Any]] = (),
    skipped: Collection[str] = (),
    phase4_entries: list[dict[str, Any]] | None = None,
) -> DateStory:
    """Everything stored about the date, as events and summaries; raises NothingStored.

    `overrides`: the operators' overrides of the date; `skipped`: the processors they skipped for it;
    `phase4_entries`: what Phase 4 did with each message, where that is known (the local stand-in's ledger)."""
    hold_refs = [holds.document(game_date)] if holds is not None else []
    records, extra = store.records_for_date(
        game_date, spec.processor_names, also_read=[claims.document(game_date), *hold_refs]
    )
    claim_snapshot = extra[claims.document(game_date).path]
    claim = TriggerClaims.from_snapshot(claim_snapshot) if claim_snapshot.exists else None
    hold_snapshot = extra[hold_refs[0].path] if hold_refs else None
    hold = Hold.from_document(hold_snapshot.to_dict()) if hold_snapshot is not None and hold_snapshot.exists else None
    follow_ups = (
        sorted(followups.claims_on(game_date), key=lambda f: f.claimed_at or now) if followups is not None else []
    )
    rejected = store.rejected.for_date(game_date)
    lock_collection = firestore_client.collection(spec.analytics.lock.collection)
    lock_refs = {lock_document_id(p.name, game_date): p.name for p in spec.processors}
    locks = {
        lock_refs[snapshot.id]: snapshot.to_dict()
        for snapshot in firestore_client.get_all([lock_collection.document(i) for i in lock_refs])
        if snapshot.exists
    }
    receipts = _on_date(firestore_client, spec.orchestrator.collections.receipts, game_date)
    repairs = _on_date(firestore_client, spec.orchestrator.collections.repairs, game_date)
    rows = {p.name: warehouse.row_counts(p.table, game_date, game_date).get(game_date, 0) for p in spec.processors}
    duplicates = {
        p.name: warehouse.duplicate_counts(p.table, game_date, game_date).get(game_date, 0) for p in spec.processors
    }
    games = warehouse.row_counts(spec.raw_table(spec.game_schedule_table), game_date, game_date).get(game_date, 0)
    if not (records or claim or hold or rejected or locks or receipts or games or any(rows.values())):
        raise NothingStored(
            f"nothing is stored for {game_date}: no completion, trigger claim, rejected message, lock, "
            f"scheduled game or warehouse row names it (right project? `--local` for the local pipeline)"
        )

    mode = mode_for(spec, game_date, now)
    deadline = mode_deadline(spec, mode, game_date) if mode else trigger_deadline(spec, game_date)
    story = DateStory(
        game_date,
        spec.timezone,
        now,
        deadline,
        mode.name if mode else None,
        games,
        claim=claim,
        hold=hold,
        follow_ups=follow_ups,
    )
    phase4_entries = (
        [e for e in phase4_entries if e.get("game_date") == game_date.isoformat()]
        if phase4_entries is not None
        else None
    )
    story.events = sorted(
        [
            *_lock_events(locks, records),
            *_run_events(records, claim),
            *_rejected_events(rejected),
            *_hold_events(hold, claim),
            *_claim_events(claim),
            *_follow_up_events(follow_ups),
            *_receipt_events(receipts),
            *_repair_events(repairs),
            *_override_events(overrides),
            *_phase4_events(phase4_entries or ()),
        ],
        key=lambda e: (e.at or now, _KIND_ORDER[e.kind]),
    )
    counted = {name for name, record in records.items() if record.counts}
    story.judgements = [
        ModeJudgement(m.name, m.applies_to, m.name == story.mode_now, judge(spec, m, game_date, counted, now))
        for m in spec.modes
    ]
    story.parts = _parts(claim, receipts)
    story.tables = [
        _table_state(p.name, p.output_table, records.get(p.name), rows[p.name], duplicates[p.name])
        for p in spec.processors
    ]
    story.rejected = len(rejected)
    state = DateState(game_date, records, claim, rows, games)
    story.missing = [
        f"{gap.processor} ({gap.status}; owed by {_local(gap.due, spec.timezone)[5:16]}, {gap.mode})"
        for gap in gaps(spec, {game_date: state}, {game_date: skipped}, now)
    ]
    story.skipped = sorted(skipped)
    if phase4_entries is not None:
        story.phase4_taken = _phase4_taken(claim, phase4_entries)
    story.findings, story.notes = _findings(spec, story, evaluate(spec, game_date, counted, now), receipts)
    return story


def _on_date(firestore_client, collection: str, game_date: dt.date) -> list[dict[str, Any]]:
    query = firestore_client.collection(collection).where(
        filter=firestore.FieldFilter("game_date", "==", game_date.isoformat())
    )
    return [snapshot.to_dict() for snapshot in query.stream()]


def _repair_events(repairs: list[dict[str, Any]]) -> list[Event]:
    events = []
    for repair in sorted(repairs, key=lambda r: r.get("attempt", 0)):
        sent = {"sent": f"sent as {repair.get('message_id')}", "failed": f"NOT sent: {repair.get('error')}"}.get(
            repair.get("state", ""), "being sent"
        )
        events.append(
            Event(
                repair.get("requested_at"),
                repair.get("processor", "?"),
                REPAIR,
                f"reconcile --fix re-requested the run (attempt {repair.get('attempt')}, {repair.get('run_id')}): {sent}",
            )
        )
    return events


def _override_events(overrides: Sequence[dict[str, Any]]) -> list[Event]:
    events = []
    for override in overrides:
        subject = override.get("processor") or "trigger"
        what = override.get("command") or override.get("kind") or "override"
        outcome = f": {override['outcome']}" if override.get("outcome") else ""
        events.append(
            Event(
                override.get("at"),
                subject,
                OVERRIDE,
                f"OVERRIDE {what} by {override.get('operator')}, because {override.get('reason')!r}{outcome}",
            )
        )
    return events


def _phase4_events(entries: Collection[dict[str, Any]]) -> list[Event]:
    events = []
    for entry in entries:
        at = dt.datetime.fromisoformat(entry["received_at"]) if entry.get("received_at") else None
        if entry.get("verdict") == "refused" or not 200 <= entry.get("status", 0) < 300:
            text = f"Phase 4 (stand-in) REFUSED {entry.get('message_id')}: {(entry.get('refusal') or {}).get('reason')}"
        elif entry.get("work_started"):
            text = f"Phase 4 (stand-in) took {entry.get('trigger_id')} ({entry.get('message_id')}) and started its work"
        else:
            text = f"Phase 4 (stand-in) acknowledged {entry.get('trigger_id')} ({entry.get('message_id')}) without new work (guard: {entry.get('verdict')})"
        events.append(Event(at, entry.get("source_table") or "trigger", PHASE4, text))
    return events


def _phase4_taken(claim: TriggerClaim | None, entries: list[dict[str, Any]]) -> dict[str, bool]:
    """Per message of the claim: did Phase 4 start its work for it."""
    started = {e.get("trigger_id") for e in entries if e.get("work_started")}
    return {m.trigger_id: m.trigger_id in started for m in (claim.messages if claim is not None else ())}


def _lock_events(locks: dict[str, dict[str, Any]], records: dict[str, CompletionRecord]) -> list[Event]:
    """Takeovers, and grants no completion came from (a run that died or is still working);
    a grant that a completion reports is told on that run's line."""
    events = []
    for processor, lock in locks.items():
        reported = {run.get("lock_token") for run in (records[processor].runs if processor in records else ())}
        for grant in lock.get("grants") or ():
            silent = "" if grant["token"] in reported else ": no completion came from it"
            if grant.get("taken_over_from"):
                text = f"lock token {grant['token']} taken over by {grant['owner']} from {grant['taken_over_from']} (its lease ran out)"
            elif silent:
                text = f"lock token {grant['token']} granted to {grant['owner']}"
            else:
                continue
            events.append(Event(grant.get("at"), processor, LOCK, text + silent))
    return events


def _run_events(records: dict[str, CompletionRecord], claim: TriggerClaim | None) -> list[Event]:
    events = []
    included = claim.executions if claim else {}
    for processor, record in records.items():
        for run in record.runs:
            rows = run.get("record_count") or 0
            details = [f"{run.get('status')}", f"{rows} row{'s' if rows != 1 else ''}"]
            if run.get("lock_token") is not None:
                details.append(
                    f"lock token {run['lock_token']}"
                    + (f" held by {run['lock_owner']}" if run.get("lock_owner") else "")
                )
            if run.get("duration_seconds") is not None:
                details.append(f"took {run['duration_seconds']:.1f} s")
            outcome = _RUN_OUTCOMES.get(run.get("outcome", ""), run.get("outcome", ""))
            late = (
                claim is not None
                and claim.claimed_at is not None
                and run.get("published_at") is not None
                and run["published_at"] > claim.claimed_at
                and included.get(processor) != run.get("execution_id")
            )
            kind = LATE if late else RUN
            if late:
                outcome = f"late, after the trigger; {outcome}"
            events.append(
                Event(
                    run.get("published_at"),
                    processor,
                    kind,
                    f"{', '.join(details)}: {outcome} (run {run.get('execution_id')})",
                )
            )
    return events


def _rejected_events(rejected: list[dict[str, Any]]) -> list[Event]:
    return [
        Event(
            r.get("published_at") or r.get("rejected_at"),
            r.get("processor") or "(unknown processor)",
            REJECTED,
            f"message {r.get('message_id')} rejected ({r.get('field') or 'message'}): {r.get('reason')}",
        )
        for r in rejected
    ]


def _claim_events(claim: TriggerClaim | None) -> list[Event]:
    if claim is None:
        return []
    decision = claim.decision
    first_owner = next((h.get("owner") for h in claim.history if h.get("event") == "claimed"), claim.owner)
    events = [
        Event(
            claim.claimed_at,
            "trigger",
            CLAIM,
            f"claimed by {who(first_owner)}: {decision.get('mode')}, {decision.get('trigger_reason')} on "
            f"{len(decision.get('completed') or ())} completions; {len(claim.messages)} Phase 4 messages",
        )
    ]
    for entry in claim.history:
        event = entry.get("event")
        if event == "taken_over":
            why = (
                "it had sent nothing"
                if entry.get("previous_outcome") == "nothing_sent"
                else "its lease and the receipt grace ran out"
            )
            text = f"claim taken over by {who(entry.get('owner'))} from {who(entry.get('previous_owner'))} (attempt {entry.get('attempt')}): {why}"
        elif event == "confirmed_by_receipt":
            text = f"{', '.join(entry.get('parts') or ())} confirmed sent by their receipts (found by {who(entry.get('by'))}): not re-sent"
        elif event == "lease_released":
            text = f"lease released by {who(entry.get('owner'))}: it sent nothing (Pub/Sub refused the publish, or its lease had no time left)"
        else:
            continue
        events.append(Event(entry.get("at"), "trigger", CLAIM, text))
    for part, published in sorted(claim.published.items()):
        if published.confirmed_by == "publisher":
            events.append(
                Event(
                    published.published_at,
                    "trigger",
                    PUBLISHED,
                    f"Phase 4 message for {part} published: {published.message_id}",
                )
            )
    if claim.is_published:
        events.append(
            Event(
                claim.published_at, "trigger", PUBLISHED, f"trigger complete: all {len(claim.messages)} messages sent"
            )
        )
    return events


def _hold_events(hold: Hold | None, claim: TriggerClaim | None) -> list[Event]:
    if hold is None:
        return []
    results = hold.report.get("results") or {}
    gates = "; ".join(f"{name}: {results.get(name, {}).get('detail', '')}" for name in hold.blocked_by)
    events = [Event(hold.first_held_at, "gates", HOLD, f"ready, but held by the data gates ({gates})")]
    if (
        hold.state == HELD and claim is not None and claim.is_published
    ):  # released by a recovery, which does not mark it
        events.append(
            Event(
                claim.published_at,
                "gates",
                HOLD,
                f"released: the trigger went out after {hold.evaluations} evaluations",
            )
        )
    elif hold.state != HELD:
        held_for = ""
        if hold.first_held_at and hold.released_at:
            minutes = (hold.released_at - hold.first_held_at).total_seconds() / 60
            held_for = f" after {minutes:.0f} min" if minutes >= 1 else f" after {minutes * 60:.0f} s"
        how = (
            "triggered degraded at its deadline (a gate still failed)" if hold.degraded else "its data passed the gates"
        )
        events.append(
            Event(hold.released_at, "gates", HOLD, f"released{held_for}, {hold.evaluations} evaluations: {how}")
        )
    return events


def _follow_up_events(follow_ups: list[TriggerClaim]) -> list[Event]:
    events = []
    for follow_up in follow_ups:
        table = follow_up.messages[0].part if follow_up.messages else "?"
        run = next(iter(follow_up.executions.values()), "?")
        events.append(
            Event(
                follow_up.claimed_at,
                "trigger",
                FOLLOW_UP,
                f"late data in {table} (run {run}): follow-up claimed by {who(follow_up.owner)}",
            )
        )
        for part, published in follow_up.published.items():
            events.append(
                Event(
                    published.published_at or follow_up.published_at,
                    "trigger",
                    FOLLOW_UP,
                    f"follow-up for {part} sent ({published.message_id}, confirmed by {published.confirmed_by})",
                )
            )
    return events


def _receipt_events(receipts: list[dict[str, Any]]) -> list[Event]:
    events = []
    for receipt in receipts:
        table = receipt.get("source_table") or "the date"
        events.append(
            Event(
                receipt.get("recorded_at"),
                "trigger",
                RECEIPT,
                f"receipt: the Phase 4 topic carried {receipt.get('message_id')} for {table}",
            )
        )
        for duplicate in receipt.get("duplicate_message_ids") or ():
            events.append(
                Event(
                    receipt.get("recorded_at"),
                    "trigger",
                    RECEIPT,
                    f"DUPLICATE: a second message {duplicate} for {table}",
                )
            )
    return events


def _parts(claim: TriggerClaim | None, receipts: list[dict[str, Any]]) -> list[TriggerPart]:
    if claim is None:
        return []
    by_trigger = {r.get("trigger_id"): r for r in receipts}
    parts = []
    for message in claim.messages:
        published = claim.published.get(message.part)
        receipt = by_trigger.get(message.trigger_id)
        seen = () if receipt is None else (receipt.get("message_id"), *(receipt.get("duplicate_message_ids") or ()))
        parts.append(
            TriggerPart(
                message.part,
                published.message_id if published else None,
                published.confirmed_by if published else None,
                tuple(seen),
            )
        )
    return parts


def _table_state(processor: str, table: str, record: CompletionRecord | None, rows: int, duplicates: int) -> TableState:
    if record is None:
        return TableState(processor, table, rows, duplicates, None, False, None, 0)
    return TableState(
        processor, table, rows, duplicates, record.status, record.counts, record.record_count, len(record.runs)
    )


def _findings(
    spec: PipelineSpec, story: DateStory, now_readiness: Readiness, receipts: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    findings, notes = [], []
    claim = story.claim
    if story.rejected:
        findings.append(
            f"{story.rejected} rejected message(s) name this date: the producer sent what can never be valid "
            f"(kept in {spec.orchestrator.collections.rejected})"
        )
    hold = story.hold
    if claim is None and hold is not None and hold.state == HELD:
        deadline = "past its deadline" if hold.past_deadline else "its deadline is ahead"
        findings.append(
            f"ready, but held by the data gates ({', '.join(hold.blocked_by)}; {hold.evaluations} evaluations, "
            f"{deadline}): phase3ops holds --recheck once the data is there"
        )
    elif claim is None:
        if now_readiness.ready:
            findings.append(
                f"ready under {now_readiness.mode} ({now_readiness.trigger_reason}) but Phase 4 was never "
                "triggered: scripts/reconcile_phase3_completion.py --fix repairs it"
            )
        elif now_readiness.overdue:
            findings.append(f"past its trigger deadline and not ready: {now_readiness.reason}")
        elif now_readiness.mode:
            notes.append(f"not triggered yet: {now_readiness.reason}")
        else:
            notes.append(now_readiness.reason)
    elif not claim.is_published:
        age = (story.now - claim.claimed_at).total_seconds() / 60 if claim.claimed_at else 0
        text = f"the trigger claim is pending ({len(claim.published)} of {len(claim.messages)} messages confirmed, owner {who(claim.owner)})"
        # Awaiting receipts always has a due time.
        if claim.awaiting_receipts and (due := claim.receipts_due_by) is not None:
            text += f"; its lease ended, and recovery waits until {_local(due, story.timezone)} for the receipts of what it may have sent"
        if age >= spec.scraper_timing.pending_claim_minutes:
            findings.append(f"{text} for {age:.0f} min: scripts/reconcile_phase3_completion.py --fix recovers it")
        else:
            notes.append(f"{text}: the next delivery or reconciliation finishes it")
    for missing in story.missing:
        findings.append(
            f"owed run missing: {missing}: reconcile --fix re-requests it, or phase3ops skip {story.game_date} PROCESSOR --reason ..."
        )
    if story.phase4_taken and claim is not None and claim.is_published:
        untaken = [trigger_id for trigger_id, taken in story.phase4_taken.items() if not taken]
        if untaken:
            findings.append(
                f"Phase 4 has not started work for {len(untaken)} of {len(story.phase4_taken)} messages: {', '.join(untaken)}"
            )
    for receipt in receipts:
        if receipt.get("duplicate_message_ids"):
            findings.append(
                f"Phase 4 received {1 + len(receipt['duplicate_message_ids'])} messages for {receipt.get('trigger_id')}"
            )
    for table in story.tables:
        if table.duplicates:
            findings.append(f"{table.table}: {table.duplicates} duplicate rows")
        if table.rows and not table.counts:
            findings.append(
                f"{table.table}: {table.rows} rows but no counting completion (a write that did not report)"
            )
        elif table.counts and table.reported_rows and not table.rows:
            findings.append(f"{table.table}: the completion reports {table.reported_rows} rows, the warehouse has none")
    if claim is not None and claim.decision.get("degraded"):
        notes.append(
            f"triggered degraded at its deadline: {', '.join((claim.decision.get('gates') or {}).get('blocked_by') or ())} "
            "still failed; follow-ups (in the timeline) told Phase 4 of the data that came later"
        )
    for follow_up in story.follow_ups:
        if not follow_up.is_published:
            notes.append(
                f"follow-up {follow_up.trigger_id} is pending: the next delivery or reconciliation finishes it"
            )
    if claim is not None and claim.is_published:
        unreceipted = [p.part for p in story.parts if not p.receipt_message_ids]
        if unreceipted:
            notes.append(f"no receipt yet for {', '.join(unreceipted)} (the receipts recorder may be behind)")
    return findings, notes


def who(owner: str | None) -> str:
    """A claim's owner for people: the orchestrator claims under `delivery-<Pub/Sub message id>-<handling>`."""
    if owner and owner.startswith("delivery-"):
        message_id, _, handling = owner.removeprefix("delivery-").rpartition("-")
        return f"delivery {message_id} (handling {handling})"
    return str(owner)


def _local(value: dt.datetime, timezone: str) -> str:
    return value.astimezone(zoneinfo.ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None
