"""Per rostered player of a team scheduled on the game date: rest, load and scoring form."""

from __future__ import annotations

import datetime as dt

from phase3ops.analytics.processors.base import ProcessorQuery, history_before, latest_raw, on_date, schedule_sides
from phase3ops.spec.pipeline import PipelineSpec


def build(spec: PipelineSpec, game_date: dt.date) -> str:
    return (
        f"WITH {schedule_sides(spec, game_date)},\n"
        f"roster AS ({latest_raw(spec.raw_table('rosters'), on_date(game_date))}),\n"
        f"history AS ({latest_raw(spec.raw_table('player_boxscores'), history_before(game_date))}),\n"
        "ranked AS (\n"
        "  SELECT player_lookup, game_date, points,\n"
        "    ROW_NUMBER() OVER (PARTITION BY player_lookup ORDER BY game_date DESC) AS recency\n"
        "  FROM history\n"
        ")\n"
        "SELECT s.game_date, r.player_lookup, r.player_name, s.team_abbr, s.opponent_abbr, s.game_id, s.is_home,\n"
        "  DATE_DIFF(s.game_date, MAX(h.game_date), DAY) AS days_rest,\n"
        "  COUNT(IF(h.game_date >= DATE_SUB(s.game_date, INTERVAL 7 DAY), 1, NULL)) AS games_last_7_days,\n"
        "  ROUND(AVG(IF(h.recency <= 5, h.points, NULL)), 2) AS avg_points_last_5\n"
        "FROM sides s JOIN roster r ON r.team_abbr = s.team_abbr\n"
        "LEFT JOIN ranked h ON h.player_lookup = r.player_lookup\n"
        "GROUP BY s.game_date, r.player_lookup, r.player_name, s.team_abbr, s.opponent_abbr, s.game_id, s.is_home"
    )


QUERY = ProcessorQuery("upcoming_player_game_context", build)
