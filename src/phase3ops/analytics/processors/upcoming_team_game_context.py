"""Per team scheduled on the game date: rest, recent load and recent form before it."""

from __future__ import annotations

import datetime as dt

from phase3ops.analytics.processors.base import ProcessorQuery, history_before, latest_raw, schedule_sides
from phase3ops.spec.pipeline import PipelineSpec


def build(spec: PipelineSpec, game_date: dt.date) -> str:
    return (
        f"WITH {schedule_sides(spec, game_date)},\n"
        f"history AS ({latest_raw(spec.raw_table('team_boxscores'), history_before(game_date))}),\n"
        "results AS (\n"
        "  SELECT h.team_abbr, h.game_date, h.points > o.points AS won\n"
        "  FROM history h JOIN history o ON o.game_id = h.game_id AND o.team_abbr = h.opponent_abbr\n"
        "),\n"
        "ranked AS (\n"
        "  SELECT team_abbr, game_date, won, ROW_NUMBER() OVER (PARTITION BY team_abbr ORDER BY game_date DESC) AS recency\n"
        "  FROM results\n"
        ")\n"
        "SELECT s.game_date, s.team_abbr, s.opponent_abbr, s.game_id, s.is_home,\n"
        "  DATE_DIFF(s.game_date, MAX(r.game_date), DAY) AS days_rest,\n"
        "  COUNT(IF(r.game_date >= DATE_SUB(s.game_date, INTERVAL 7 DAY), 1, NULL)) AS games_last_7_days,\n"
        "  ROUND(AVG(IF(r.recency <= 10, IF(r.won, 1.0, 0.0), NULL)), 3) AS win_pct_last_10\n"
        "FROM sides s LEFT JOIN ranked r ON r.team_abbr = s.team_abbr\n"
        "GROUP BY s.game_date, s.team_abbr, s.opponent_abbr, s.game_id, s.is_home"
    )


QUERY = ProcessorQuery("upcoming_team_game_context", build)
