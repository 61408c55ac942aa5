"""A deterministic synthetic game day: the raw tables Phase 2 would have written.

The same (seed, game date, games) always gives the same schedule, rosters
and box scores, so tests, benchmarks and the local environment run the real
processors on real rows, and a person can re-run a day and compare.
`stale_scrapes` adds an older, different copy of some rows, as a scraper
that ran twice leaves behind; processors must read the newest.
"""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from dataclasses import dataclass
from typing import Any

from phase3ops.spec.pipeline import PipelineSpec
from phase3ops.warehouse.port import Warehouse

TEAMS = (
    "ATL",
    "BOS",
    "BKN",
    "CHA",
    "CHI",
    "CLE",
    "DAL",
    "DEN",
    "DET",
    "GSW",
    "HOU",
    "IND",
    "LAC",
    "LAL",
    "MEM",
    "MIA",
    "MIL",
    "MIN",
    "NOP",
    "NYK",
    "OKC",
    "ORL",
    "PHI",
    "PHX",
    "POR",
    "SAC",
    "SAS",
    "TOR",
    "UTA",
    "WAS",
)
_FIRST = (
    "jalen",
    "marcus",
    "devin",
    "tyrese",
    "jaylen",
    "luka",
    "anthony",
    "kevin",
    "jamal",
    "darius",
    "malik",
    "trae",
    "scottie",
)
_LAST = (
    "brooks",
    "carter",
    "ellis",
    "fox",
    "green",
    "harris",
    "irving",
    "james",
    "knox",
    "lowry",
    "mitchell",
    "nance",
    "owens",
)
ROSTER_SIZE = 13
TIPOFF_LOCAL = dt.time(19, 30)


@dataclass(frozen=True)
class GameDay:
    game_date: dt.date
    tables: dict[str, list[dict[str, Any]]]
    stale: dict[str, list[dict[str, Any]]]

    @property
    def games(self) -> int:
        return len(self.tables["schedule"])


def roster(team: str, seed: int) -> list[tuple[str, str]]:
    """(player_lookup, player_name) for a team; stable across dates for a seed."""
    rng = random.Random(f"{seed}:roster:{team}")
    players: list[tuple[str, str]] = []
    used = set()
    while len(players) < ROSTER_SIZE:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        lookup = f"{first}{last}{team.lower()}"
        if lookup not in used:
            used.add(lookup)
            players.append((lookup, f"{first.title()} {last.title()}"))
    return players


def generate_game_day(
    spec: PipelineSpec, game_date: dt.date, games: int = 5, seed: int = 7, stale_scrapes: bool = False
) -> GameDay:
    if not 1 <= games <= len(TEAMS) // 2:
        raise ValueError(f"games must be between 1 and {len(TEAMS) // 2}, got {games}")
    rng = random.Random(f"{seed}:{game_date.isoformat()}")
    zone = zoneinfo.ZoneInfo(spec.timezone)
    tipoff = dt.datetime.combine(game_date, TIPOFF_LOCAL, zone).astimezone(dt.UTC)
    scraped_at = tipoff + dt.timedelta(hours=5)
    teams = list(TEAMS)
    rng.shuffle(teams)

    tables: dict[str, list[dict[str, Any]]] = {
        "schedule": [],
        "rosters": [],
        "player_boxscores": [],
        "team_boxscores": [],
    }
    for index in range(games):
        away, home = teams[2 * index], teams[2 * index + 1]
        game_id = f"{game_date:%Y%m%d}_{away}_{home}"
        tables["schedule"].append(
            {
                "game_date": game_date,
                "game_id": game_id,
                "home_team_abbr": home,
                "away_team_abbr": away,
                "start_time": tipoff + dt.timedelta(minutes=30 * (index % 3)),
                "scraped_at": scraped_at,
            }
        )
        totals = {}
        for team, opponent, is_home in ((home, away, True), (away, home, False)):
            players = [_player_line(rng, game_date, game_id, team, opponent, p, scraped_at) for p in roster(team, seed)]
            for lookup, name in roster(team, seed):
                tables["rosters"].append(
                    {
                        "game_date": game_date,
                        "team_abbr": team,
                        "player_lookup": lookup,
                        "player_name": name,
                        "scraped_at": scraped_at,
                    }
                )
            tables["player_boxscores"].extend(players)
            totals[team] = _team_line(game_date, game_id, team, opponent, is_home, players, scraped_at)
        if totals[home]["points"] == totals[away]["points"]:  # no ties in basketball: overtime goes to the home team
            totals[home]["points"] += 2
        tables["team_boxscores"].extend(totals.values())

    stale: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
    if stale_scrapes:
        for name in ("player_boxscores", "team_boxscores"):
            for row in tables[name][::3]:
                stale[name].append(
                    {**row, "points": row["points"] + 17, "scraped_at": row["scraped_at"] - dt.timedelta(hours=1)}
                )
    return GameDay(game_date, tables, stale)


