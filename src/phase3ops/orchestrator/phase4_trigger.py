"""The Phase 4 trigger contract: the messages a ready game date sends, built once, stored with the claim.

The running Phase 4 service reads one message per Phase 3 table per date
(`/process` answers 400 without `source_table`), so the default form,
`per_table`, sends exactly what the reference orchestrator sends, one message
per processor in spec order. `per_date` sends one message listing the
completed tables. Either way every message carries a stable `trigger_id`,
in its body and as an attribute, so a consumer can drop a duplicate and the
receipts recorder can key the evidence that it went out.

The messages are built when the date is claimed and stored in the claim:
a re-publish after a crash sends the very same bytes. Besides the
reference's fields they carry what the data gates found (the reference's
`data_freshness_verified` and `minutes_coverage_pct`, `degraded` when the
date was triggered at its deadline though a gate still failed, and every
gate's result).

A follow-up (late data for one table of a triggered date) is one message in
the same form, `is_follow_up: true`, with a trigger id of its own derived
from the date's: `<pipeline>:<date>:<table>:late:<run>`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from phase3ops.gates.evaluate import GateReport
from phase3ops.orchestrator.completion_store import CompletionRecord
from phase3ops.orchestrator.readiness import Readiness
from phase3ops.spec.pipeline import PER_TABLE, PipelineSpec

DATE_PART = "date"  # the only part of a per_date trigger
# The claim stores every message of the date, each carrying the union of changes: past this size
# the union is dropped and Phase 4 told to process everything (`is_incremental: false`), which an
# incremental consumer may always do. Five messages of it stay well inside a 1 MiB document.
MAX_ENTITIES_BYTES = 64 * 1024
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


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
        # The body as the very text published, not a map: a recovery re-sends the same bytes, and
        # every delivery that reads the claim decodes one string instead of some 300 nested
        # values (the claim's encode and decode were a fifth of the per-event CPU).
        return {
            "part": self.part,
            "trigger_id": self.trigger_id,
            "game_date": self.game_date,
            "data": self.data.decode("utf-8"),
        }

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> TriggerMessage:
        # A claim written before the body was kept as text holds it as a map under "body".
        body = json.loads(data["data"]) if "data" in data else dict(data["body"])
        return cls(data["part"], data["trigger_id"], data["game_date"], body)


def build_trigger_messages(
    spec: PipelineSpec,
    game_date: dt.date,
    readiness: Readiness,
    records: Mapping[str, CompletionRecord],
    completing: CompletionRecord | None,
    triggered_at: dt.datetime,
    gates: GateReport | None = None,
    degraded: bool = False,
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
        **_gate_fields(gates, degraded),
    }
    date_id = date_trigger_id(spec.name, game_date)
    if contract.form == PER_TABLE:
        return [
            TriggerMessage(
                p.output_table,
                f"{date_id}:{p.output_table}",
                date,
                {"source_table": p.output_table, **shared, "trigger_id": f"{date_id}:{p.output_table}"},
            )
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
    mapping is merged key by key. A union past `MAX_ENTITIES_BYTES` is a full run."""
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
    union = {kind: sorted(names) for kind, names in changed.items() if names}
    if len(json.dumps(union).encode("utf-8")) > MAX_ENTITIES_BYTES:
        return {}, False
    return union, incremental


def _gate_fields(gates: GateReport | None, degraded: bool) -> dict[str, Any]:
    """What Phase 4 learns of the data gates: the reference's two fields, and every gate's verdict."""
    if gates is None or not gates.results:
        return {"data_freshness_verified": not degraded, "degraded": degraded}
    return {
        "data_freshness_verified": gates.passed and not degraded,
        **gates.message_fields(),
        "degraded": degraded,
        "failing_gates": [r.name for r in (*gates.blocking, *gates.alerting)],
        "gates": {r.name: {"passed": r.passed, "figure": r.figure, "threshold": r.threshold} for r in gates.results},
    }


def follow_up_key(game_date: dt.date, table: str, execution_id: str) -> str:
    """The follow-up claim's document id: one per (date, table, run), whatever the run's id looks like."""
    return f"{game_date.isoformat()}~{table}~{_safe(execution_id)}"


def _safe(text: str) -> str:
    return (
        text if _SAFE_ID.match(text) else "h" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    )


def follow_up_trigger_id(date_trigger: str, table: str, execution_id: str) -> str:
    return f"{date_trigger}:{table}:late:{_safe(execution_id)}"


def build_follow_up_message(
    spec: PipelineSpec,
    date_trigger: str,
    game_date: dt.date,
    mode: str | None,
    record: CompletionRecord,
    at: dt.datetime,
) -> TriggerMessage:
    """One message telling Phase 4 that `record`'s table changed after the date's trigger
    (`date_trigger`: the date's claim id; `mode`: the mode the date was triggered under)."""
    table = record.output_table or spec.processor(record.processor).output_table
    contract = spec.phase4_trigger
    date = game_date.isoformat()
    trigger_id = follow_up_trigger_id(date_trigger, table, record.execution_id)
    entities, incremental = _entities_changed(spec, [record])
    body = {
        "source_table": table,
        "analysis_date": date,
        "game_date": date,
        "success": True,
        "correlation_id": record.correlation_id,
        "trigger_source": contract.trigger_source,
        "triggered_by": contract.triggered_by,
        "timestamp": at.isoformat(),
        "entities_changed": entities,
        "is_incremental": incremental,
        "mode": mode,
        "trigger_reason": "late_data",
        "parent_execution_id": record.execution_id,
        "parent_processor": contract.parent_processor,
        "is_follow_up": True,
        "follows_trigger_id": f"{date_trigger}:{table}" if contract.form == PER_TABLE else date_trigger,
        "trigger_id": trigger_id,
    }
    if contract.form != PER_TABLE:
        body.update(
            {
                "completed_processors": [record.processor],
                "completed_tables": [table],
                "executions": {record.processor: record.execution_id},
            }
        )
    return TriggerMessage(table, trigger_id, date, body)


def rows_changed(record: CompletionRecord, announced: Collection[str]) -> bool:
    """Whether the record's counting run changed its table against the last run Phase 4 was told
    about (`announced`: the trigger's run for the table and the runs of its follow-ups).

    The same rows only when both runs report the same `rows_fingerprint`
    (this project's processors do); a run without one, or a table Phase 4
    was never told about, is a change: better a follow-up Phase 4 does not
    need than a change it never hears of."""
    runs = list(record.runs)
    current = next(
        (i for i in range(len(runs) - 1, -1, -1) if runs[i].get("execution_id") == record.execution_id), None
    )
    if current is None:
        return True
    told = next((r for r in reversed(runs[:current]) if r.get("execution_id") in announced), None)
    if told is None:
        return True
    fingerprints = runs[current].get("rows_fingerprint"), told.get("rows_fingerprint")
    return not (fingerprints[0] and fingerprints[0] == fingerprints[1])
