"""`phase3ops health`: every check module run against the same state; the report; the exit code."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from phase3ops.checks import (
    completion_tracking,
    data_gates,
    deployment_state,
    duplicates,
    expected_work,
    game_day_triggers,
    overrides,
    scraper_timing,
)
from phase3ops.checks.context import CheckContext
from phase3ops.checks.ledger import Ledger, ledger_window
from phase3ops.checks.metrics import write_metrics
from phase3ops.checks.results import CheckResult, Status
from phase3ops.checks.state import DateState, read_state
from phase3ops.overrides.records import skipped_between

CHECKS = (
    completion_tracking,
    expected_work,
    game_day_triggers,
    data_gates,
    overrides,
    duplicates,
    scraper_timing,
    deployment_state,
)
log = logging.getLogger("phase3ops.checks")


def check_dates(
    orchestrator, warehouse, first: dt.date, last: dt.date, now: dt.datetime, **context_options
) -> tuple[CheckContext, list[CheckResult]]:
    """Read the dates' state once and run every check on it (the CLI and the local run-day both call this)."""
    states, ledger = read_window_and_ledger(orchestrator, warehouse, first, last, now)
    context = CheckContext(orchestrator.spec, first, last, now, states, warehouse, ledger=ledger, **context_options)
    return context, run_checks(context)


def read_ledger(orchestrator, warehouse, now: dt.datetime) -> Ledger | None:
    """Every date from the ledger's start (the same nine round trips as any window), and the operators' skips."""
    span = ledger_window(orchestrator.spec, now)
    if span is None:
        return None
    states = read_state(orchestrator.spec, orchestrator.store, orchestrator.claims, warehouse, *span)
    return Ledger(*span, states, skipped_between(orchestrator.store.client, orchestrator.spec, *span))


def read_window_and_ledger(
    orchestrator, warehouse, first: dt.date, last: dt.date, now: dt.datetime
) -> tuple[dict[dt.date, DateState], Ledger | None]:
    """The window's states and the ledger. The window usually lies inside the ledger's span (the last
    few dates): then one read of both spans serves the two, not two reads of the same dates."""
    spec = orchestrator.spec
    span = ledger_window(spec, now)
    apart = span is None or last < span[0] - dt.timedelta(days=1) or first > span[1] + dt.timedelta(days=1)
    if apart:  # an old window far from the ledger: reading what lies between would cost more than a second read
        return read_state(
            spec, orchestrator.store, orchestrator.claims, warehouse, first, last, orchestrator.holds
        ), read_ledger(orchestrator, warehouse, now)
    assert span is not None  # no span is always apart
    start, end = span
    both = read_state(
        spec, orchestrator.store, orchestrator.claims, warehouse, min(first, start), max(last, end), orchestrator.holds
    )
    window = {day: state for day, state in both.items() if first <= day <= last}
    owed = {day: state for day, state in both.items() if start <= day <= end}
    return window, Ledger(start, end, owed, skipped_between(orchestrator.store.client, spec, start, end))


def run_checks(context: CheckContext, checks=CHECKS) -> list[CheckResult]:
    results = []
    for check in checks:
        try:
            results.append(check.run(context))
        except Exception as exc:  # a check that cannot run is reported as such, never as passing
            log.warning("check %s could not run", check.NAME, exc_info=True)
            results.append(
                CheckResult(check.NAME, check.TITLE, Status.ERROR, f"could not check: {type(exc).__name__}: {exc}")
            )
    return results


def publish_metrics(
    context: CheckContext, results: list[CheckResult], writer: Callable = write_metrics
) -> dict[str, float]:
    values = {name: value for r in results if r.status is not Status.ERROR for name, value in r.metrics.items()}
    if context.target == "cloud" and values:
        writer(context.project, values, context.now)
    return values


def header(context: CheckContext) -> str:
    span = str(context.first) if context.first == context.last else f"{context.first} .. {context.last}"
    return f"Phase 3 health check: game dates {span} ({context.spec.timezone}), {context.target} target, at {context.now:%Y-%m-%d %H:%M %Z}"


def window(today: dt.date, date: dt.date | None, days: int | None) -> tuple[dt.date, dt.date]:
    """The game dates to check: `days` dates ending at `date` (default: today; one date when
    only `date` is given, the last 3 when neither is)."""
    last = date or today
    count = days if days is not None else (1 if date is not None else 3)
    return last - dt.timedelta(days=count - 1), last
