"""Game days in a DuckDB warehouse without any service: raw data, then each processor's query, written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from phase3ops.analytics.dedup import keep_newest
from phase3ops.analytics.processors import query_for
from phase3ops.analytics.synthetic import generate_game_day, write_game_day
from phase3ops.spec.pipeline import FRESHNESS_COLUMN, PipelineSpec
from phase3ops.warehouse.port import Warehouse

T0 = dt.datetime(2026, 11, 29, 6, tzinfo=dt.UTC)


def processed_day(
    warehouse: Warehouse,
    spec: PipelineSpec,
    game_date: dt.date,
    games: int = 5,
    skip: tuple[str, ...] = (),
    change: Callable[[str, list[Mapping[str, Any]]], list[Mapping[str, Any]]] | None = None,
) -> None:
    """Write a synthetic day's raw tables, then every processor's rows but those in `skip`;
    `change(processor, rows)` may alter a processor's rows before they are written."""
    write_game_day(warehouse, spec, generate_game_day(spec, game_date, games=games, seed=7))
    warehouse.ensure_tables([p.table for p in spec.processors])
    for processor in spec.processors:
        if processor.name in skip:
            continue
        rows: list[Mapping[str, Any]] = [
            {**row, FRESHNESS_COLUMN: T0} for row in warehouse.query(query_for(processor.name).sql(spec, game_date))
        ]
        rows = keep_newest(rows, processor.primary_key)
        if change is not None:
            rows = change(processor.name, rows)
        warehouse.write_partition(processor.table, game_date, rows)
