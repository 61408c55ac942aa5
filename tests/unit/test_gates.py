"""The data gates on real processor output in DuckDB: each kind passes a complete day and fails what it is for."""

from __future__ import annotations

import datetime as dt

import pytest

from phase3ops.gates.evaluate import GateEvaluator
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.game_days import processed_day
from tests.support.single_process_duckdb import SingleProcessDuckDB
from tests.support.specs import REPO_ROOT

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
OVERNIGHT, SAME_DAY = SPEC.mode("overnight"), SPEC.mode("same_day")
DAY = dt.date(2026, 11, 27)


class CountingWarehouse(SingleProcessDuckDB):
    queries = 0

    def query(self, bigquery_sql):
        self.queries += 1
        return super().query(bigquery_sql)


@pytest.fixture
def warehouse(tmp_path):
    return CountingWarehouse(tmp_path / "warehouse.duckdb")


def evaluate(warehouse, mode=OVERNIGHT, day=DAY):
    return GateEvaluator(SPEC, lambda: warehouse).evaluate(day, mode)


def results(report) -> dict[str, tuple[bool, float | None]]:
    return {r.name: (r.passed, r.figure) for r in report.results}


def test_a_complete_day_passes_every_gate_in_one_query(warehouse):
    processed_day(warehouse, SPEC, DAY)
    before = warehouse.queries
    report = evaluate(warehouse)
    assert warehouse.queries - before == 1
    assert report.passed and not report.alerting, report.summary
    assert {r.name for r in report.results} == {g.name for g in SPEC.gates}
    assert report.message_fields() == {"minutes_coverage_pct": 100.0}


def test_an_empty_table_of_the_mode_holds_the_date_and_the_result_names_it(warehouse):
    processed_day(warehouse, SPEC, DAY, skip=("team_offense_game_summary", "team_defense_game_summary"))
    report = evaluate(warehouse)
    assert next(r.name for r in report.blocking) == "data_exists"
    data_exists = report.results[0]
    assert data_exists.figure == pytest.approx(3 / 5)
    assert data_exists.detail == "team_offense_game_summary, team_defense_game_summary: 0 rows"
    assert "game_count" in [r.name for r in report.blocking]  # the phase boundary sees no team games either


def test_a_same_day_date_needs_only_its_own_tables(warehouse):
    processed_day(
        warehouse, SPEC, DAY, skip=("player_game_summary", "team_offense_game_summary", "team_defense_game_summary")
    )
    report = evaluate(warehouse, SAME_DAY)
    assert [r.name for r in report.results] == ["data_exists"] and report.passed


@pytest.mark.parametrize("kept, passes", [(3, False), (4, True)], ids=["3_of_5_games", "4_of_5_games"])
def test_schedule_coverage_at_its_threshold(warehouse, kept, passes):
    def drop_games(processor, rows):
        ids = sorted({r["game_id"] for r in rows})
        return [r for r in rows if r["game_id"] in ids[:kept]] if processor == "player_game_summary" else rows

    processed_day(warehouse, SPEC, DAY, change=drop_games)
    coverage = {r.name: r for r in evaluate(warehouse).results}["schedule_coverage"]
    assert (coverage.passed, coverage.figure) == (passes, pytest.approx(kept / 5))


def _minutes_missing(share_of_players: float):
    def change(processor, rows):
        if processor != "player_game_summary":
            return rows
        played = [r for r in rows if not r["is_dnp"]]
        lose = {r["player_lookup"] for r in played[: round(len(played) * share_of_players)]}
        return [{**r, "minutes": None} if r["player_lookup"] in lose or r["is_dnp"] else r for r in rows]

    return change


def test_minutes_coverage_counts_only_players_who_played(warehouse):
    processed_day(
        warehouse, SPEC, DAY, change=_minutes_missing(0.0)
    )  # every DNP has NULL minutes; everyone who played has some
    by_name = {r.name: r for r in evaluate(warehouse).results}
    assert by_name["minutes_coverage"].figure == 1.0 and by_name["minutes_coverage_warning"].passed
    assert "NOT is_dnp" in by_name["minutes_coverage"].detail


@pytest.mark.parametrize("missing, block, alert", [(0.15, True, False), (0.3, False, False)], ids=["85pct", "70pct"])
def test_minutes_coverage_alerts_below_90_and_blocks_below_80(warehouse, missing, block, alert):
    processed_day(warehouse, SPEC, DAY, change=_minutes_missing(missing))
    report = evaluate(warehouse)
    by_name = {r.name: r for r in report.results}
    assert (by_name["minutes_coverage"].passed, by_name["minutes_coverage_warning"].passed) == (block, alert)
    assert report.message_fields()["minutes_coverage_pct"] == pytest.approx((1 - missing) * 100, abs=1.5)


def test_critical_nulls_block_above_half_and_alert_above_five_percent(warehouse):
    def null_points(processor, rows):
        if processor != "player_game_summary":
            return rows
        return [{**r, "points": None} if i % 10 < 6 else r for i, r in enumerate(rows)]

    processed_day(warehouse, SPEC, DAY, change=null_points)
    by_name = {r.name: r for r in evaluate(warehouse).results}
    assert not by_name["critical_field_nulls"].passed and not by_name["critical_field_nulls_warning"].passed
    assert by_name["critical_field_nulls"].detail.startswith("player_game_summary.points is NULL in")


def test_record_counts_per_scheduled_game(warehouse):
    def few_players(processor, rows):
        return rows[:20] if processor == "player_game_summary" else rows  # 20 rows for 5 games: 40 % of 10 per game

    processed_day(warehouse, SPEC, DAY, change=few_players)
    by_name = {r.name: r for r in evaluate(warehouse).results}
    assert (by_name["record_counts"].passed, by_name["record_counts"].figure) == (False, pytest.approx(0.4))


def test_a_failing_query_fails_each_gate_open_or_closed_as_declared(tmp_path):
    class Broken(SingleProcessDuckDB):
        def query(self, bigquery_sql):
            raise RuntimeError("Access Denied: table nba_analytics.player_game_summary")

    report = GateEvaluator(SPEC, lambda: Broken(tmp_path / "w.duckdb")).evaluate(DAY, OVERNIGHT)
    by_name = {r.name: r for r in report.results}
    assert (
        not by_name["data_exists"].passed and "fails closed" in by_name["data_exists"].detail
    )  # on_error: closed (default)
    assert by_name["schedule_coverage"].passed and "fails open" in by_name["schedule_coverage"].detail
    assert by_name["data_exists"].error == "RuntimeError: Access Denied: table nba_analytics.player_game_summary"
    assert [r.name for r in report.blocking] == ["data_exists"]


def test_gates_switched_off_or_for_other_modes_are_not_measured(warehouse):
    processed_day(warehouse, SPEC, DAY)
    evaluator = GateEvaluator(SPEC, lambda: warehouse)
    assert [g.name for g in evaluator.gates_for(SPEC.mode("tomorrow"))] == ["data_exists"]
