"""One warehouse query that measures a game date for every gate that applies to it.

Each gate needs a few counts (rows of a table, its games, rows meeting a
condition, NULLs in a column, the schedule's games). They are collected,
de-duplicated, and asked for in a single SELECT of scalar subqueries, so a
ready date costs one query whatever the gates, in BigQuery's dialect (DuckDB
gets it transpiled). Conditions come from the spec, which has parsed them
(spec/sql_conditions.py); table and column names are quoted identifiers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from phase3ops.spec.pipeline import (
    COLUMN_COVERAGE,
    GAME_COVERAGE,
    NULL_RATE,
    PARTITION_COLUMN,
    RECORD_COUNT,
    ROWS_EXIST,
    Gate,
    ModeRule,
    PipelineSpec,
)
from phase3ops.warehouse.sql import date_literal, quote

SCHEDULED_GAMES = "scheduled_games"


@dataclass(frozen=True)
class Measure:
    key: str
    sql: str  # a scalar subquery


def gate_tables(spec: PipelineSpec, gate: Gate, mode: ModeRule) -> tuple[str, ...]:
    """The output tables a rows_exist or game_coverage gate looks at (rows_exist: by default the mode's)."""
    if gate.tables:
        return gate.tables
    return tuple(spec.processor(name).output_table for name in mode.expected)


def measures_for(spec: PipelineSpec, gate: Gate, mode: ModeRule, game_date: dt.date) -> list[Measure]:
    day = date_literal(game_date)

    def table(name: str) -> str:
        return quote(spec.analytics.dataset, name)

    def on_date(name: str, select: str) -> str:
        return f"(SELECT {select} FROM {table(name)} WHERE {PARTITION_COLUMN} = {day})"

    schedule = spec.raw_table(spec.game_schedule_table)
    scheduled = Measure(
        SCHEDULED_GAMES,
        f"(SELECT COUNT(DISTINCT game_id) FROM {quote(schedule.dataset, schedule.name)} WHERE {PARTITION_COLUMN} = {day})",
    )
    if gate.kind == ROWS_EXIST:
        return [Measure(f"rows:{t}", on_date(t, "COUNT(*)")) for t in gate_tables(spec, gate, mode)]
    if gate.kind == GAME_COVERAGE:
        return [scheduled, *(Measure(f"games:{t}", on_date(t, "COUNT(DISTINCT game_id)")) for t in gate.tables)]
    if gate.kind == RECORD_COUNT:
        return [scheduled, *(Measure(f"rows:{t}", on_date(t, "COUNT(*)")) for t, _ in gate.rows_per_game)]
    if gate.kind == COLUMN_COVERAGE:
        assert gate.table is not None  # the schema requires it of column_coverage gates
        population = f"({gate.population})" if gate.population else "TRUE"
        return [
            Measure(f"population:{gate.name}", on_date(gate.table, f"COUNT(IF({population}, 1, NULL))")),
            Measure(
                f"covered:{gate.name}", on_date(gate.table, f"COUNT(IF({population} AND ({gate.valid}), 1, NULL))")
            ),
        ]
    if gate.kind == NULL_RATE:
        assert gate.table is not None  # the schema requires it of null_rate gates
        return [
            Measure(f"rows:{gate.table}", on_date(gate.table, "COUNT(*)")),
            *(
                Measure(f"nulls:{gate.table}.{c}", on_date(gate.table, f"COUNT(IF({quote(c)} IS NULL, 1, NULL))"))
                for c in gate.columns
            ),
        ]
    raise ValueError(f"gate {gate.name}: unknown kind {gate.kind!r}")


def measurement_query(measures: list[Measure]) -> tuple[str, dict[str, str]]:
    """One SELECT of every distinct measure; and which column carries which measure."""
    unique: dict[str, Measure] = {}
    for measure in measures:
        unique.setdefault(measure.key, measure)
    columns = {f"m{index}": measure.key for index, measure in enumerate(unique.values())}
    select = ",\n  ".join(f"{measure.sql} AS m{index}" for index, measure in enumerate(unique.values()))
    return f"SELECT\n  {select}", columns
