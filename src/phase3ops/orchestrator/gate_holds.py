"""Held dates: a ready game date a data gate keeps from Phase 4, recorded where everyone can see it.

One document per game date (`phase4_gate_holds/{date}`), written on every
evaluation that holds it: which gates blocked, with their figures, since
when, how often it was re-evaluated, and whether its deadline has passed.
The health check, `explain`, the dashboard and the scheduled recheck read it;
the trigger that finally goes out marks it released. A hold is never the
reason a date is forgotten: the date has no claim, so its next completion,
the recheck job and `reconcile --fix` all evaluate it again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

HELD, RELEASED = "held", "released"


@dataclass(frozen=True)
class Hold:
    game_date: dt.date
    state: str  # held | released
    mode: str | None
    report: dict[str, Any] = field(default_factory=dict)  # the latest GateReport document
    first_held_at: dt.datetime | None = None
    last_held_at: dt.datetime | None = None
    evaluations: int = 0
    past_deadline: bool = False
    released_at: dt.datetime | None = None
    released_by: str | None = None  # the trigger id that went out
    degraded: bool = False

    @property
    def blocked_by(self) -> list[str]:
        return list(self.report.get("blocked_by") or ())

    @classmethod
    def from_document(cls, data: dict[str, Any]) -> Hold:
        return cls(
            game_date=dt.date.fromisoformat(data["game_date"]),
            state=data.get("state", HELD),
            mode=data.get("mode"),
            report=dict(data.get("report") or {}),
            first_held_at=data.get("first_held_at"),
            last_held_at=data.get("last_held_at"),
            evaluations=int(data.get("evaluations") or 0),
            past_deadline=bool(data.get("past_deadline")),
            released_at=data.get("released_at"),
            released_by=data.get("released_by"),
            degraded=bool(data.get("degraded")),
        )


class GateHolds:
    def __init__(self, client: firestore.Client, collection: str):
        self._collection = client.collection(collection)

    def document(self, game_date: dt.date):
        return self._collection.document(game_date.isoformat())

    def held(
        self, game_date: dt.date, mode: str, report: dict[str, Any], past_deadline: bool, previous: Hold | None
    ) -> tuple[Any, dict[str, Any]]:
        """The write that records a hold (a document and its merged fields), for the caller's batch:
        `previous` is the hold as the caller read it, so a new hold starts its clock."""
        fields: dict[str, Any] = {
            "game_date": game_date.isoformat(),
            "state": HELD,
            "mode": mode,
            "report": report,
            "last_held_at": firestore.SERVER_TIMESTAMP,
            "past_deadline": past_deadline,
            "evaluations": firestore.Increment(1),
        }
        if previous is None or previous.state != HELD:
            fields.update(
                {
                    "first_held_at": firestore.SERVER_TIMESTAMP,
                    "evaluations": 1,
                    "released_at": None,
                    "released_by": None,
                }
            )
        return self.document(game_date), fields

    def release(self, game_date: dt.date, trigger_id: str, degraded: bool) -> None:
        """The trigger went out (`degraded` when a gate still failed at the deadline)."""
        try:
            self.document(game_date).update(
                {
                    "state": RELEASED,
                    "released_at": firestore.SERVER_TIMESTAMP,
                    "released_by": trigger_id,
                    "degraded": degraded,
                }
            )
        except gexc.NotFound:
            pass  # never held

    def get(self, game_date: dt.date) -> Hold | None:
        snapshot = self.document(game_date).get()
        return Hold.from_document(snapshot.to_dict()) if snapshot.exists else None

    def between(self, first: dt.date, last: dt.date) -> dict[dt.date, Hold]:
        query = self._collection.where(filter=firestore.FieldFilter("game_date", ">=", first.isoformat())).where(
            filter=firestore.FieldFilter("game_date", "<=", last.isoformat())
        )
        # A query yields only documents that exist: none is dropped here.
        holds = (Hold.from_document(data) for s in query.stream() if (data := s.to_dict()) is not None)
        return {hold.game_date: hold for hold in holds}
