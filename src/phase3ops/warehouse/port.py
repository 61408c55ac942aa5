"""The warehouse port: the few operations Phase 3 needs from BigQuery or DuckDB.

Adapters implement five primitives (create tables, load a batch to a
staging table, run one statement, run statements as one fenced transaction,
drop a staging table); everything else, the atomic and fenced partition
write and the duplicate and row counts, is built here once on top of them,
from the SQL in `sql.py`.
"""

from __future__ import annotations

import abc
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phase3ops.spec.pipeline import PARTITION_COLUMN, TableSpec
from phase3ops.warehouse import sql

Row = Mapping[str, Any]


class WarehouseError(RuntimeError):
    pass


class WriteFenced(WarehouseError):
    """A run under a newer lock token already wrote this table and date: this writer
    was superseded (its lease was taken over) and nothing it sent was applied."""


@dataclass(frozen=True)
class WriteFence:
    """The lock a write happens under. The write applies only if no newer token has
    written the same (table, game date), checked in the same transaction as the write."""

    fences: TableSpec  # the write-fences table (pipeline.yaml: analytics.write_fences_table)
    token: int
    owner: str
    execution_id: str


class Warehouse(abc.ABC):
    name: str = "warehouse"

    # -- primitives each adapter implements ---------------------------------

    @abc.abstractmethod
    def ensure_tables(self, tables: Iterable[TableSpec]) -> None:
        """Create the datasets and tables that do not exist yet."""

    @abc.abstractmethod
    def load_staging(self, table: TableSpec, staging: str, rows: Sequence[Row]) -> None:
        """Create `staging` (same columns as `table`, in its dataset) holding `rows`."""

    @abc.abstractmethod
    def execute(self, bigquery_sql: str) -> list[dict[str, Any]]:
        """Run one statement written in BigQuery's dialect; rows as dicts."""

    @abc.abstractmethod
    def run_fenced(self, fence_statement: str, statements: Sequence[str], refusal: str) -> None:
        """In one transaction: run `fence_statement` (DML that advances the fence unless a
        newer token holds it); if it changed no row, apply nothing and raise
        WriteFenced(refusal); else run `statements`."""

    @abc.abstractmethod
    def drop_staging(self, table: TableSpec, staging: str) -> None:
        """Drop a staging table; no error if it is already gone."""

    def merge(self, table: TableSpec, staging: str, game_date: dt.date) -> None:
        """Run the MERGE; adapters add retries for their own transient conflicts."""
        self.execute(sql.merge_partition(table, staging, game_date))

    # -- built on the primitives ---------------------------------------------

    def write_partition(
        self, table: TableSpec, game_date: dt.date, rows: Sequence[Row], fence: WriteFence | None = None
    ) -> int:
        """Replace the game date's rows of `table` with `rows` in one atomic MERGE.

        With a `fence`, the MERGE runs in one transaction with the fence check
        and advance: a writer whose token a newer one superseded changes
        nothing and gets WriteFenced. With a fence and no rows, only the fence
        advances (an empty run never wipes a date, but it does supersede older
        writers). Without a fence and rows, nothing happens.
        """
        foreign = [row for row in rows if row[PARTITION_COLUMN] != game_date]
        if foreign:
            raise WarehouseError(
                f"{len(foreign)} rows for {table.qualified_name} are not for {game_date} "
                f"(first: {foreign[0][PARTITION_COLUMN]})"
            )
        if not rows and fence is None:
            return 0
        staging = _staging_name(table) if rows else None
        if staging:
            self.load_staging(table, staging, rows)
        try:
            if fence is None:
                assert staging is not None  # without a fence, no rows returned above
                self.merge(table, staging, game_date)
            else:
                try:
                    self.run_fenced(
                        sql.advance_fence(fence.fences, table, game_date, fence.token, fence.owner, fence.execution_id),
                        [sql.merge_partition(table, staging, game_date)] if staging else [],
                        f"write fence: {table.qualified_name} {game_date} was written under a newer lock token than {fence.token}",
                    )
                except WriteFenced as refused:
                    holders = self.execute(sql.current_fence(fence.fences, table, game_date))
                    held = "; ".join(
                        f"held by token {h['token']}, {h['owner']}, run {h['execution_id']}" for h in holders
                    )
                    raise WriteFenced(f"{refused} ({held})" if held else str(refused)) from None
        finally:
            if staging:
                self.drop_staging(table, staging)
        return len(rows)

    def append(self, table: TableSpec, rows: Sequence[Row]) -> int:
        """Add rows as they are (raw scrapes are append-only; no de-duplication here)."""
        staging = _staging_name(table)
        self.load_staging(table, staging, rows)
        try:
            self.execute(sql.insert_from(table, staging))
        finally:
            self.drop_staging(table, staging)
        return len(rows)

    def query(self, bigquery_sql: str) -> list[dict[str, Any]]:
        return self.execute(bigquery_sql)

    def duplicate_counts(self, table: TableSpec, first: dt.date, last: dt.date) -> dict[dt.date, int]:
        """Rows beyond one per primary key, per game date (dates without duplicates are 0 or absent)."""
        rows = self.execute(sql.duplicate_counts(table, first, last))
        return {_as_date(r[PARTITION_COLUMN]): int(r["duplicates"] or 0) for r in rows}

    def row_counts(self, table: TableSpec, first: dt.date, last: dt.date) -> dict[dt.date, int]:
        rows = self.execute(sql.row_counts(table, first, last))
        return {_as_date(r[PARTITION_COLUMN]): int(r["row_count"]) for r in rows}


def json_ready(row: Row, table: TableSpec) -> dict[str, Any]:
    """A row as NDJSON-able values in the table's column order (the format both loads use)."""
    out: dict[str, Any] = {}
    for name, _ in table.columns:
        value = row.get(name)
        if isinstance(value, dt.datetime):
            value = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
            value = value.isoformat()
        elif isinstance(value, dt.date):
            value = value.isoformat()
        out[name] = value
    return out


def _staging_name(table: TableSpec) -> str:
    return f"{table.name}__staging_{uuid.uuid4().hex[:12]}"


def _as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
