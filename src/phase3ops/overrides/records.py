"""The audit trail of operator overrides: one Firestore document per override and game date.

Collection `spec.orchestrator.collections.overrides` (`phase3_overrides`).
A document is created (`create()`, never overwritten) before the override
touches anything else, with who, when (Firestore's time), why and what it
is about; an override that publishes then sets its outcome, the trigger ids
it sent and their message ids. A command that dies half-way therefore
leaves a record whose outcome is still `pending`, which the health check
reports. Refused overrides are recorded too: who tried what, and why not.

Document shape (`phase3_overrides/{game_date}~{kind}~{utc time}~{random}`):

    kind             force_trigger | skip | unskip | retrigger
    game_date        "YYYY-MM-DD"
    processors       [processor names]: skip/unskip: the processor; force_trigger: the
                     mode's processors not done when forced; retrigger: those counted
    operator         who: --operator, else $CLOUDSDK_CORE_ACCOUNT, else $USER
    operator_source  "--operator" | "CLOUDSDK_CORE_ACCOUNT" | "USER"
    reason           why (1..500 characters)
    command          the command as run, e.g. "phase3ops retrigger 2026-11-27 --cascade 2"
    invocation       shared by every record one command wrote (a cascade writes several)
    at               Firestore's time of the record's creation
    outcome          pending | published | joined | finished | refused | publish_failed |
                     in_progress | recorded | error
    detail           what happened, for people
    finished_at      Firestore's time the outcome was set (absent while pending)
    trigger_ids      the Phase 4 trigger ids the override sends (or joined)
    message_ids      {part (source table, or "date"): Pub/Sub message id} the publisher confirmed
    claim            the trigger claim's document path (force_trigger, retrigger)
    retrigger        n of `<date>~retrigger-<n>` (retrigger)
    cascade_from     "YYYY-MM-DD": the fixed date whose retrigger re-sent this following date
    cascade          {asked, dates, passed_over} (the fixed date's retrigger record)
    ready, completed, missing, degraded   the date's readiness when forced or re-sent
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.cloud import firestore

from phase3ops.input_bounds import capped
from phase3ops.spec.pipeline import PipelineSpec

FORCE_TRIGGER, SKIP, UNSKIP, RETRIGGER = "force_trigger", "skip", "unskip", "retrigger"
KINDS = (FORCE_TRIGGER, SKIP, UNSKIP, RETRIGGER)

# Outcomes.
PENDING = "pending"  # recorded, not finished: the command is running, or died
PUBLISHED = "published"  # this override's messages were all confirmed sent
JOINED = "joined"  # another command (or the orchestrator) sent it at the same moment: nothing sent twice
FINISHED = "finished"  # an earlier retrigger of the date that had stalled was finished by this one
REFUSED = "refused"  # nothing done (already triggered, not triggered yet, nothing to undo)
PUBLISH_FAILED = "publish_failed"  # claimed, but not every message was confirmed: the claim stays pending
IN_PROGRESS = "in_progress"  # another command is publishing it right now, or its receipts are awaited
RECORDED = "recorded"  # skip / unskip: in force from now on
ERROR = "error"  # failed with an unexpected error (the detail says which)
SETTLED = (PUBLISHED, JOINED, FINISHED)  # the Phase 4 messages went out
MAX_DETAIL_CHARS = 1000


@dataclass(frozen=True)
class Override:
    id: str
    kind: str
    game_date: dt.date
    operator: str
    reason: str
    outcome: str
    processors: tuple[str, ...] = ()
    operator_source: str = ""
    command: str = ""
    invocation: str = ""
    at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    detail: str = ""
    trigger_ids: tuple[str, ...] = ()
    message_ids: dict[str, str] = field(default_factory=dict)
    claim: str | None = None
    retrigger: int | None = None
    cascade_from: dt.date | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # every other stored field (ready, missing, cascade ...)

    @property
    def settled(self) -> bool:
        return self.outcome in SETTLED

    @classmethod
    def from_document(cls, doc_id: str, data: Mapping[str, Any]) -> Override:
        """Tolerant: a record written by hand (or by an older version) still reads."""
        known = {
            "kind",
            "game_date",
            "operator",
            "reason",
            "outcome",
            "processors",
            "operator_source",
            "command",
            "invocation",
            "at",
            "finished_at",
            "detail",
            "trigger_ids",
            "message_ids",
            "claim",
            "retrigger",
            "cascade_from",
        }
        cascade_from = data.get("cascade_from")
        return cls(
            id=doc_id,
            kind=str(data.get("kind") or ""),
            game_date=dt.date.fromisoformat(data["game_date"]),
            operator=str(data.get("operator") or ""),
            reason=str(data.get("reason") or ""),
            outcome=str(data.get("outcome") or ""),
            processors=tuple(data.get("processors") or ()),
            operator_source=str(data.get("operator_source") or ""),
            command=str(data.get("command") or ""),
            invocation=str(data.get("invocation") or ""),
            at=data.get("at"),
            finished_at=data.get("finished_at"),
            detail=str(data.get("detail") or ""),
            trigger_ids=tuple(data.get("trigger_ids") or ()),
            message_ids=dict(data.get("message_ids") or {}),
            claim=data.get("claim"),
            retrigger=data.get("retrigger"),
            cascade_from=dt.date.fromisoformat(cascade_from) if cascade_from else None,
            extra={k: v for k, v in data.items() if k not in known},
        )

    def as_document(self) -> dict[str, Any]:
        """The record as stored (datetimes kept), with its `id`, and `processor` when it names exactly one
        (a skip's): what a timeline sorts and shows."""
        return {
            **self.extra,
            **{k: v for k, v in self.__dict__.items() if k != "extra"},
            "game_date": self.game_date.isoformat(),
            "processors": list(self.processors),
            "trigger_ids": list(self.trigger_ids),
            "cascade_from": self.cascade_from.isoformat() if self.cascade_from else None,
            "processor": self.processors[0] if len(self.processors) == 1 else None,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (datetimes as ISO 8601 text)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "game_date": self.game_date.isoformat(),
            "processors": list(self.processors),
            "operator": self.operator,
            "operator_source": self.operator_source,
            "reason": self.reason,
            "command": self.command,
            "invocation": self.invocation,
            "at": _iso(self.at),
            "finished_at": _iso(self.finished_at),
            "outcome": self.outcome,
            "detail": self.detail,
            "trigger_ids": list(self.trigger_ids),
            "message_ids": dict(self.message_ids),
            "claim": self.claim,
            "retrigger": self.retrigger,
            "cascade_from": self.cascade_from.isoformat() if self.cascade_from else None,
            **{k: _plain(v) for k, v in self.extra.items()},
        }


def new_id(game_date: dt.date, kind: str) -> str:
    """Unique, and sorted by date then kind then time in the console."""
    return f"{game_date.isoformat()}~{kind}~{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}~{uuid.uuid4().hex[:6]}"


class OverrideLog:
    """Writes the records; every read goes through the module's functions."""

    def __init__(self, client: firestore.Client, collection: str):
        self._collection = client.collection(collection)

    def document(self, override_id: str):
        return self._collection.document(override_id)

    def create(self, override_id: str, fields: dict[str, Any]) -> None:
        data = {**fields, "at": firestore.SERVER_TIMESTAMP}
        if data.get("outcome") != PENDING:
            data["finished_at"] = firestore.SERVER_TIMESTAMP
        if "detail" in data:
            data["detail"] = capped(str(data["detail"]), MAX_DETAIL_CHARS)
        self.document(override_id).create(data)

    def finish(self, override_id: str, outcome: str, detail: str, **fields: Any) -> None:
        self.document(override_id).update(
            {
                **fields,
                "outcome": outcome,
                "detail": capped(detail, MAX_DETAIL_CHARS),
                "finished_at": firestore.SERVER_TIMESTAMP,
            }
        )


# -- reading: what explain, the health check and the expected-work ledger call ------------------


def _collection(client: firestore.Client, spec: PipelineSpec):
    return client.collection(spec.orchestrator.collections.overrides)


def for_date(client: firestore.Client, spec: PipelineSpec, game_date: dt.date) -> list[Override]:
    """Every override of one game date, oldest first (refused ones included)."""
    query = _collection(client, spec).where(filter=firestore.FieldFilter("game_date", "==", game_date.isoformat()))
    return _ordered(Override.from_document(s.id, s.to_dict()) for s in query.stream())


def between(
    client: firestore.Client, spec: PipelineSpec, first: dt.date, last: dt.date
) -> dict[dt.date, list[Override]]:
    """Every override of a range of game dates, in one query: date -> its overrides, oldest first."""
    query = (
        _collection(client, spec)
        .where(filter=firestore.FieldFilter("game_date", ">=", first.isoformat()))
        .where(filter=firestore.FieldFilter("game_date", "<=", last.isoformat()))
    )
    by_date: dict[dt.date, list[Override]] = {}
    for override in _ordered(Override.from_document(s.id, s.to_dict()) for s in query.stream()):
        by_date.setdefault(override.game_date, []).append(override)
    return by_date


def skipped(client: firestore.Client, spec: PipelineSpec, game_date: dt.date) -> dict[str, Override]:
    """The processors not owed for the date: processor name -> the skip in force (the latest
    `skip` not undone by a later `skip --undo`)."""
    return effective_skips(for_date(client, spec, game_date))


def skipped_between(
    client: firestore.Client, spec: PipelineSpec, first: dt.date, last: dt.date
) -> dict[dt.date, dict[str, Override]]:
    """`skipped` for a range of dates in one query; dates without a skip in force are left out."""
    result = {day: effective_skips(overrides) for day, overrides in between(client, spec, first, last).items()}
    return {day: skips for day, skips in result.items() if skips}


def effective_skips(overrides: Iterable[Override]) -> dict[str, Override]:
    """Pure: replay one date's skip and unskip records in Firestore's order."""
    skips: dict[str, Override] = {}
    for override in _ordered(o for o in overrides if o.kind in (SKIP, UNSKIP) and o.outcome == RECORDED):
        for name in override.processors:
            if override.kind == SKIP:
                skips[name] = override
            else:
                skips.pop(name, None)
    return skips


def _ordered(overrides: Iterable[Override]) -> list[Override]:
    never = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(overrides, key=lambda o: (o.at or never, o.id))


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, (dt.datetime, dt.date)) else value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return _iso(value)
