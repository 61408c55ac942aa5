"""BigQuery adapter: the production warehouse.

Writes are one MERGE per (table, game date) from a staging table that a load
job filled, so a write is atomic and two concurrent runs cannot leave
duplicates. A fenced write runs the MERGE in one multi-statement
transaction with the fence's advance: a MERGE on the write-fences table that
changes no row when a newer token holds the fence, and then the script
RAISEs (`@@row_count` = 0) and BigQuery rolls the whole transaction back. BigQuery rejects one of two statements or
transactions that touch the same table at once ("Could not serialize access
to table ... due to concurrent update", "Transaction is aborted due to
concurrent update"); that is retried with backoff, never replaced by a
non-atomic DELETE + INSERT (the reference did, and left 72 duplicates).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.api_core import exceptions as gexc

from phase3ops.spec.pipeline import TableSpec
from phase3ops.warehouse import sql
from phase3ops.warehouse.port import Row, Warehouse, WriteFenced, json_ready

log = logging.getLogger("phase3ops.warehouse")

STAGING_TTL = dt.timedelta(hours=1)
_SERIALIZATION_MARKERS = ("could not serialize access", "concurrent update")


def is_serialization_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, (gexc.BadRequest, gexc.Conflict, gexc.BadGateway)) and any(
        marker in text for marker in _SERIALIZATION_MARKERS
    )


class BigQueryWarehouse(Warehouse):
    name = "bigquery"

    def __init__(
        self,
        client,
        location: str | None = None,
        max_attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._client = client
        self._project = client.project
        self._location = location
        self._max_attempts = max_attempts
        self._sleep = sleep

    def ensure_tables(self, tables: Iterable[TableSpec]) -> None:
        from google.cloud import bigquery

        tables = list(tables)
        for dataset in sorted({t.dataset for t in tables}):
            ref = bigquery.Dataset(f"{self._project}.{dataset}")
            try:
                # Look first: the service's identity may edit the dataset the infra
                # program created without being allowed to create datasets.
                self._client.get_dataset(ref)
                continue
            except gexc.NotFound:
                pass
            if self._location:
                ref.location = self._location
            self._client.create_dataset(ref, exists_ok=True)
        for table in tables:
            self._client.query(self._qualify(sql.create_table(table, partitioned=True))).result()

    def load_staging(self, table: TableSpec, staging: str, rows: Sequence[Row]) -> None:
        from google.cloud import bigquery

        staging_id = f"{self._project}.{table.dataset}.{staging}"
        staging_table = bigquery.Table(staging_id, schema=[bigquery.SchemaField(n, t) for n, t in table.columns])
        staging_table.expires = dt.datetime.now(dt.UTC) + STAGING_TTL  # cleaned up even after a crash
        self._client.create_table(staging_table)
        if rows:
            job = self._client.load_table_from_json(
                [json_ready(row, table) for row in rows],
                staging_id,
                job_config=bigquery.LoadJobConfig(
                    schema=staging_table.schema, write_disposition=bigquery.WriteDisposition.WRITE_APPEND
                ),
            )
            job.result()

    def merge(self, table: TableSpec, staging: str, game_date: dt.date) -> None:
        self._execute_with_retries(
            sql.merge_partition(table, staging, game_date), f"MERGE into {table.qualified_name} for {game_date}"
        )

    def run_fenced(self, fence_statement: str, statements: Sequence[str], refusal: str) -> None:
        script = sql.fenced_transaction(fence_statement, list(statements), refusal)
        try:
            self._execute_with_retries(script, refusal.split(":")[0])
        except Exception as exc:
            if refusal in str(exc):  # the script raised it: BigQuery rolled the transaction back
                raise WriteFenced(refusal) from exc
            raise

    def _execute_with_retries(self, statement: str, what: str) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                self.execute(statement)
                return
            except Exception as exc:
                if not is_serialization_conflict(exc) or attempt == self._max_attempts:
                    raise
                delay = min(30.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random())
                log.warning(
                    "%s hit a concurrent update; retrying in %.1fs",
                    what,
                    delay,
                    extra={"event": "merge_retry", "statement": what, "attempt": attempt},
                )
                self._sleep(delay)

    def execute(self, bigquery_sql: str) -> list[dict[str, Any]]:
        result = self._client.query(self._qualify(bigquery_sql)).result()
        return [dict(row.items()) for row in result] if result is not None else []

    def drop_staging(self, table: TableSpec, staging: str) -> None:
        self._client.delete_table(f"{self._project}.{table.dataset}.{staging}", not_found_ok=True)

    def _qualify(self, statement: str) -> str:
        """`dataset.table` -> `project.dataset.table` for every quoted table reference."""
        return sql.qualify_tables(statement, self._project)
