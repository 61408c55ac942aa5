"""Rows of the shipped Phase 3 tables for warehouse tests: one player_game_summary row at a time."""

from __future__ import annotations

import datetime as dt

from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.specs import REPO_ROOT

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
DAY = dt.date(2026, 11, 28)
T0 = dt.datetime(2026, 11, 29, 6, tzinfo=dt.UTC)


def summary(player: str, points: int, at: dt.datetime = T0, day: dt.date = DAY) -> dict:
    """A player_game_summary row; `points` tells writes apart, `at` is its processed_at."""
    return {
        "game_date": day,
        "player_lookup": player,
        "player_name": player.title(),
        "team_abbr": "BOS",
        "opponent_abbr": "NYK",
        "game_id": "g1",
        "minutes": 30.5,
        "points": points,
        "rebounds": 5,
        "assists": 3,
        "fg_pct": 0.5,
        "true_shooting_pct": 0.6,
        "processed_at": at,
    }
