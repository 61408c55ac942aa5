"""Trigger claims: the durable "Phase 4 is being / was triggered" marker of a game date.

One document per game date (and, for late data, per follow-up), created
with `create()` so exactly one delivery wins it, in state `pending`. It
stores the exact messages to publish, so whoever finishes the claim sends
the same bytes, and which of them (parts) went out. The winner publishes,
then marks the claim `published`.

Attempts. Whoever holds the claim holds it for one attempt: an owner id
unique to that handling (never a Pub/Sub message id, which a redelivery
shares), an attempt number, and a lease. Every write an owner makes (its
mark, its release) is conditional on the claim being exactly as its own last
write left it, so a stale attempt can neither mark nor release a claim that
someone has taken over since.

Leases are measured in Firestore's time, never a host's: an attempt's lease
starts at the server time of the write that began it (`lease_started_at`, a
server timestamp), and a reader compares its end with the time Firestore
read the document. The owner itself measures its lease from its monotonic
clock just before that write was sent (an instant no later than the lease's
start), and never sends a publish with less time left than it needs.

Recovery. A pending claim whose lease ran out is recovered by whoever finds
it (a delivery or the reconciliation, whoever owned it): it reads the
receipts of the unpublished messages. A receipt proves its message went out
(and only its own: Google documents no all-or-nothing Publish of several
messages, so one receipt never stands for the rest of its call). When every
message has one, the claim is marked published from that evidence. When
some have none and the attempt's outcome is unknown (its owner died, or its
publish timed out and may still land), recovery waits `receipt_grace_seconds`
past the lease for their receipts before it takes the claim over and sends
the rest: a publish whose bytes were late, or whose receipt is being
retried, is then seen instead of sent twice. An attempt whose owner knows it
sent nothing (Pub/Sub refused the publish, or no lease time was left to
send it) is released at once and needs no grace.

Every recovery write is conditional on the claim's update time
(compare_and_set.py, not a transaction, whose read locks a killed instance
would leave behind): of two recoverers one wins, the other reads again and
finds the claim taken.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from phase3ops.compare_and_set import Contended, Written, compare_and_set_written, update_if_unchanged
from phase3ops.orchestrator.phase4_trigger import TriggerMessage

PENDING = "pending"
PUBLISHED = "published"
BY_PUBLISHER = "publisher"
BY_RECEIPT = "receipt"
# What the current attempt's publish did, as far as its owner knows.
OUTCOME_UNKNOWN = "unknown"  # it may have sent messages: recovery waits for their receipts
NOTHING_SENT = "nothing_sent"  # Pub/Sub refused it, or it was never sent: recovery may go ahead


@dataclass(frozen=True)
class PublishedPart:
    message_id: str
    confirmed_by: str  # publisher | receipt
    published_at: dt.datetime | None = None


@dataclass(frozen=True)
class TriggerClaim:
    key: str  # the claim document's id: the game date, or a follow-up's key
    game_date: dt.date
    trigger_id: str
    state: str
    owner: str
    attempts: int
    lease_seconds: float
    receipt_grace_seconds: float
    decision: dict[str, Any]  # mode, trigger_reason, reason, completed, executions, gates
    messages: tuple[TriggerMessage, ...]
    published: dict[str, PublishedPart] = field(default_factory=dict)
    lease_started_at: dt.datetime | None = None  # Firestore's time of the write that began the current attempt
    attempt_outcome: str = OUTCOME_UNKNOWN
    claimed_at: dt.datetime | None = None
    published_at: dt.datetime | None = None
    history: tuple[dict[str, Any], ...] = ()  # claimed, taken over, confirmed by receipt, lease released
    read_time: dt.datetime | None = None  # when Firestore read this copy
    # Only on the owner's own copy: its last write (the precondition of its next one) and the
    # monotonic instant by which its attempt must have sent everything.
    written: Written | None = field(default=None, compare=False)
    local_deadline: float | None = field(default=None, compare=False)

    @property
    def is_published(self) -> bool:
        return self.state == PUBLISHED

    @property
    def lease_expires_at(self) -> dt.datetime | None:
        if self.lease_started_at is None:
            return None
        return self.lease_started_at + dt.timedelta(seconds=self.lease_seconds)

    @property
    def receipts_due_by(self) -> dt.datetime | None:
        """Until when recovery waits for receipts of the current attempt's messages."""
        expires = self.lease_expires_at
        if expires is None or self.attempt_outcome == NOTHING_SENT:
            return expires
        return expires + dt.timedelta(seconds=self.receipt_grace_seconds)

    @property
    def lease_active(self) -> bool:
        """Live at the moment Firestore read the claim. A claim just written by this
        caller has no read time yet and is live by construction."""
        if self.read_time is None or self.lease_expires_at is None:
            return True
        return self.read_time < self.lease_expires_at

    @property
    def awaiting_receipts(self) -> bool:
        """Its lease is over, its attempt may have sent messages, and their receipts may still come."""
        due = self.receipts_due_by
        # lease_active is False only with a read_time: the check below changes no answer.
        return (
            not self.is_published
            and not self.lease_active
            and due is not None
            and self.read_time is not None
            and self.read_time < due
        )

    @property
    def unpublished(self) -> tuple[TriggerMessage, ...]:
        return tuple(m for m in self.messages if m.part not in self.published)

    @property
    def executions(self) -> dict[str, str]:
        """The processor runs the trigger was decided on (a later run is `late`)."""
        return dict(self.decision.get("executions", {}))

    def seconds_left(self) -> float:
        """How long the owner may still send in this attempt (its own monotonic clock)."""
        return float("inf") if self.local_deadline is None else self.local_deadline - time.monotonic()

    @classmethod
    def from_document(cls, key: str, data: Mapping[str, Any], read_time: dt.datetime | None = None) -> TriggerClaim:
        return cls(
            key=key,
            game_date=dt.date.fromisoformat(data["game_date"]),
            trigger_id=data["trigger_id"],
            state=data["state"],
            owner=data["owner"],
            attempts=int(data.get("attempts", 1)),
            lease_seconds=float(data.get("lease_seconds", 0)),
            receipt_grace_seconds=float(data.get("receipt_grace_seconds", 0)),
            decision=dict(data.get("decision") or {}),
            messages=tuple(TriggerMessage.from_document(m) for m in data.get("messages", ())),
            published={part: PublishedPart(**value) for part, value in (data.get("published") or {}).items()},
            lease_started_at=data.get("lease_started_at"),
            attempt_outcome=data.get("attempt_outcome", OUTCOME_UNKNOWN),
            claimed_at=data.get("claimed_at"),
            published_at=data.get("published_at"),
            history=tuple(data.get("history") or ()),
            read_time=read_time,
        )


