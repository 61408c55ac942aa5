"""The BigQuery adapter's own code path, executed on DuckDB (no BigQuery emulator exists offline)."""

from __future__ import annotations

import datetime as dt

import pytest
from google.api_core import exceptions as gexc

from phase3ops.warehouse.bigquery_warehouse import BigQueryWarehouse, is_serialization_conflict
from phase3ops.warehouse.port import WriteFence, WriteFenced
from tests.support.bigquery_on_duckdb import BigQueryOnDuckDB
from tests.support.warehouse_rows import DAY, SPEC, T0, summary

TABLE = SPEC.processor("player_game_summary").table
CONFLICT = "Could not serialize access to table my-proj:nba_analytics.player_game_summary due to concurrent update"


class RecordingWarehouse(BigQueryWarehouse):
    """The adapter, keeping the backoff sleeps it asked for so the tests can read them."""

    sleeps: list[float]


@pytest.fixture
def client(tmp_path) -> BigQueryOnDuckDB:
    client = BigQueryOnDuckDB(tmp_path / "bq.duckdb", project="my-proj")
    client.register(TABLE)
    return client


@pytest.fixture
def warehouse(client) -> RecordingWarehouse:
    sleeps: list[float] = []
    warehouse = RecordingWarehouse(client, location="us-west2", sleep=sleeps.append)
    warehouse.sleeps = sleeps
    warehouse.ensure_tables([TABLE])
    return warehouse


def test_statements_are_project_qualified_partitioned_bigquery_sql(warehouse, client):
    warehouse.write_partition(TABLE, DAY, [summary("a", 1), summary("b", 2)])

    create, merge = client.statements[0], client.statements[-1]
    assert "CREATE TABLE IF NOT EXISTS `my-proj.nba_analytics.player_game_summary`" in create
    assert "PARTITION BY game_date" in create
    assert merge.startswith("MERGE `my-proj.nba_analytics.player_game_summary` T")
    assert "USING (\n  SELECT * FROM `my-proj.nba_analytics.player_game_summary__staging_" in merge
    assert warehouse.row_counts(TABLE, DAY, DAY) == {DAY: 2}


def test_a_serialization_conflict_is_retried_with_backoff_and_the_merge_lands(warehouse, client):
    client.fail_next = [gexc.BadRequest(CONFLICT), gexc.BadRequest(CONFLICT)]
    warehouse.write_partition(TABLE, DAY, [summary("a", 1, T0), summary("a", 9, T0 + dt.timedelta(minutes=1))])

    merges = [s for s in client.statements if s.startswith("MERGE")]
    assert len(merges) == 3 and len(set(merges)) == 1  # the same statement again, nothing else
    assert not any(s.lstrip().upper().startswith(("DELETE", "INSERT")) for s in client.statements)
    assert len(warehouse.sleeps) == 2 and warehouse.sleeps[1] > warehouse.sleeps[0] * 0.5
    assert warehouse.query("SELECT points FROM `nba_analytics.player_game_summary`") == [{"points": 9}]
    assert warehouse.duplicate_counts(TABLE, DAY, DAY) == {DAY: 0}


def test_it_gives_up_after_the_attempts_and_never_falls_back(warehouse, client):
    client.fail_next = [gexc.BadRequest(CONFLICT)] * 6  # every attempt the adapter makes
    with pytest.raises(gexc.BadRequest):
        warehouse.write_partition(TABLE, DAY, [summary("a", 1)])
    assert sum(s.startswith("MERGE") for s in client.statements) == 6
    assert not any(s.lstrip().upper().startswith(("DELETE", "INSERT")) for s in client.statements)
    assert warehouse.row_counts(TABLE, DAY, DAY) == {}
    assert not [s for s in client.statements if "__staging_" in s and s.startswith("CREATE")]  # staging via API only


def test_other_errors_are_not_retried(warehouse, client):
    client.fail_next = [gexc.BadRequest("Syntax error: Unexpected keyword")]
    with pytest.raises(gexc.BadRequest, match="Syntax error"):
        warehouse.write_partition(TABLE, DAY, [summary("a", 1)])
    assert sum(s.startswith("MERGE") for s in client.statements) == 1


