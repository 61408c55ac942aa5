"""Just enough of `google.cloud.bigquery.Client` to run the BigQuery adapter on DuckDB.

There is no BigQuery emulator offline. The adapter's own code (staging
loads, project-qualified BigQuery SQL, the MERGE, its retry on serialization
conflicts, the fenced multi-statement transaction) runs unchanged against
this client, which executes each statement on a real DuckDB database after
transpiling it with SQLGlot; a `BEGIN TRANSACTION; ...; COMMIT TRANSACTION;`
script runs in one DuckDB transaction, its `IF @@row_count = 0 THEN RAISE
USING MESSAGE = '...'; END IF` reads the row count of the DML before it, and a
RAISE fails the query with its message and rolls everything back, as
BigQuery does. A statement it does not know is refused, as BigQuery refuses
what a transaction does not support.
It records the statements so tests can assert what BigQuery would have been
sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phase3ops.spec.pipeline import TableSpec
from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse

_RAISE_IF_NOTHING_CHANGED = re.compile(
    r"^IF @@row_count = 0 THEN RAISE USING MESSAGE = '(?P<message>(?:[^'\\]|\\.)*)'; END IF$", re.DOTALL
)
# What BigQuery supports inside a transaction (SELECT and DML), besides the procedural IF above.
_IN_A_TRANSACTION = ("SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE TABLE")


@dataclass
class _Job:
    rows: list[dict[str, Any]]

    def result(self):
        return [_Row(r) for r in self.rows]


class _Row(dict):
    def items(self):
        return super().items()


@dataclass
class BigQueryOnDuckDB:
    path: Path
    project: str = "test-project"
    statements: list[str] = field(default_factory=list)
    fail_next: list[Exception] = field(default_factory=list)  # raised by the next query() calls, in order
    before_query: Callable[[str], None] | None = None

    def __post_init__(self):
        self._duckdb = DuckDBWarehouse(self.path)
        self._schemas: dict[str, TableSpec] = {}

    def register(self, *tables: TableSpec) -> None:
        """Table schemas the staging loads need (BigQuery would know them from the load job)."""
        for table in tables:
            self._schemas[f"{table.dataset}.{table.name}"] = table

    def get_dataset(self, dataset):
        from google.api_core import exceptions as gexc

        query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = ?"
        found = self._duckdb._in_transaction(lambda conn: conn.execute(query, [dataset.dataset_id]).fetchall())
        if not found:
            raise gexc.NotFound(f"Not found: Dataset {self.project}:{dataset.dataset_id}")
        return dataset

    def create_dataset(self, dataset, exists_ok: bool = False):
        self._duckdb.execute(f"CREATE SCHEMA IF NOT EXISTS `{dataset.dataset_id}`")

    def query(self, statement: str):
        self.statements.append(statement)
        if self.before_query:
            self.before_query(statement)
        if self.fail_next:
            raise self.fail_next.pop(0)
        if statement.startswith("BEGIN TRANSACTION;"):
            return self._script(statement)
        return _Job(self._duckdb.execute(self._unqualify(statement)))

    def _script(self, script: str):
        from google.api_core import exceptions as gexc

        from phase3ops.warehouse.sql import to_duckdb

        statements = [s.strip().rstrip(";") for s in script.split(";\n") if s.strip()]
        if statements[0] != "BEGIN TRANSACTION" or statements[-1] != "COMMIT TRANSACTION":
            raise gexc.BadRequest(f"not a single transaction: {script[:80]}")

        def run(conn):
            row_count = None
            for statement in statements[1:-1]:
                refusal = _RAISE_IF_NOTHING_CHANGED.match(statement)
                if refusal:
                    if row_count == 0:
                        message = re.sub(r"\\(.)", r"\1", refusal["message"])
                        raise gexc.BadRequest(f"Query error: {message} at [3:1]")
                elif statement.startswith(_IN_A_TRANSACTION):
                    result = conn.execute(to_duckdb(self._unqualify(statement)))
                    row_count = result.fetchall()[0][0] if not statement.startswith("SELECT") else None
                else:
                    raise gexc.BadRequest(f"Statement not supported in a transaction: {statement[:60]}")

        self._duckdb._in_transaction(run)
        return _Job([])

    def create_table(self, table):
        dataset, name = table.dataset_id, table.table_id
        base = self._schemas[f"{dataset}.{name.split('__staging_')[0]}"]
        self._duckdb.ensure_tables([TableSpec(dataset, name, base.primary_key, base.columns)])

    def load_table_from_json(self, rows, destination: str, job_config=None):
        _, dataset, name = destination.split(".")
        base = self._schemas[f"{dataset}.{name.split('__staging_')[0]}"]
        staging = TableSpec(dataset, name, base.primary_key, base.columns)
        self._duckdb.append(staging, [_parsed(row, base) for row in rows])
        return _Job([])

    def delete_table(self, table_id: str, not_found_ok: bool = False):
        _, dataset, name = table_id.split(".")
        self._duckdb.execute(f"DROP TABLE IF EXISTS `{dataset}.{name}`")

    def _unqualify(self, statement: str) -> str:
        return re.sub(rf"`{re.escape(self.project)}\.", "`", statement)


def _parsed(row: dict[str, Any], table: TableSpec) -> dict[str, Any]:
    import datetime as dt

    out = {}
    for name, kind in table.columns:
        value = row.get(name)
        if value is not None and kind == "DATE":
            value = dt.date.fromisoformat(value)
        elif value is not None and kind == "TIMESTAMP":
            value = dt.datetime.fromisoformat(value)
        out[name] = value
    return out
