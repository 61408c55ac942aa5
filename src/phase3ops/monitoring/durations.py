"""Durations as people write them in specs (90s, 5m, 2h, 7d; 4w in the OpenSLO files)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAMES = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_PATTERN = re.compile(r"^([0-9]+)([smhdw])$")


def seconds(text: str) -> int:
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 5m, 2h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def api(text: str) -> str:
    """The API's form: '300s'."""
    return f"{seconds(text)}s"


def human(text: str) -> str:
    """'5m' -> '5 minutes', '1h' -> '1 hour'."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration")
    amount, unit = int(match.group(1)), match.group(2)
    return f"{amount} {_NAMES[unit]}{'' if amount == 1 else 's'}"


def human_seconds(total: int) -> str:
    """97200 -> '27 hours': in the largest unit that divides it."""
    for unit in ("d", "h", "m", "s"):
        if total % _UNITS[unit] == 0:
            return human(f"{total // _UNITS[unit]}{unit}")
    raise AssertionError("unreachable: every whole number of seconds divides by 1")
