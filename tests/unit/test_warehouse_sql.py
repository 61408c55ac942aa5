"""The SQL written once in BigQuery's dialect, and its DuckDB transpilation."""

from __future__ import annotations

import datetime as dt

import pytest

from phase3ops.spec.pipeline import load_pipeline_spec
from phase3ops.warehouse import sql
from tests.support.specs import REPO_ROOT

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
TABLE = SPEC.processor("player_game_summary").table
DAY = dt.date(2026, 11, 28)


def test_merge_is_one_statement_with_a_partition_filter_on_every_target_reference():
    statement = sql.merge_partition(TABLE, "player_game_summary__staging_x", DAY)
    assert statement.startswith("MERGE `nba_analytics.player_game_summary` T")
    assert statement.count("DATE '2026-11-28'") == 3  # source, ON, NOT MATCHED BY SOURCE
    assert (
        "ON T.game_date = S.game_date AND T.player_lookup = S.player_lookup AND T.game_date = DATE '2026-11-28'"
        in statement
    )
    assert "PARTITION BY game_date, player_lookup ORDER BY processed_at DESC" in statement
    assert "WHEN NOT MATCHED BY SOURCE AND T.game_date = DATE '2026-11-28' THEN DELETE" in statement
    assert "DELETE FROM" not in statement and "INSERT INTO" not in statement


def test_raw_tables_keep_the_newest_scrape():
    statement = sql.merge_partition(SPEC.raw_table("player_boxscores"), "s", DAY)
    assert "ORDER BY scraped_at DESC" in statement


def test_transpiles_to_duckdb():
    statement = sql.to_duckdb(sql.merge_partition(TABLE, "player_game_summary__staging_x", DAY))
    assert statement.startswith('MERGE INTO "nba_analytics"."player_game_summary" AS T')
    assert "QUALIFY ROW_NUMBER()" in statement


def test_project_qualification_for_bigquery():
    statement = sql.qualify_tables(sql.duplicate_counts(TABLE, DAY, DAY), "my-proj")
    assert "`my-proj.nba_analytics.player_game_summary`" in statement


def test_bigquery_tables_are_partitioned_and_clustered_by_the_key():
    statement = sql.create_table(TABLE)
    assert statement.endswith("PARTITION BY game_date\nCLUSTER BY player_lookup")


def test_duplicate_query_groups_by_the_tables_own_primary_key():
    team = SPEC.processor("team_offense_game_summary").table
    statement = sql.duplicate_counts(team, DAY, DAY)
    assert "GROUP BY game_date, team_abbr" in statement


@pytest.mark.parametrize("bad", ["x; DROP TABLE y", "a.b", "", "1abc"])
def test_identifiers_are_checked(bad):
    with pytest.raises(ValueError):
        sql.quote(bad)
