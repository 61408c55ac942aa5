"""DuckDB adapter: the embedded warehouse for local runs and tests.

One database file under a data directory, a schema per dataset. Every
operation works in one transaction on a connection of its own, and the file
is let go of soon after, so the analytics service, the health check and a
person's `duckdb` shell can take turns on the same file (DuckDB lets one
process open it at a time; a process that finds the file locked waits and
retries).

Loading a database costs ~15 ms whatever its size (DuckDB starts an
instance: measured 14 ms for `:memory:`), several times what a gate query
or a day's MERGE costs. So a process keeps the file's instance loaded for
`LINGER_SECONDS` after its last operation, and a burst of operations (a
ready date's gate query after another's, a processor's stage, fence and
MERGE) pays the load once. The file is let go of after that quiet spell,
and at the end of any operation once the instance has been loaded for
`MAX_HOLD_SECONDS`, so a process that operates without pause still leaves
the others the gap today's open-per-operation left them.

Within a process, connections to one file share one database, and DuckDB's
MVCC lets two concurrent MERGEs insert the same new key twice (there is no
unique constraint to collide on): measured, five concurrent writers left 100
duplicates. BigQuery serialises DML on a table instead. So operations on one
file are serialised here too, which makes the embedded warehouse as strict as
the production one.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from phase3ops.spec.pipeline import TableSpec
from phase3ops.warehouse import sql
from phase3ops.warehouse.port import Row, Warehouse, WarehouseError, WriteFenced

_DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "FLOAT64": "DOUBLE",
    "BOOL": "BOOLEAN",
    "DATE": "DATE",
    # BigQuery TIMESTAMPs are instants; store them as UTC in a plain TIMESTAMP.
    "TIMESTAMP": "TIMESTAMP",
}
T = TypeVar("T")
LINGER_SECONDS = 0.25
MAX_HOLD_SECONDS = 1.0


class _LoadedFile:
    """One database file as this process holds it: the lock that serialises its operations, and
    the connection that keeps its instance loaded between them (closed after a quiet spell)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.loads = 0  # how many times this process loaded the instance (tests count them)
        self._anchor: duckdb.DuckDBPyConnection | None = None
        self._loaded_at = 0.0
        self._release: threading.Timer | None = None

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for one operation, on the loaded instance; the caller holds `lock`."""
        if self._release is not None:
            self._release.cancel()
            self._release = None
        if self._anchor is None:
            # A day's rows are small: DuckDB's worker threads cost more than they bring on them, and
            # compete with everything else on a small machine. TIMESTAMP columns hold UTC; never
            # let the machine's zone shift a value (every cursor inherits the global setting).
            self._anchor = duckdb.connect(str(self.path))
            self._anchor.execute("SET GLOBAL threads = 1; SET GLOBAL TimeZone = 'UTC'")
            self._loaded_at = time.monotonic()
            self.loads += 1
        return self._anchor.cursor()

    def done(self) -> None:
        """After an operation (the caller holds `lock`): let go of the file now if it has been held
        long enough, else after `LINGER_SECONDS` without another operation."""
        if time.monotonic() - self._loaded_at >= MAX_HOLD_SECONDS:
            self.unload()
            return
        release = threading.Timer(LINGER_SECONDS, lambda: self._unload_if_still(release))
        release.daemon = True
        self._release = release
        release.start()

    def _unload_if_still(self, release: threading.Timer) -> None:
        with self.lock:
            if self._release is release:  # no operation came (and cancelled it) before it fired
                self.unload()

    def unload(self) -> None:
        """Close the instance (checkpointing its write-ahead log into the file); the caller holds `lock`."""
        if self._release is not None:
            self._release.cancel()
            self._release = None
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None


_LOADED: dict[Path, _LoadedFile] = {}
_LOADED_GUARD = threading.Lock()


def _loaded_file(path: Path) -> _LoadedFile:
    with _LOADED_GUARD:
        resolved = path.resolve()
        if resolved not in _LOADED:
            _LOADED[resolved] = _LoadedFile(resolved)
        return _LOADED[resolved]


@atexit.register
def _unload_all() -> None:
    """A clean exit leaves every file checkpointed and unlocked (a killed process leaves its
    write-ahead log, which the next open replays)."""
    for loaded in list(_LOADED.values()):
        with loaded.lock:
            loaded.unload()


class DuckDBWarehouse(Warehouse):
    name = "duckdb"

    def __init__(self, path: str | os.PathLike[str], retry_seconds: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._retry_seconds = retry_seconds

    def ensure_tables(self, tables: Iterable[TableSpec]) -> None:
        tables = list(tables)

        def create(conn: duckdb.DuckDBPyConnection) -> None:
            for table in tables:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.dataset}"')
                conn.execute(self._create_sql(table, table.name))

        self._in_transaction(create)

    def load_staging(self, table: TableSpec, staging: str, rows: Sequence[Row]) -> None:
        # Hand the batch to DuckDB as an Arrow table: built column by column in
        # C, it loads 100,000 rows several times faster than a CSV or NDJSON
        # file written from Python, and row-by-row INSERTs are two orders of
        # magnitude slower still.
        batch = arrow_table(table, rows)

        def load(conn: duckdb.DuckDBPyConnection) -> None:
            conn.execute(self._create_sql(table, staging))
            if rows:
                conn.register("staging_batch", batch)
                conn.execute(f'INSERT INTO "{table.dataset}"."{staging}" SELECT * FROM staging_batch')
                conn.unregister("staging_batch")

        self._in_transaction(load)

    def execute(self, bigquery_sql: str) -> list[dict[str, Any]]:
        statement = sql.to_duckdb(bigquery_sql)

        def run(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            cursor = conn.execute(statement)
            if cursor.description is None:
                return []
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, map(_from_duckdb, row))) for row in cursor.fetchall()]

        return self._in_transaction(run, one_statement=True)

    def run_fenced(self, fence_statement: str, statements: Sequence[str], refusal: str) -> None:
        advance, work = sql.to_duckdb(fence_statement), [sql.to_duckdb(s) for s in statements]

        def fenced(conn: duckdb.DuckDBPyConnection) -> None:
            # The same decision as BigQuery's script: the fence's MERGE changed no row, so a
            # newer token holds it (DuckDB answers a DML statement with its row count).
            [(changed,)] = conn.execute(advance).fetchall()
            if changed == 0:
                raise WriteFenced(refusal)
            for statement in work:
                conn.execute(statement)

        self._in_transaction(fenced)

    def drop_staging(self, table: TableSpec, staging: str) -> None:
        self._in_transaction(lambda conn: conn.execute(f'DROP TABLE IF EXISTS "{table.dataset}"."{staging}"'))

    def _create_sql(self, table: TableSpec, name: str) -> str:
        columns = ", ".join(f'"{column}" {_DUCKDB_TYPES[kind]}' for column, kind in table.columns)
        return f'CREATE TABLE IF NOT EXISTS "{table.dataset}"."{name}" ({columns})'

    def _in_transaction(self, work: Callable[[duckdb.DuckDBPyConnection], T], one_statement: bool = False) -> T:
        """Run `work` in one transaction on a fresh connection, again from the start
        while another process holds the file or a concurrent transaction
        conflicts (the DuckDB twin of BigQuery's "could not serialize access
        ... due to concurrent update")."""
        deadline = time.monotonic() + self._retry_seconds
        delay = 0.02
        while True:
            try:
                return self._attempt(work, one_statement)
            except (duckdb.IOException, duckdb.TransactionException) as exc:
                if not _retryable(exc) or time.monotonic() > deadline:
                    raise WarehouseError(f"{self.path}: {exc}") from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

    def close(self) -> None:
        """Let go of the file now, checkpointed, instead of after the quiet spell (before another
        process opens it, or the file is copied)."""
        loaded = _loaded_file(self.path)
        with loaded.lock:
            loaded.unload()

    def _attempt(self, work: Callable[[duckdb.DuckDBPyConnection], T], one_statement: bool) -> T:
        loaded = _loaded_file(self.path)
        with loaded.lock:
            try:
                conn = loaded.connect()
            except BaseException:
                loaded.unload()
                raise
            try:
                # One statement is a transaction of its own (autocommit): no BEGIN and COMMIT around it.
                return work(conn) if one_statement else self._in_connection(conn, work)
            finally:
                conn.close()
                loaded.done()

    @staticmethod
    def _in_connection(conn: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        conn.execute("BEGIN TRANSACTION")
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed commit already ended the transaction
            raise
        return result


_ARROW_TYPES = {
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def arrow_table(table: TableSpec, rows: Sequence[Row]) -> pa.Table:
    try:
        columns = [pa.array([row.get(name) for row in rows], type=_ARROW_TYPES[kind]) for name, kind in table.columns]
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise WarehouseError(f"rows for {table.qualified_name} do not fit its columns: {exc}") from exc
    return pa.Table.from_arrays(columns, names=list(table.column_names))


def _retryable(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "onflict" in text


def _from_duckdb(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
