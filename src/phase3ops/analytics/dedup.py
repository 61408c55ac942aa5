"""Pre-write de-duplication: one row per primary key, the newest by processed_at.

The reference kept the *first* row it saw per key, so an older computation
could win over a newer one. Ties on processed_at go to the row that came
later in the batch (the later arrival).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from phase3ops.spec.pipeline import FRESHNESS_COLUMN


def keep_newest(
    rows: Iterable[Mapping[str, Any]], key: Sequence[str], freshness: str = FRESHNESS_COLUMN
) -> list[Mapping[str, Any]]:
    newest: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        identity = tuple(row[column] for column in key)
        current = newest.get(identity)
        if current is None or _freshness(row, freshness) >= _freshness(current, freshness):
            newest[identity] = row
    return list(newest.values())


def _freshness(row: Mapping[str, Any], column: str) -> tuple:
    value = row.get(column)
    return (0,) if value is None else (1, value)  # no timestamp is never newer than a timestamp
