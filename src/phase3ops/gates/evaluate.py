"""Judge a ready game date against its mode's data gates: one query, one result per gate.

A `block` gate that fails holds the date's trigger; an `alert` gate that
fails is reported and logged, and the trigger goes out. When the date's
query itself fails, every gate falls back to its `on_error`: `closed`
counts it as failed, `open` as passed, and the result says which and why.
Zero denominators (no games scheduled, no players who played, no rows) mean
there is nothing to cover: the figure is 100 % covered, 0 % NULL.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phase3ops.gates.measures import SCHEDULED_GAMES, gate_tables, measurement_query, measures_for
from phase3ops.spec.pipeline import (
    BLOCK,
    COLUMN_COVERAGE,
    GAME_COVERAGE,
    NULL_RATE,
    RECORD_COUNT,
    ROWS_EXIST,
    Gate,
    ModeRule,
    PipelineSpec,
)
from phase3ops.warehouse.port import Warehouse


@dataclass(frozen=True)
class GateResult:
    name: str
    kind: str
    action: str  # block | alert
    passed: bool
    figure: float | None  # the measured share (rows_exist: share of tables with rows)
    threshold: float | None
    detail: str  # for people: what was measured
    error: str | None = None  # the date's gate query failed
    message_field: str | None = None

    @property
    def blocks(self) -> bool:
        return self.action == BLOCK and not self.passed

    def as_document(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "action": self.action,
            "passed": self.passed,
            "figure": self.figure,
            "threshold": self.threshold,
            "detail": self.detail,
            "error": self.error,
        }


@dataclass(frozen=True)
class GateReport:
    results: tuple[GateResult, ...] = ()
    query_seconds: float = 0.0
    evaluated_at: dt.datetime | None = None
    table_rows: tuple[tuple[str, int], ...] = ()  # rows each measured table held for the date, as the gates saw it

    @property
    def blocking(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if r.blocks)

    @property
    def alerting(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed and not r.blocks)

    @property
    def passed(self) -> bool:
        return not self.blocking

    @property
    def summary(self) -> str:
        failing = self.blocking or self.alerting
        return "; ".join(f"{r.name} ({r.action}): {r.detail}" for r in failing) or "every gate passed"

    def message_fields(self) -> dict[str, float]:
        """The figures the spec puts in every Phase 4 message (minutes_coverage_pct ...), as percentages."""
        return {
            r.message_field: round(r.figure * 100, 1) for r in self.results if r.message_field and r.figure is not None
        }

    def as_document(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "blocked_by": [r.name for r in self.blocking],
            "alerts": [r.name for r in self.alerting],
            "results": {r.name: r.as_document() for r in self.results},
            "query_seconds": round(self.query_seconds, 3),
            "table_rows": dict(self.table_rows),
        }


class GateEvaluator:
    def __init__(self, spec: PipelineSpec, warehouse: Callable[[], Warehouse]):
        """`warehouse` builds the warehouse on first use: most deliveries never need it."""
        self.spec = spec
        self._make_warehouse = warehouse
        self._warehouse: Warehouse | None = None

    def gates_for(self, mode: ModeRule) -> tuple[Gate, ...]:
        return tuple(gate for gate in self.spec.gates if gate.applies_to(mode.name))

    def evaluate(self, game_date: dt.date, mode: ModeRule) -> GateReport:
        gates = self.gates_for(mode)
        if not gates:
            return GateReport()
        query, columns = measurement_query(
            [m for gate in gates for m in measures_for(self.spec, gate, mode, game_date)]
        )
        started = time.perf_counter()
        try:
            if self._warehouse is None:
                self._warehouse = self._make_warehouse()
            [row] = self._warehouse.query(query)
        except Exception as exc:  # the checker itself failed: each gate fails open or closed, as declared
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            return GateReport(tuple(_query_failed(gate, error) for gate in gates), time.perf_counter() - started)
        measured = {key: int(row[column] or 0) for column, key in columns.items()}
        table_rows = tuple((key.removeprefix("rows:"), n) for key, n in measured.items() if key.startswith("rows:"))
        results = tuple(judge(self.spec, gate, mode, measured) for gate in gates)
        return GateReport(results, time.perf_counter() - started, table_rows=table_rows)


def _query_failed(gate: Gate, error: str) -> GateResult:
    passed = gate.on_error == "open"
    verdict = "fails open: counted as passed" if passed else "fails closed: counted as failed"
    return GateResult(
        gate.name,
        gate.kind,
        gate.action,
        passed,
        None,
        _threshold(gate),
        f"the gate query failed, {verdict}",
        error,
        gate.message_field,
    )


def _threshold(gate: Gate) -> float | None:
    return gate.max if gate.kind == NULL_RATE else gate.min


def _share(part: int, whole: int, empty: float = 1.0) -> float:
    return part / whole if whole else empty


def judge(spec: PipelineSpec, gate: Gate, mode: ModeRule, measured: dict[str, int]) -> GateResult:
    """One gate's verdict from the date's measures."""
    scheduled = measured.get(SCHEDULED_GAMES, 0)
    if gate.kind == ROWS_EXIST:
        tables = gate_tables(spec, gate, mode)
        empty = [t for t in tables if not measured[f"rows:{t}"]]
        figure = _share(len(tables) - len(empty), len(tables))
        detail = f"{', '.join(empty)}: 0 rows" if empty else f"all {len(tables)} tables have rows"
        return GateResult(
            gate.name, gate.kind, gate.action, not empty, figure, 1.0, detail, message_field=gate.message_field
        )
    if gate.kind == GAME_COVERAGE:
        covered = {t: measured[f"games:{t}"] for t in gate.tables}
        worst = min(covered, key=covered.__getitem__)
        figure = _share(covered[worst], scheduled)
        detail = f"{worst} has rows for {covered[worst]} of {scheduled} scheduled games ({figure:.0%})"
    elif gate.kind == RECORD_COUNT:
        shares = {t: _share(measured[f"rows:{t}"], per_game * scheduled) for t, per_game in gate.rows_per_game}
        worst = min(shares, key=shares.__getitem__)
        figure = shares[worst]
        expected = dict(gate.rows_per_game)[worst] * scheduled
        detail = f"{worst} has {measured[f'rows:{worst}']} rows of the {expected} expected for {scheduled} games ({figure:.0%})"
    elif gate.kind == COLUMN_COVERAGE:
        population, covered_rows = measured[f"population:{gate.name}"], measured[f"covered:{gate.name}"]
        figure = _share(covered_rows, population)
        who = f"rows where {gate.population}" if gate.population else "rows"
        detail = f"{gate.table}: {covered_rows} of {population} {who} have {gate.valid} ({figure:.1%})"
    elif gate.kind == NULL_RATE:
        rows = measured[f"rows:{gate.table}"]
        nulls = {c: measured[f"nulls:{gate.table}.{c}"] for c in gate.columns}
        worst = max(nulls, key=nulls.__getitem__)
        figure = _share(nulls[worst], rows, empty=0.0)
        detail = f"{gate.table}.{worst} is NULL in {nulls[worst]} of {rows} rows ({figure:.1%})"
        assert gate.max is not None  # the schema requires it of null_rate gates
        return GateResult(
            gate.name,
            gate.kind,
            gate.action,
            figure <= gate.max,
            figure,
            gate.max,
            detail,
            message_field=gate.message_field,
        )
    else:
        raise ValueError(f"gate {gate.name}: unknown kind {gate.kind!r}")
    assert gate.min is not None  # the schema requires it of the other kinds
    return GateResult(
        gate.name,
        gate.kind,
        gate.action,
        figure >= gate.min,
        figure,
        gate.min,
        detail,
        message_field=gate.message_field,
    )
