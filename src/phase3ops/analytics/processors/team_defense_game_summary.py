"""Per team and game date: what the opponent managed, i.e. the team's defence."""

from __future__ import annotations

import datetime as dt

from phase3ops.analytics.processors.base import ProcessorQuery, latest_raw, on_date
from phase3ops.spec.pipeline import PipelineSpec


def build(spec: PipelineSpec, game_date: dt.date) -> str:
    return (
        f"WITH team AS ({latest_raw(spec.raw_table('team_boxscores'), on_date(game_date))})\n"
        "SELECT t.game_date, t.team_abbr, t.opponent_abbr, t.game_id,\n"
        "  o.points AS points_allowed,\n"
        "  ROUND(SAFE_DIVIDE(o.fg_made, o.fg_attempted), 4) AS opponent_fg_pct,\n"
        "  o.turnovers AS forced_turnovers,\n"
        "  ROUND(SAFE_DIVIDE(100 * o.points, o.possessions), 2) AS defensive_rating\n"
        "FROM team t JOIN team o ON o.game_id = t.game_id AND o.team_abbr = t.opponent_abbr"
    )


QUERY = ProcessorQuery("team_defense_game_summary", build)
