"""Pre-write de-duplication keeps the newest row per primary key (the reference kept the first)."""

from __future__ import annotations

import datetime as dt

from phase3ops.analytics.dedup import keep_newest

T0 = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
KEY = ("game_date", "player_lookup")


def row(player: str, points: int, minutes_later: int | None) -> dict:
    processed = None if minutes_later is None else T0 + dt.timedelta(minutes=minutes_later)
    return {"game_date": dt.date(2026, 11, 28), "player_lookup": player, "points": points, "processed_at": processed}


def test_newest_wins_even_when_it_comes_first():
    rows = [row("a", 30, 10), row("a", 12, 0), row("b", 7, 0)]
    kept = {r["player_lookup"]: r["points"] for r in keep_newest(rows, KEY)}
    assert kept == {"a": 30, "b": 7}


def test_newest_wins_when_it_comes_last():
    rows = [row("a", 12, 0), row("b", 7, 0), row("a", 30, 10)]
    assert {r["player_lookup"]: r["points"] for r in keep_newest(rows, KEY)} == {"a": 30, "b": 7}


def test_ties_go_to_the_later_row_and_missing_timestamps_lose():
    assert [r["points"] for r in keep_newest([row("a", 1, 5), row("a", 2, 5)], KEY)] == [2]
    assert [r["points"] for r in keep_newest([row("a", 1, 5), row("a", 2, None)], KEY)] == [1]
    assert [r["points"] for r in keep_newest([row("a", 1, None), row("a", 2, None)], KEY)] == [2]


def test_one_row_per_key_for_any_input():
    rows = [row(f"p{i % 7}", i, i % 3) for i in range(100)]
    kept = keep_newest(rows, KEY)
    assert len(kept) == 7
    assert len({(r["game_date"], r["player_lookup"]) for r in kept}) == 7