class ClaimContended(RuntimeError):
    """Other callers are recovering the same claim at this moment; every conditional write lost."""


class AttemptSuperseded(RuntimeError):
    """The claim changed since this owner's last write: its attempt was taken over (its lease and
    the receipt grace ran out). The owner writes nothing more to it."""


class Recovery(enum.Enum):
    ALREADY_PUBLISHED = "already_published"  # someone finished it meanwhile
    GONE = "gone"  # its owner let go of it meanwhile (the date's gates held it)
    STILL_LEASED = "still_leased"  # its owner's lease still runs (perhaps just taken over by someone else)
    AWAITING_RECEIPTS = "awaiting_receipts"  # the lease ran out; receipts of what it may have sent may still come
    CONFIRMED = "confirmed"  # every message had a receipt: marked published, nothing to send
    TAKEN_OVER = "taken_over"  # ours now: publish `claim.unpublished`


class TriggerClaims:
    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        receipts_collection: str,
        lease: dt.timedelta,
        receipt_grace: dt.timedelta = dt.timedelta(0),
    ):
        self._client = client
        self._collection = client.collection(collection)
        self._receipts = client.collection(receipts_collection)
        self.lease = lease
        self.receipt_grace = receipt_grace

    def document(self, key: dt.date | str):
        return self._collection.document(_key(key))

    def get(self, key: dt.date | str) -> TriggerClaim | None:
        return self.from_snapshot(self.document(key).get())

    @staticmethod
    def from_snapshot(snapshot) -> TriggerClaim | None:
        if not snapshot.exists:
            return None
        return TriggerClaim.from_document(snapshot.id, snapshot.to_dict(), snapshot.read_time)

    def claims_on(self, game_date: dt.date) -> list[TriggerClaim]:
        """Every claim of one game date (the follow-ups' collection holds several)."""
        query = self._collection.where(filter=firestore.FieldFilter("game_date", "==", game_date.isoformat()))
        # A query yields only documents that exist: none is dropped here.
        return [claim for s in query.stream() if (claim := self.from_snapshot(s)) is not None]

    def claims_between(self, first: dt.date, last: dt.date) -> dict[dt.date, TriggerClaim]:
        query = self._collection.where(filter=firestore.FieldFilter("game_date", ">=", first.isoformat())).where(
            filter=firestore.FieldFilter("game_date", "<=", last.isoformat())
        )
        # A query yields only documents that exist: none is dropped here.
        claims = (claim for s in query.stream() if (claim := self.from_snapshot(s)) is not None)
        return {claim.game_date: claim for claim in claims}

    def try_claim(
        self,
        game_date: dt.date,
        trigger_id: str,
        owner: str,
        decision: dict[str, Any],
        messages: Sequence[TriggerMessage],
        key: str | None = None,
    ) -> TriggerClaim | None:
        """Create the claim, owned by `owner` for attempt 1; None when another caller already holds one."""
        key = key or _key(game_date)
        data = {
            "game_date": game_date.isoformat(),
            "trigger_id": trigger_id,
            "state": PENDING,
            "owner": owner,
            "attempts": 1,
            "lease_seconds": self.lease.total_seconds(),
            "receipt_grace_seconds": self.receipt_grace.total_seconds(),
            "lease_started_at": firestore.SERVER_TIMESTAMP,
            "attempt_outcome": OUTCOME_UNKNOWN,
            "claimed_at": firestore.SERVER_TIMESTAMP,
            "decision": decision,
            "messages": [m.to_document() for m in messages],
            "published": {},
            "history": [{"event": "claimed", "owner": owner}],
        }
        sent_at = time.monotonic()
        try:
            result = self.document(key).create(data)
        except gexc.AlreadyExists:
            return None
        written = Written(result.update_time, sent_at)
        stored = {k: v for k, v in data.items() if v is not firestore.SERVER_TIMESTAMP}
        return replace(
            TriggerClaim.from_document(key, stored),
            lease_started_at=result.update_time,
            claimed_at=result.update_time,
            written=written,
            local_deadline=sent_at + self.lease.total_seconds(),
        )

    def mark_published(self, claim: TriggerClaim, message_ids: Mapping[str, str], complete: bool) -> TriggerClaim:
        """Record which parts this attempt sent; `complete` once every part has. Only while the
        claim is as the owner last wrote it; AttemptSuperseded otherwise."""
        update: dict[str, Any] = {
            f"published.{part}": {
                "message_id": message_id,
                "confirmed_by": BY_PUBLISHER,
                "published_at": firestore.SERVER_TIMESTAMP,
            }
            for part, message_id in message_ids.items()
        }
        if complete:
            update.update({"state": PUBLISHED, "published_at": firestore.SERVER_TIMESTAMP})
        if not update:
            return claim
        return self._owners_write(claim, update, "mark")

    def release_lease(self, claim: TriggerClaim) -> TriggerClaim:
        """The attempt sent nothing (Pub/Sub refused the publish, or no lease time was left to
        send it): the next caller may recover the claim at once, without waiting out the lease
        or the receipt grace. Only the attempt's owner, while nobody took it over."""
        history = [*claim.history, {"event": "lease_released", "owner": claim.owner, "attempt": claim.attempts}]
        return self._owners_write(
            claim, {"lease_seconds": 0, "attempt_outcome": NOTHING_SENT, "history": history}, "release"
        )

    def set_messages(
        self, claim: TriggerClaim, decision: dict[str, Any], messages: Sequence[TriggerMessage]
    ) -> TriggerClaim:
        """The owner, once the date's gates passed (or its deadline said to go ahead): what to publish.
        The lease starts again here (the gates took their time), and the decision's time is kept:
        runs reported after it are news to Phase 4."""
        documents = [m.to_document() for m in messages]
        decision = {**decision, "decided_at": firestore.SERVER_TIMESTAMP}
        claim = self._owners_write(
            claim, {"decision": decision, "messages": documents, "lease_started_at": firestore.SERVER_TIMESTAMP}, "fill"
        )
        written = claim.written
        assert written is not None  # _owners_write returns the copy it wrote
        decided = {**decision, "decided_at": written.update_time}
        return replace(
            claim,
            decision=decided,
            messages=tuple(messages),
            local_deadline=written.sent_at + self.lease.total_seconds(),
        )

    def let_go(self, claim: TriggerClaim, also: tuple[Any, dict[str, Any]] | None = None) -> None:
        """The owner found the date's data short (its gates hold it): the claim goes, so the date
        is claimed afresh when it is evaluated again. It never held messages: nothing was sent.
        `also` (a document and fields to merge: the hold) is written in the same batch, so an
        owner taken over meanwhile writes neither."""
        if claim.written is None:
            raise AttemptSuperseded(f"cannot let go of claim {claim.key}: this copy was not written by its owner")
        batch = self._client.batch()
        batch.delete(
            self.document(claim.key), option=firestore.Client.write_option(last_update_time=claim.written.update_time)
        )
        if also is not None:
            batch.set(also[0], also[1], merge=True)
        try:
            batch.commit()
        except (gexc.FailedPrecondition, gexc.NotFound) as exc:
            raise AttemptSuperseded(
                f"attempt {claim.attempts} of claim {claim.key} was taken over before it let go"
            ) from exc

    def recover(self, key: dt.date | str, owner: str) -> tuple[Recovery, TriggerClaim | None]:
        """Decide, as exactly one winner, what becomes of a claim whose lease ran out: the
        write is conditional on the claim being as read, so of two recoverers one loses and reads again."""
        try:
            (recovery, claim), written = compare_and_set_written(
                self.document(key), lambda snapshot: _recover(snapshot, self._client, self._receipts, owner, self.lease)
            )
        except Contended as exc:
            raise ClaimContended(f"the stale claim {_key(key)} is being recovered by others ({exc})") from exc
        if recovery is Recovery.TAKEN_OVER:
            # A take-over always has a claim and writes it.
            assert claim is not None and written is not None
            claim = replace(claim, written=written, local_deadline=written.sent_at + self.lease.total_seconds())
        return recovery, claim

    def _owners_write(self, claim: TriggerClaim, update: dict[str, Any], what: str) -> TriggerClaim:
        if claim.written is None:
            raise AttemptSuperseded(f"cannot {what} claim {claim.key}: this copy was not written by its owner")
        written = update_if_unchanged(self.document(claim.key), update, since=claim.written)
        if written is None:
            raise AttemptSuperseded(
                f"attempt {claim.attempts} of claim {claim.key} ({claim.owner}) was taken over before its {what}"
            )
        return replace(claim, written=written)


