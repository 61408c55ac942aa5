"""What a Phase 3 processor is here: a query over the raw tables for one game date.

Each processor module holds one SELECT in BigQuery's dialect (DuckDB gets it
transpiled). Write what both engines agree on: for example COUNT(IF(c, 1,
NULL)) rather than COUNTIF(c), which DuckDB answers with NULL instead of 0
when no row matches. It returns the processor's output columns except
`processed_at`, which the runner stamps. Raw tables are append-only scrapes,
so every read goes through `latest_raw`, which keeps the newest scrape of
each raw row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from phase3ops.spec.pipeline import PipelineSpec, TableSpec
from phase3ops.warehouse.sql import date_literal, quote

HISTORY_DAYS = 60


@dataclass(frozen=True)
class ProcessorQuery:
    name: str
    build: Callable[[PipelineSpec, dt.date], str]

    def sql(self, spec: PipelineSpec, game_date: dt.date) -> str:
        return self.build(spec, game_date)


def latest_raw(table: TableSpec, where: str) -> str:
    """SELECT the newest scrape of every raw row matching `where`."""
    key = ", ".join(table.primary_key)
    return (
        f"SELECT * FROM {quote(table.dataset, table.name)} WHERE {where} "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY scraped_at DESC) = 1"
    )


def on_date(game_date: dt.date) -> str:
    return f"game_date = {date_literal(game_date)}"


def history_before(game_date: dt.date) -> str:
    start = game_date - dt.timedelta(days=HISTORY_DAYS)
    return f"game_date >= {date_literal(start)} AND game_date < {date_literal(game_date)}"


def schedule_sides(spec: PipelineSpec, game_date: dt.date) -> str:
    """CTEs `games` and `sides`: one row per team playing on the date, with its opponent."""
    return (
        f"games AS ({latest_raw(spec.raw_table('schedule'), on_date(game_date))}),\n"
        "sides AS (\n"
        "  SELECT game_date, game_id, home_team_abbr AS team_abbr, away_team_abbr AS opponent_abbr, TRUE AS is_home FROM games\n"
        "  UNION ALL\n"
        "  SELECT game_date, game_id, away_team_abbr AS team_abbr, home_team_abbr AS opponent_abbr, FALSE AS is_home FROM games\n"
        ")"
    )
