"""The five processors on a synthetic game day in DuckDB: the numbers are the right ones."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest

from phase3ops.analytics.processors import QUERIES, check_implemented, query_for
from phase3ops.analytics.synthetic import generate_game_day, write_game_day
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.single_process_duckdb import SingleProcessDuckDB
from tests.support.specs import REPO_ROOT

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
DAY1, DAY2 = dt.date(2026, 11, 27), dt.date(2026, 11, 28)


# Every test reads one warehouse of processed days (a module fixture): they stay on one worker.
pytestmark = pytest.mark.xdist_group("processed-days")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    warehouse = SingleProcessDuckDB(tmp_path_factory.mktemp("wh") / "warehouse.duckdb")
    days = {d: generate_game_day(SPEC, d, games=6, seed=3, stale_scrapes=True) for d in (DAY1, DAY2)}
    for day in days.values():
        write_game_day(warehouse, SPEC, day)
    return warehouse, days


def run(warehouse, name, day):
    return warehouse.query(query_for(name).sql(SPEC, day))


def test_every_spec_processor_is_implemented():
    check_implemented(SPEC)
    assert set(QUERIES) == set(SPEC.processor_names)


def test_generator_is_deterministic():
    a = generate_game_day(SPEC, DAY1, games=4, seed=9)
    b = generate_game_day(SPEC, DAY1, games=4, seed=9)
    c = generate_game_day(SPEC, DAY1, games=4, seed=10)
    assert a.tables == b.tables
    assert a.tables["player_boxscores"] != c.tables["player_boxscores"]
    assert a.games == 4 and len(a.tables["team_boxscores"]) == 8


@pytest.mark.parametrize("processor", sorted(SPEC.processor_names))
def test_output_columns_match_the_spec_and_keys_are_unique(loaded, processor):
    warehouse, _ = loaded
    rows = run(warehouse, processor, DAY2)
    table = SPEC.processor(processor).table
    assert rows, processor
    assert set(rows[0]) == set(table.column_names) - {"processed_at"}
    keys = [tuple(r[k] for k in table.primary_key) for r in rows]
    assert len(keys) == len(set(keys))


def test_player_summary_reads_the_newest_scrape(loaded):
    warehouse, days = loaded
    rows = {r["player_lookup"]: r for r in run(warehouse, "player_game_summary", DAY2)}
    raw = {r["player_lookup"]: r for r in days[DAY2].tables["player_boxscores"]}
    assert set(rows) == set(raw)
    assert all(rows[p]["points"] == raw[p]["points"] for p in raw)  # not the stale copy's +17
    some = next(p for p in raw if raw[p]["fg_attempted"])
    assert rows[some]["fg_pct"] == pytest.approx(raw[some]["fg_made"] / raw[some]["fg_attempted"], abs=1e-4)


def test_team_offense_and_defense_mirror_each_other(loaded):
    warehouse, days = loaded
    offense = {r["team_abbr"]: r for r in run(warehouse, "team_offense_game_summary", DAY2)}
    defense = {r["team_abbr"]: r for r in run(warehouse, "team_defense_game_summary", DAY2)}
    players: defaultdict[str, int] = defaultdict(int)
    for p in days[DAY2].tables["player_boxscores"]:
        players[p["team_abbr"]] += p["points"]
    assert set(offense) == set(defense) and len(offense) == 12
    for team, row in offense.items():
        assert row["points"] >= players[team]  # plus 2 for the home team when regulation ended level
        assert defense[team]["points_allowed"] == offense[row["opponent_abbr"]]["points"]
        assert defense[team]["defensive_rating"] == offense[row["opponent_abbr"]]["offensive_rating"]


def test_upcoming_contexts_use_history_before_the_date(loaded):
    warehouse, days = loaded
    teams = {r["team_abbr"]: r for r in run(warehouse, "upcoming_team_game_context", DAY2)}
    played_day1 = {r["team_abbr"] for r in days[DAY1].tables["team_boxscores"]}
    for team, row in teams.items():
        if team in played_day1:
            assert (row["days_rest"], row["games_last_7_days"]) == (1, 1)
            assert row["win_pct_last_10"] in (0.0, 1.0)
        else:
            assert (row["days_rest"], row["games_last_7_days"], row["win_pct_last_10"]) == (None, 0, None)

    players = run(warehouse, "upcoming_player_game_context", DAY2)
    day1_points = {p["player_lookup"]: p["points"] for p in days[DAY1].tables["player_boxscores"]}
    assert len(players) == len(days[DAY2].tables["rosters"])
    for row in players:
        expected = day1_points.get(row["player_lookup"])
        assert row["avg_points_last_5"] == (None if expected is None else pytest.approx(expected))


def test_a_date_without_games_has_no_rows(loaded):
    warehouse, _ = loaded
    assert run(warehouse, "player_game_summary", dt.date(2026, 12, 25)) == []
