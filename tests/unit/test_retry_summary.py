"""Expected retries are summarised: one WARNING per date per interval, the rest at INFO."""

from __future__ import annotations

import logging

from phase3ops.orchestrator.retry_summary import RetrySummary


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_warning_per_date_per_interval_and_the_next_one_counts_the_quiet_ones():
    clock = FakeClock()
    summary = RetrySummary(interval=60, monotonic=clock)
    assert summary.level("2026-11-27") == (logging.WARNING, 0)
    for _ in range(20):
        clock.now += 1
        assert summary.level("2026-11-27") == (logging.INFO, 0)
    assert summary.level("2026-11-28") == (logging.WARNING, 0)  # another date is not summarised with it
    clock.now += 60
    assert summary.level("2026-11-27") == (logging.WARNING, 20)


def test_it_forgets_the_oldest_dates_instead_of_growing_without_bound():
    summary = RetrySummary(interval=60, monotonic=FakeClock())
    for day in range(5000):
        summary.level(f"date-{day}")
    assert len(summary._by_date) <= 1001
    assert summary.level("date-0") == (logging.WARNING, 0)  # forgotten: warned again