@pytest.mark.parametrize(
    "error, retry",
    [
        (gexc.BadRequest(CONFLICT), True),
        (gexc.Conflict("Transaction is aborted due to concurrent update against table x"), True),
        (gexc.BadRequest("Query error: division by zero"), False),
        (RuntimeError(CONFLICT), False),
    ],
)
def test_what_counts_as_a_serialization_conflict(error, retry):
    assert is_serialization_conflict(error) is retry


FENCES = SPEC.analytics.write_fences


def fence(token: int) -> WriteFence:
    return WriteFence(FENCES, token, f"host:{token}", f"exec-{token}")


# What BigQuery runs inside a transaction: SELECT and DML (https://cloud.google.com/bigquery/docs/transactions,
# "Statements supported in transactions"), plus the procedural IF ... RAISE that ends a script (an unhandled
# error rolls the transaction back). ASSERT is not on that list.
SUPPORTED_IN_A_TRANSACTION = (
    "BEGIN TRANSACTION",
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "IF @@row_count",
    "COMMIT TRANSACTION",
)


def test_a_fenced_write_is_one_transaction_of_documented_statements(warehouse, client):
    client.register(FENCES)
    warehouse.ensure_tables([FENCES])
    warehouse.write_partition(TABLE, DAY, [summary("a", 1)], fence=fence(2))

    [script] = [s for s in client.statements if s.startswith("BEGIN TRANSACTION;")]
    statements = [s.strip() for s in script.split(";\n") if s.strip()]
    assert [s for s in statements if not s.startswith(SUPPORTED_IN_A_TRANSACTION)] == []
    assert statements[0] == "BEGIN TRANSACTION"
    assert statements[1].startswith(
        "MERGE `my-proj.nba_analytics.phase3_write_fences` T"
    )  # advance the fence, if not newer
    assert statements[2].startswith("IF @@row_count = 0 THEN RAISE USING MESSAGE = 'write fence: ")  # else refuse
    assert statements[3].startswith("MERGE `my-proj.nba_analytics.player_game_summary` T")
    assert statements[-1].rstrip(";") == "COMMIT TRANSACTION"
    assert warehouse.query("SELECT token FROM `nba_analytics.phase3_write_fences`") == [{"token": 2}]


def test_a_superseded_writer_is_refused_and_nothing_it_sent_is_applied(warehouse, client):
    client.register(FENCES)
    warehouse.ensure_tables([FENCES])
    warehouse.write_partition(TABLE, DAY, [summary("a", 50)], fence=fence(2))  # the successor wrote first

    with pytest.raises(WriteFenced, match="newer lock token than 1"):
        warehouse.write_partition(TABLE, DAY, [summary("a", 1), summary("b", 1)], fence=fence(1))

    assert warehouse.query("SELECT player_lookup, points FROM `nba_analytics.player_game_summary`") == [
        {"player_lookup": "a", "points": 50}
    ]
    assert warehouse.query("SELECT token, owner FROM `nba_analytics.phase3_write_fences`") == [
        {"token": 2, "owner": "host:2"}
    ]
    warehouse.write_partition(TABLE, DAY, [summary("a", 51)], fence=fence(2))  # the holder itself may write again


def test_a_concurrent_transaction_is_retried_like_a_merge(warehouse, client):
    client.register(FENCES)
    warehouse.ensure_tables([FENCES])
    client.fail_next = [
        gexc.BadRequest(
            "Transaction is aborted due to concurrent update against table my-proj:nba_analytics.phase3_write_fences"
        )
    ]
    warehouse.write_partition(TABLE, DAY, [summary("a", 1)], fence=fence(1))
    assert sum(s.startswith("BEGIN TRANSACTION;") for s in client.statements) == 2
    assert warehouse.row_counts(TABLE, DAY, DAY) == {DAY: 1}


def test_an_existing_dataset_is_not_created_again(warehouse, client):
    """The service may edit the dataset the infra created, without the right to create datasets."""

    def forbidden(dataset, exists_ok=False):
        raise gexc.Forbidden(
            f"Access Denied: Project my-proj: User does not have bigquery.datasets.create permission ({dataset.dataset_id})"
        )

    client.create_dataset = forbidden
    warehouse.ensure_tables([TABLE])  # nba_analytics exists (the fixture made it): looked up, not created
    with pytest.raises(gexc.Forbidden):
        warehouse.ensure_tables([SPEC.raw_table("schedule")])  # nba_raw does not: only then is it created
