"""Trigger claims: the durable "Phase 4 is being / was triggered" marker of a game date.

One document per game date, created with `create()` so exactly one delivery
wins it, in state `pending` with a lease. It stores the exact messages to
publish, so whoever finishes the claim sends the same bytes, and which of
them (parts) went out. The winner publishes, then marks the claim
`published`.

Leases are measured in Firestore's time, never a host's: a lease runs from
the commit time of the last write to the claim (the document's update time:
the claim, a takeover, a part marked published by its owner) and a reader
compares that with the time Firestore read the document (`read_time`).
Clock skew between instances and slow I/O between a read and a write cannot
shorten it. (Not a SERVER_TIMESTAMP field: a lease must not start before the
write that takes it is visible, and the document's update time is exactly
that.)

A pending claim whose lease ran out is recovered by whoever finds it (a
delivery or the reconciliation, whoever owned it): it reads the claim and
the receipts of its unpublished messages; messages with a receipt are marked
published from that evidence, and if any remain, the caller becomes the
owner with a fresh lease and must publish exactly those. The write is
conditional on the claim's update time (compare_and_set.py, not a
transaction, whose read locks a killed instance would leave behind): of two
recoverers one wins, the other reads again and finds the claim taken.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from google.api_core import exceptions as gexc
from google.cloud import firestore

from phase3ops.compare_and_set import Contended, compare_and_set
from phase3ops.orchestrator.phase4_trigger import TriggerMessage

PENDING = "pending"
PUBLISHED = "published"
BY_PUBLISHER = "publisher"
BY_RECEIPT = "receipt"


@dataclass(frozen=True)
class PublishedPart:
    message_id: str
    confirmed_by: str  # publisher | receipt
    published_at: dt.datetime | None = None


@dataclass(frozen=True)
class TriggerClaim:
    game_date: dt.date
    trigger_id: str
    state: str
    owner: str
    attempts: int
    lease_seconds: float
    decision: dict[str, Any]  # mode, trigger_reason, reason, completed, executions
    messages: tuple[TriggerMessage, ...]
    published: dict[str, PublishedPart] = field(default_factory=dict)
    lease_started_at: dt.datetime | None = None  # commit time of the claim's last write (its update time)
    claimed_at: dt.datetime | None = None
    published_at: dt.datetime | None = None
    history: tuple[dict[str, Any], ...] = ()  # claimed, taken over, confirmed by receipt, lease released
    read_time: dt.datetime | None = None  # when Firestore read this copy

    @property
    def is_published(self) -> bool:
        return self.state == PUBLISHED

    @property
    def lease_expires_at(self) -> dt.datetime | None:
        if self.lease_started_at is None:
            return None
        return self.lease_started_at + dt.timedelta(seconds=self.lease_seconds)

    @property
    def lease_active(self) -> bool:
        """Live at the moment Firestore read the claim. A claim just created by
        this caller has no read time yet and is live by construction."""
        if self.read_time is None or self.lease_expires_at is None:
            return True
        return self.read_time < self.lease_expires_at

    @property
    def unpublished(self) -> tuple[TriggerMessage, ...]:
        return tuple(m for m in self.messages if m.part not in self.published)

    @property
    def executions(self) -> dict[str, str]:
        """The processor runs the trigger was decided on (a later run is `late`)."""
        return dict(self.decision.get("executions", {}))

    @classmethod
    def from_document(
        cls, data: Mapping[str, Any], read_time: dt.datetime | None = None, update_time: dt.datetime | None = None
    ) -> "TriggerClaim":
        return cls(
            game_date=dt.date.fromisoformat(data["game_date"]),
            trigger_id=data["trigger_id"],
            state=data["state"],
            owner=data["owner"],
            attempts=int(data.get("attempts", 1)),
            lease_seconds=float(data.get("lease_seconds", 0)),
            decision=dict(data.get("decision") or {}),
            messages=tuple(TriggerMessage.from_document(m) for m in data.get("messages", ())),
            published={part: PublishedPart(**value) for part, value in (data.get("published") or {}).items()},
            lease_started_at=update_time,
            claimed_at=data.get("claimed_at"),
            published_at=data.get("published_at"),
            history=tuple(data.get("history") or ()),
            read_time=read_time,
        )


class ClaimContended(RuntimeError):
    """Other callers are recovering the same claim at this moment; every conditional write lost."""


class Recovery(enum.Enum):
    ALREADY_PUBLISHED = "already_published"  # someone finished it meanwhile
    STILL_LEASED = "still_leased"  # someone else took it over just before us
    CONFIRMED = "confirmed"  # every message had a receipt: marked published, nothing to send
    TAKEN_OVER = "taken_over"  # ours now: publish `claim.unpublished`


class TriggerClaims:
    def __init__(self, client: firestore.Client, collection: str, receipts_collection: str, lease: dt.timedelta):
        self._client = client
        self._collection = client.collection(collection)
        self._receipts = client.collection(receipts_collection)
        self.lease = lease

    def document(self, game_date: dt.date):
        return self._collection.document(game_date.isoformat())

    def get(self, game_date: dt.date) -> TriggerClaim | None:
        return self.from_snapshot(self.document(game_date).get())

    @staticmethod
    def from_snapshot(snapshot) -> TriggerClaim | None:
        if not snapshot.exists:
            return None
        return TriggerClaim.from_document(snapshot.to_dict(), snapshot.read_time, snapshot.update_time)

    def claims_between(self, first: dt.date, last: dt.date) -> dict[dt.date, TriggerClaim]:
        query = self._collection.where(
            filter=firestore.FieldFilter("game_date", ">=", first.isoformat())
        ).where(filter=firestore.FieldFilter("game_date", "<=", last.isoformat()))
        claims = (self.from_snapshot(s) for s in query.stream())
        return {claim.game_date: claim for claim in claims}

    def try_claim(
        self, game_date: dt.date, trigger_id: str, owner: str, decision: dict[str, Any], messages: Sequence[TriggerMessage]
    ) -> TriggerClaim | None:
        """Create the claim; None when another caller already holds one."""
        data = {
            "game_date": game_date.isoformat(),
            "trigger_id": trigger_id,
            "state": PENDING,
            "owner": owner,
            "attempts": 1,
            "lease_seconds": self.lease.total_seconds(),
            "claimed_at": firestore.SERVER_TIMESTAMP,
            "decision": decision,
            "messages": [m.to_document() for m in messages],
            "published": {},
            "history": [{"event": "claimed", "owner": owner}],
        }
        try:
            self.document(game_date).create(data)
        except gexc.AlreadyExists:
            return None
        return TriggerClaim.from_document({k: v for k, v in data.items() if v is not firestore.SERVER_TIMESTAMP})

    def mark_published(self, claim: TriggerClaim, message_ids: Mapping[str, str], complete: bool) -> None:
        """Record which parts went out; `complete` once every part has."""
        update: dict[str, Any] = {
            f"published.{part}": {"message_id": message_id, "confirmed_by": BY_PUBLISHER, "published_at": firestore.SERVER_TIMESTAMP}
            for part, message_id in message_ids.items()
        }
        if complete:
            update.update({"state": PUBLISHED, "published_at": firestore.SERVER_TIMESTAMP})
        if update:
            self.document(claim.game_date).update(update)

    def release_lease(self, claim: TriggerClaim, owner: str) -> None:
        """After a publish Pub/Sub refused outright (nothing was sent): the next caller
        may recover the claim at once instead of waiting out the lease."""
        compare_and_set(self.document(claim.game_date), lambda snapshot: (None, _release(snapshot, owner)))

    def recover(self, game_date: dt.date, owner: str) -> tuple[Recovery, TriggerClaim]:
        """Decide, as exactly one winner, what becomes of a claim whose lease ran out: the
        write is conditional on the claim being as read, so of two recoverers one loses and reads again."""
        try:
            return compare_and_set(self.document(game_date), lambda snapshot: _recover(snapshot, self._client, self._receipts, owner))
        except Contended as exc:
            raise ClaimContended(f"the stale claim of {game_date} is being recovered by others ({exc})") from exc


def _recover(snapshot, client, receipts, owner: str) -> tuple[tuple[Recovery, TriggerClaim], dict[str, Any] | None]:
    claim = TriggerClaims.from_snapshot(snapshot)
    if claim.is_published:
        return (Recovery.ALREADY_PUBLISHED, claim), None
    if claim.lease_active:
        return (Recovery.STILL_LEASED, claim), None
    pending = claim.unpublished
    receipt_refs = {receipts.document(m.trigger_id).path: m for m in pending}
    found = {}
    for receipt in client.get_all([receipts.document(m.trigger_id) for m in pending]):
        if receipt.exists:
            message = receipt_refs[receipt.reference.path]
            data = receipt.to_dict()
            found[message.part] = {"message_id": data["message_id"], "confirmed_by": BY_RECEIPT, "published_at": data.get("publish_time")}
    update: dict[str, Any] = {f"published.{part}": value for part, value in found.items()}
    history = list(claim.history)
    if found:
        history.append({"event": "confirmed_by_receipt", "parts": sorted(found), "by": owner, "at": snapshot.read_time})
    if len(found) == len(pending):
        update.update({"state": PUBLISHED, "published_at": firestore.SERVER_TIMESTAMP, "history": history})
        return (Recovery.CONFIRMED, _with(claim, found, state=PUBLISHED)), update
    history.append(
        {"event": "taken_over", "owner": owner, "previous_owner": claim.owner, "attempt": claim.attempts + 1, "at": snapshot.read_time}
    )
    update.update({"owner": owner, "attempts": claim.attempts + 1, "history": history})
    return (Recovery.TAKEN_OVER, _with(claim, found, owner=owner, attempts=claim.attempts + 1, read_time=None)), update


def _with(claim: TriggerClaim, found: dict[str, dict[str, Any]], **changes: Any) -> TriggerClaim:
    published = {**claim.published, **{part: PublishedPart(**value) for part, value in found.items()}}
    fields = {**claim.__dict__, "published": published, **changes}
    return TriggerClaim(**fields)


def _release(snapshot, owner: str) -> dict[str, Any] | None:
    data = snapshot.to_dict() if snapshot.exists else None
    if data is None or data["state"] != PENDING or data["owner"] != owner:
        return None
    history = [*(data.get("history") or []), {"event": "lease_released", "owner": owner, "at": snapshot.read_time}]
    return {"lease_seconds": 0, "history": history}
