"""Per team and game date: scoring, shooting and offensive rating (points per 100 possessions)."""

from __future__ import annotations

import datetime as dt

from phase3ops.analytics.processors.base import ProcessorQuery, latest_raw, on_date
from phase3ops.spec.pipeline import PipelineSpec


def build(spec: PipelineSpec, game_date: dt.date) -> str:
    return (
        f"WITH team AS ({latest_raw(spec.raw_table('team_boxscores'), on_date(game_date))})\n"
        "SELECT game_date, team_abbr, opponent_abbr, game_id, is_home, points,\n"
        "  ROUND(SAFE_DIVIDE(fg_made, fg_attempted), 4) AS fg_pct,\n"
        "  three_made, assists, turnovers, possessions,\n"
        "  ROUND(SAFE_DIVIDE(100 * points, possessions), 2) AS offensive_rating\n"
        "FROM team"
    )


QUERY = ProcessorQuery("team_offense_game_summary", build)
