"""Per player and game date: the box score plus shooting efficiency, and whether the player did not play."""

from __future__ import annotations

import datetime as dt

from phase3ops.analytics.processors.base import ProcessorQuery, latest_raw, on_date
from phase3ops.spec.pipeline import PipelineSpec


def build(spec: PipelineSpec, game_date: dt.date) -> str:
    return (
        f"WITH box AS ({latest_raw(spec.raw_table('player_boxscores'), on_date(game_date))})\n"
        "SELECT game_date, player_lookup, player_name, team_abbr, opponent_abbr, game_id,\n"
        "  dnp_reason IS NOT NULL AS is_dnp,\n"
        "  minutes, points, rebounds, assists,\n"
        "  ROUND(SAFE_DIVIDE(fg_made, fg_attempted), 4) AS fg_pct,\n"
        "  ROUND(SAFE_DIVIDE(points, 2 * (fg_attempted + 0.44 * ft_attempted)), 4) AS true_shooting_pct\n"
        "FROM box"
    )


QUERY = ProcessorQuery("player_game_summary", build)