def _key(key: dt.date | str) -> str:
    return key.isoformat() if isinstance(key, dt.date) else key


def _recover(
    snapshot, client, receipts, owner: str, lease: dt.timedelta
) -> tuple[tuple[Recovery, TriggerClaim | None], dict[str, Any] | None]:
    claim = TriggerClaims.from_snapshot(snapshot)
    if claim is None:
        return (Recovery.GONE, None), None
    if claim.is_published:
        return (Recovery.ALREADY_PUBLISHED, claim), None
    if claim.lease_active:
        return (Recovery.STILL_LEASED, claim), None
    if not claim.messages:
        # Its owner died while evaluating the date's gates: it had nothing to publish yet, so there is
        # no receipt to wait for. The recoverer takes it over and evaluates them.
        return _take_over(claim, snapshot, owner, lease, list(claim.history), {}, {})
    pending = claim.unpublished
    receipt_refs = {receipts.document(m.trigger_id).path: m for m in pending}
    found = {}
    for receipt in client.get_all([receipts.document(m.trigger_id) for m in pending]):
        if receipt.exists:
            message = receipt_refs[receipt.reference.path]
            data = receipt.to_dict()
            found[message.part] = {
                "message_id": data["message_id"],
                "confirmed_by": BY_RECEIPT,
                "published_at": data.get("publish_time"),
            }
    update: dict[str, Any] = {f"published.{part}": value for part, value in found.items()}
    history = list(claim.history)
    if found:
        history.append({"event": "confirmed_by_receipt", "parts": sorted(found), "by": owner, "at": snapshot.read_time})
    if len(found) == len(pending):
        update.update({"state": PUBLISHED, "published_at": firestore.SERVER_TIMESTAMP, "history": history})
        return (Recovery.CONFIRMED, _with(claim, found, state=PUBLISHED)), update
    if claim.awaiting_receipts:
        # What is missing may be on its way: a publish whose bytes were late, a receipt being retried.
        return (Recovery.AWAITING_RECEIPTS, _with(claim, found)), None
    return _take_over(claim, snapshot, owner, lease, history, found, update)


