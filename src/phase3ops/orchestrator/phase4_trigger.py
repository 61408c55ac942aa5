"""The Phase 4 trigger contract: the messages a ready game date sends, built once, stored with the claim.

The running Phase 4 service reads one message per Phase 3 table per date
(`/process` answers 400 without `source_table`), so the default form,
`per_table`, sends exactly what the reference orchestrator sends, one message
per processor in spec order. `per_date` sends one message listing the
completed tables. Either way every message carries a stable `trigger_id`,
in its body and as an attribute, so a consumer can drop a duplicate and the
receipts recorder can key the evidence that it went out.

The messages are built when the date is claimed and stored in the claim:
a re-publish after a crash sends the very same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Mapping

from phase3ops.orchestrator.completion_store import CompletionRecord
from phase3ops.orchestrator.readiness import Readiness
from phase3ops.spec.pipeline import PER_TABLE, PipelineSpec

DATE_PART = "date"  # the only part of a per_date trigger


def date_trigger_id(pipeline: str, game_date: dt.date) -> str:
    """Identifies the claim: one per game date."""
    return f"{pipeline}:{game_date.isoformat()}"


@dataclass(frozen=True)
class TriggerMessage:
    part: str  # the source table (per_table), or "date" (per_date): the claim tracks each part
    trigger_id: str  # stable per (date, part): "<pipeline>:<date>:<table>" or "<pipeline>:<date>"
    game_date: str
    body: Mapping[str, Any]

    @property
    def data(self) -> bytes:
        return json.dumps(dict(self.body), sort_keys=True).encode("utf-8")

    @property
    def attributes(self) -> dict[str, str]:
        attributes = {"trigger_id": self.trigger_id, "game_date": self.game_date}
        if self.part != DATE_PART:
            attributes["source_table"] = self.part
        return attributes

    def to_document(self) -> dict[str, Any]:
        return {"part": self.part, "trigger_id": self.trigger_id, "game_date": self.game_date, "body": dict(self.body)}

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> "TriggerMessage":
        return cls(data["part"], data["trigger_id"], data["game_date"], dict(data["body"]))


def build_trigger_messages(
    spec: PipelineSpec,
    game_date: dt.date,
    readiness: Readiness,
    records: Mapping[str, CompletionRecord],
    completing: CompletionRecord | None,
    triggered_at: dt.datetime,
) -> list[TriggerMessage]:
    """The messages for a ready date. `completing` is the run whose completion made
    the date ready (its correlation and execution ids are the trigger's lineage);
    without one (a reconciliation), the newest counting run stands in."""
    counted = [records[name] for name in readiness.completed if name in records]
    completing = completing or max(counted, key=lambda r: r.published_at, default=None)
    entities, incremental = _entities_changed(spec, counted)
    contract = spec.phase4_trigger
    date = game_date.isoformat()
    shared = {
        "analysis_date": date,
        "game_date": date,
        "success": True,
        "correlation_id": completing.correlation_id if completing else None,
        "trigger_source": contract.trigger_source,
        "triggered_by": contract.triggered_by,
        "timestamp": triggered_at.isoformat(),
        "entities_changed": entities,
        "is_incremental": incremental,
        "mode": readiness.mode,
        "trigger_reason": readiness.trigger_reason,
        "parent_execution_id": completing.execution_id if completing else None,
        "parent_processor": contract.parent_processor,
    }
    date_id = date_trigger_id(spec.name, game_date)
    if contract.form == PER_TABLE:
        return [
            TriggerMessage(p.output_table, f"{date_id}:{p.output_table}", date, {"source_table": p.output_table, **shared, "trigger_id": f"{date_id}:{p.output_table}"})
            for p in spec.processors
        ]
    body = {
        **shared,
        "trigger_id": date_id,
        "completed_processors": list(readiness.completed),
        "completed_tables": [spec.processor(name).output_table for name in readiness.completed],
        "executions": {record.processor: record.execution_id for record in counted},
    }
    return [TriggerMessage(DATE_PART, date_id, date, body)]


def _entities_changed(spec: PipelineSpec, counted: list[CompletionRecord]) -> tuple[dict[str, list[str]], bool]:
    """The union of the incremental runs' `metadata.entities_changed`, as the reference
    builds it: players and teams, each key present only when something changed. A
    list goes under the processor's own kind (`entities` in pipeline.yaml); a
    mapping is merged key by key."""
    changed: dict[str, set[str]] = {"players": set(), "teams": set()}
    incremental = False
    for record in counted:
        if not record.metadata.get("is_incremental"):
            continue
        incremental = True
        reported = record.metadata.get("entities_changed") or []
        if isinstance(reported, Mapping):
            for kind, names in reported.items():
                if kind in changed and isinstance(names, list):
                    changed[kind].update(str(n) for n in names if n is not None)
        elif isinstance(reported, list):
            changed[spec.processor(record.processor).entities].update(str(n) for n in reported if n is not None)
    return {kind: sorted(names) for kind, names in changed.items() if names}, incremental
