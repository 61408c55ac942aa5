"""Trigger claims: the durable "Phase 4 is being / was triggered" marker.

One document per game date, created with `create()` so exactly one delivery
wins it, in state `pending` with a lease. The winner publishes, then marks it
`published`. A pending claim whose lease ran out (its owner crashed or its
publish failed) may be taken over by exactly one later delivery, chosen by a
transaction. The claim stores the trigger's content, so a re-publish sends
the same message with the same `trigger_id`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

PENDING = "pending"
PUBLISHED = "published"


@dataclass(frozen=True)
class TriggerClaim:
    game_date: dt.date
    trigger_id: str
    state: str
    owner: str
    lease_expires_at: dt.datetime
    attempts: int
    payload: dict[str, Any]
    claimed_at: dt.datetime | None = None
    published_message_id: str | None = None
    published_at: dt.datetime | None = None
    confirmed_by: str | None = None

    @property
    def is_published(self) -> bool:
        return self.state == PUBLISHED

    def lease_active(self, now: dt.datetime) -> bool:
        return self.lease_expires_at > now

    @classmethod
    def from_document(cls, data: dict[str, Any]) -> "TriggerClaim":
        return cls(
            game_date=dt.date.fromisoformat(data["game_date"]),
            trigger_id=data["trigger_id"],
            state=data["state"],
            owner=data["owner"],
            lease_expires_at=data["lease_expires_at"],
            attempts=int(data.get("attempts", 1)),
            payload=dict(data["payload"]),
            claimed_at=data.get("claimed_at"),
            published_message_id=data.get("published_message_id"),
            published_at=data.get("published_at"),
            confirmed_by=data.get("confirmed_by"),
        )


class TriggerClaims:
    def __init__(self, client: firestore.Client, collection: str, lease: dt.timedelta):
        self._client = client
        self._collection = client.collection(collection)
        self._lease = lease

    def get(self, game_date: dt.date) -> TriggerClaim | None:
        return self.from_snapshot(self.document(game_date).get())

    @staticmethod
    def from_snapshot(snapshot) -> TriggerClaim | None:
        return TriggerClaim.from_document(snapshot.to_dict()) if snapshot.exists else None

    def claims_between(self, first: dt.date, last: dt.date) -> dict[dt.date, TriggerClaim]:
        query = self._collection.where(
            filter=firestore.FieldFilter("game_date", ">=", first.isoformat())
        ).where(filter=firestore.FieldFilter("game_date", "<=", last.isoformat()))
        claims = (TriggerClaim.from_document(s.to_dict()) for s in query.stream())
        return {claim.game_date: claim for claim in claims}

    def try_claim(
        self, game_date: dt.date, trigger_id: str, owner: str, payload: dict[str, Any], now: dt.datetime
    ) -> TriggerClaim | None:
        """Create the claim; None when another delivery already holds one."""
        data = {
            "game_date": game_date.isoformat(),
            "trigger_id": trigger_id,
            "state": PENDING,
            "owner": owner,
            "lease_expires_at": now + self._lease,
            "attempts": 1,
            "payload": payload,
            "claimed_at": now,
        }
        try:
            self.document(game_date).create(data)
        except gexc.AlreadyExists:
            return None
        return TriggerClaim.from_document(data)

    def take_over(self, game_date: dt.date, owner: str, now: dt.datetime) -> TriggerClaim | None:
        """Become the owner of a pending claim whose lease expired; None if someone else did."""
        return _take_over(self._client.transaction(), self.document(game_date), owner, now, self._lease)

    def release_lease(self, claim: TriggerClaim, now: dt.datetime) -> None:
        """After a failed publish: let the next delivery retry at once instead of waiting out the lease."""
        _release(self._client.transaction(), self.document(claim.game_date), claim.owner, now)

    def mark_published(self, game_date: dt.date, message_id: str | None, now: dt.datetime, confirmed_by: str) -> None:
        self.document(game_date).update(
            {
                "state": PUBLISHED,
                "published_message_id": message_id,
                "published_at": now,
                "confirmed_by": confirmed_by,
            }
        )

    def confirm_published(self, game_date: dt.date, message_id: str, now: dt.datetime) -> bool:
        """Mark a pending claim published on evidence from the receipts; True if it was pending."""
        return _confirm(self._client.transaction(), self.document(game_date), message_id, now)

    def document(self, game_date: dt.date):
        return self._collection.document(game_date.isoformat())


@firestore.transactional
def _take_over(transaction, ref, owner: str, now: dt.datetime, lease: dt.timedelta) -> TriggerClaim | None:
    snapshot = ref.get(transaction=transaction)
    if not snapshot.exists:
        return None
    claim = TriggerClaim.from_document(snapshot.to_dict())
    if claim.is_published or claim.lease_active(now):
        return None
    update = {"owner": owner, "lease_expires_at": now + lease, "attempts": claim.attempts + 1}
    transaction.update(ref, update)
    return TriggerClaim.from_document({**snapshot.to_dict(), **update})


@firestore.transactional
def _release(transaction, ref, owner: str, now: dt.datetime) -> None:
    snapshot = ref.get(transaction=transaction)
    if snapshot.exists:
        data = snapshot.to_dict()
        if data["state"] == PENDING and data["owner"] == owner:
            transaction.update(ref, {"lease_expires_at": now})


@firestore.transactional
def _confirm(transaction, ref, message_id: str, now: dt.datetime) -> bool:
    snapshot = ref.get(transaction=transaction)
    if not snapshot.exists or snapshot.to_dict()["state"] != PENDING:
        return False
    transaction.update(
        ref, {"state": PUBLISHED, "published_message_id": message_id, "published_at": now, "confirmed_by": "receipt"}
    )
    return True