def _take_over(
    claim: TriggerClaim,
    snapshot,
    owner: str,
    lease: dt.timedelta,
    history: list[dict[str, Any]],
    found: dict[str, dict[str, Any]],
    update: dict[str, Any],
) -> tuple[tuple[Recovery, TriggerClaim], dict[str, Any]]:
    attempt = claim.attempts + 1
    history.append(
        {
            "event": "taken_over",
            "owner": owner,
            "previous_owner": claim.owner,
            "attempt": attempt,
            "at": snapshot.read_time,
            "previous_outcome": claim.attempt_outcome,
        }
    )
    update.update(
        {
            "owner": owner,
            "attempts": attempt,
            "lease_seconds": lease.total_seconds(),
            "lease_started_at": firestore.SERVER_TIMESTAMP,
            "attempt_outcome": OUTCOME_UNKNOWN,
            "history": history,
        }
    )
    taken = _with(
        claim,
        found,
        owner=owner,
        attempts=attempt,
        lease_seconds=lease.total_seconds(),
        attempt_outcome=OUTCOME_UNKNOWN,
        lease_started_at=snapshot.read_time,
        read_time=None,
        history=tuple(history),
    )
    return (Recovery.TAKEN_OVER, taken), update


def _with(claim: TriggerClaim, found: dict[str, dict[str, Any]], **changes: Any) -> TriggerClaim:
    published = {**claim.published, **{part: PublishedPart(**value) for part, value in found.items()}}
    return replace(claim, published=published, **changes)