def write_game_day(warehouse: Warehouse, spec: PipelineSpec, day: GameDay) -> dict[str, int]:
    """Replace the day's raw rows with this day's, then append its stale copies."""
    warehouse.ensure_tables(spec.raw_tables)
    written = {}
    for table in spec.raw_tables:
        written[table.name] = warehouse.write_partition(table, day.game_date, day.tables[table.name])
        if day.stale.get(table.name):
            written[table.name] += warehouse.append(table, day.stale[table.name])
    return written


DNP_SHARE = 0.25  # about a quarter of a roster does not play (the reference measured 37 % of rows)


def _player_line(rng, game_date, game_id, team, opponent, player, scraped_at) -> dict[str, Any]:
    lookup, name = player
    dnp = rng.random() < DNP_SHARE
    minutes = 0.0 if dnp else round(max(1.0, rng.gauss(24, 9)), 1)
    fg_attempted = int(minutes * rng.uniform(0.25, 0.55))
    fg_made = int(fg_attempted * rng.uniform(0.35, 0.6))
    three_made = min(fg_made, int(fg_made * rng.uniform(0.0, 0.5)))
    ft_attempted = int(minutes * rng.uniform(0.0, 0.2))
    ft_made = int(ft_attempted * rng.uniform(0.6, 0.9))
    return {
        "game_date": game_date,
        "game_id": game_id,
        "player_lookup": lookup,
        "player_name": name,
        "team_abbr": team,
        "opponent_abbr": opponent,
        "minutes": minutes,
        "points": 2 * fg_made + three_made + ft_made,
        "rebounds": int(minutes * rng.uniform(0.05, 0.35)),
        "assists": int(minutes * rng.uniform(0.02, 0.3)),
        "fg_made": fg_made,
        "fg_attempted": fg_attempted,
        "three_made": three_made,
        "ft_made": ft_made,
        "ft_attempted": ft_attempted,
        "turnovers": int(minutes * rng.uniform(0.0, 0.1)),
        "dnp_reason": "Coach's Decision" if dnp else None,
        "scraped_at": scraped_at,
    }


def _team_line(game_date, game_id, team, opponent, is_home, players, scraped_at) -> dict[str, Any]:
    def total(column: str) -> int:
        return sum(p[column] for p in players)

    return {
        "game_date": game_date,
        "game_id": game_id,
        "team_abbr": team,
        "opponent_abbr": opponent,
        "is_home": is_home,
        "points": total("points"),
        "fg_made": total("fg_made"),
        "fg_attempted": total("fg_attempted"),
        "three_made": total("three_made"),
        "rebounds": total("rebounds"),
        "assists": total("assists"),
        "turnovers": total("turnovers"),
        "possessions": round(total("fg_attempted") + 0.44 * total("ft_attempted") + total("turnovers"), 1),
        "scraped_at": scraped_at,
    }
