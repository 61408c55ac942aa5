"""The write fence moves forward with every newer lock token and refuses every older one, on both adapters.

A fence that fails to advance lets a stale holder's write through (its token
is still newer than the fence's); a fence that moves backwards does the same.
Each write here goes through the adapter's own fenced-write path.
"""

from __future__ import annotations

import pytest

from phase3ops.warehouse.bigquery_warehouse import BigQueryWarehouse
from phase3ops.warehouse.port import WriteFence, WriteFenced
from tests.support.bigquery_on_duckdb import BigQueryOnDuckDB
from tests.support.single_process_duckdb import SingleProcessDuckDB
from tests.support.warehouse_rows import DAY, SPEC, summary

TABLE = SPEC.processor("player_game_summary").table
FENCES = SPEC.analytics.write_fences


def fence(token: int) -> WriteFence:
    return WriteFence(FENCES, token, f"host:{token}", f"exec-{token}")


def duckdb_warehouse(tmp_path):
    return SingleProcessDuckDB(tmp_path / "warehouse.duckdb")


def bigquery_warehouse(tmp_path):
    client = BigQueryOnDuckDB(tmp_path / "bq.duckdb", project="my-proj")
    client.register(TABLE, FENCES)
    return BigQueryWarehouse(client, location="us-west2", sleep=lambda seconds: None)


@pytest.fixture(params=[duckdb_warehouse, bigquery_warehouse], ids=["duckdb", "bigquery"])
def warehouse(request, tmp_path):
    warehouse = request.param(tmp_path)
    warehouse.ensure_tables([TABLE, FENCES])
    return warehouse


def fence_row(warehouse) -> list[dict]:
    return warehouse.query(
        "SELECT table_name, game_date, token, owner, execution_id FROM `nba_analytics.phase3_write_fences`"
    )


def points(warehouse) -> dict[str, int]:
    return {
        r["player_lookup"]: r["points"]
        for r in warehouse.query("SELECT player_lookup, points FROM `nba_analytics.player_game_summary`")
    }


def test_the_fence_advances_to_each_newer_token_and_refuses_an_older_one(warehouse):
    warehouse.write_partition(TABLE, DAY, [summary("a", 1)], fence=fence(1))
    assert [r["token"] for r in fence_row(warehouse)] == [1]

    warehouse.write_partition(TABLE, DAY, [summary("a", 3)], fence=fence(3))
    assert fence_row(warehouse) == [
        {
            "table_name": "nba_analytics.player_game_summary",
            "game_date": DAY,
            "token": 3,
            "owner": "host:3",
            "execution_id": "exec-3",
        }
    ]  # the fence moved: a holder older than 3 is refused from now on

    with pytest.raises(WriteFenced, match="newer lock token than 2"):
        warehouse.write_partition(TABLE, DAY, [summary("a", 2), summary("b", 2)], fence=fence(2))
    assert points(warehouse) == {"a": 3}  # nothing the stale holder sent was applied
    assert [r["token"] for r in fence_row(warehouse)] == [3]  # and the fence did not move back


def test_a_run_with_no_rows_advances_the_fence_too(warehouse):
    warehouse.write_partition(TABLE, DAY, [summary("a", 1)], fence=fence(1))
    warehouse.write_partition(TABLE, DAY, [], fence=fence(4))  # found nothing: writes no row, still supersedes
    assert [r["token"] for r in fence_row(warehouse)] == [4]
    with pytest.raises(WriteFenced):
        warehouse.write_partition(TABLE, DAY, [summary("a", 9)], fence=fence(3))
    assert points(warehouse) == {"a": 1}


def test_the_holder_may_write_again_under_its_own_token(warehouse):
    warehouse.write_partition(TABLE, DAY, [summary("a", 1)], fence=fence(5))
    warehouse.write_partition(TABLE, DAY, [summary("a", 2)], fence=fence(5))  # a retry of the same run
    assert points(warehouse) == {"a": 2}
    assert [r["token"] for r in fence_row(warehouse)] == [5]
