"""`phase3ops health`: every check module run against the same state; the report; the exit code."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

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
from phase3ops.checks.metrics import write_metrics
from phase3ops.checks.results import CheckResult, Status
from phase3ops.checks.state import read_state
from phase3ops.checks.ledger import Ledger, ledger_window
from phase3ops.overrides.records import skipped_between

CHECKS = (completion_tracking, expected_work, game_day_triggers, data_gates, overrides, duplicates, scraper_timing, deployment_state)
log = logging.getLogger("phase3ops.checks")


def check_dates(orchestrator, warehouse, first: dt.date, last: dt.date, now: dt.datetime, **context_options) -> tuple[CheckContext, list[CheckResult]]:
    """Read the dates' state once and run every check on it (the CLI and the local run-day both call this)."""
    spec = orchestrator.spec
    states = read_state(spec, orchestrator.store, orchestrator.claims, warehouse, first, last, orchestrator.holds)
    context = CheckContext(spec, first, last, now, states, warehouse, ledger=read_ledger(orchestrator, warehouse, now), **context_options)
    return context, run_checks(context)


def read_ledger(orchestrator, warehouse, now: dt.datetime) -> Ledger | None:
    """Every date from the ledger's start (the same nine round trips as any window), and the operators' skips."""
    span = ledger_window(orchestrator.spec, now)
    if span is None:
        return None
    states = read_state(orchestrator.spec, orchestrator.store, orchestrator.claims, warehouse, *span)
    return Ledger(*span, states, skipped_between(orchestrator.store.client, orchestrator.spec, *span))


def run_checks(context: CheckContext, checks=CHECKS) -> list[CheckResult]:
    results = []
    for check in checks:
        try:
            results.append(check.run(context))
        except Exception as exc:  # a check that cannot run is reported as such, never as passing
            log.warning("check %s could not run", check.NAME, exc_info=True)
            results.append(CheckResult(check.NAME, check.TITLE, Status.ERROR, f"could not check: {type(exc).__name__}: {exc}"))
    return results


def publish_metrics(context: CheckContext, results: list[CheckResult], writer: Callable = write_metrics) -> dict[str, float]:
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
