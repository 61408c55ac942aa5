"""Scraper timing: the first scrape of a game date's results lands in the expected window.

Both ends are in the pipeline time zone, on the day after the game: the
window runs from midnight to `first_run_by`. (The reference compared a UTC
time of one day with a local window of another, and always warned.)
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo

from phase3ops.checks.context import CheckContext
from phase3ops.checks.results import CheckResult, Status
from phase3ops.warehouse.sql import date_literal, quote

NAME = "scraper_timing"
TITLE = "Scraper timing"
EXPLANATION = "Everything downstream starts from the first scrape; a late one delays Phase 3 and Phase 4 in turn."
log = logging.getLogger("phase3ops.checks")


def run(context: CheckContext) -> CheckResult:
    timing = context.spec.scraper_timing
    table = context.spec.raw_table(timing.table)
    zone = zoneinfo.ZoneInfo(context.spec.timezone)
    rows = context.warehouse.query(
        f"SELECT game_date, MIN(scraped_at) AS first_scrape FROM {quote(table.dataset, table.name)} "
        f"WHERE game_date BETWEEN {date_literal(context.first)} AND {date_literal(context.last)} "
        "GROUP BY game_date ORDER BY game_date"
    )
    findings, details = [], []
    for row in rows:
        day = row["game_date"]
        first = row["first_scrape"].astimezone(zone)
        window_start = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), zone)
        deadline = dt.datetime.combine(day + dt.timedelta(days=1), timing.first_run_by, zone)
        details.append(
            f"{day}: first scrape {first:%Y-%m-%d %H:%M %Z}, expected {window_start:%Y-%m-%d %H:%M}-{deadline:%H:%M %Z}"
        )
        if first > deadline:
            late = (first - deadline).total_seconds() / 60
            findings.append(
                f"{day}: first scrape at {first:%Y-%m-%d %H:%M %Z}, {late:.0f} min after {deadline:%H:%M %Z}"
            )
            log.warning(
                "first scraper run for %s was late",
                day,
                extra={"event": "scraper_first_run_late", "game_date": day.isoformat(), "minutes_late": round(late)},
            )
    if not rows:
        return CheckResult(
            NAME, TITLE, Status.SKIPPED, f"no {table.name} rows for the checked dates (no games)", EXPLANATION
        )
    return CheckResult(
        NAME,
        TITLE,
        Status.FAILED if findings else Status.OK,
        f"{len(rows)} dates with games, {len(findings)} late"
        if findings
        else f"{len(rows)} dates with games, all on time",
        EXPLANATION,
        "check the scraper's schedule and last run (Phase 2); Phase 3 reruns itself when the data lands",
        findings,
        details,
    )
