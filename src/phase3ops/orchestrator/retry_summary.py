"""Expected retries, summarised: one WARNING per game date per interval, the rest at INFO.

While a claim's lease runs out (a crashed instance), every redelivery of every
completion of that date asks to be retried; logging each at WARNING is a
stream nobody reads. The first in an interval is a WARNING; the ones after it
are INFO, and the next WARNING says how many there were.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

SUMMARY_INTERVAL_SECONDS = 60.0
_KEEP = 1000  # dates remembered per instance; the oldest go first


class RetrySummary:
    def __init__(self, interval: float = SUMMARY_INTERVAL_SECONDS, monotonic: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._by_date: dict[str, tuple[float, int]] = {}  # date -> (when it was last a WARNING, INFO ones since)

    def level(self, game_date: str | None) -> tuple[int, int]:
        """The level for this retry, and how many retries of the date were logged at INFO since its last WARNING."""
        key = game_date or "-"
        with self._lock:
            now = self._monotonic()
            warned_at, quiet = self._by_date.get(key, (None, 0))
            if warned_at is None or now - warned_at >= self.interval:
                self._by_date[key] = (now, 0)
                if len(self._by_date) > _KEEP:
                    del self._by_date[next(iter(self._by_date))]
                return logging.WARNING, quiet
            self._by_date[key] = (warned_at, quiet + 1)
            return logging.INFO, 0
