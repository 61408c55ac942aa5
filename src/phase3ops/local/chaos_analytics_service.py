"""The analytics service as the local chaos game day serves it: the production app, with one fault
it can be armed with by a file the chaos day writes ($PHASE3OPS_CHAOS_RUN_FAILS, holding
"<processor> <game date>"), consumed so it happens once per arming: that processor's next run for
that date fails reading the warehouse, as a BigQuery timeout would. The run reports `failed`, the
push is answered 500, Pub/Sub delivers it again and the next run succeeds: one bad event in the
analytics SLO's budget.

Never deployed: the image runs phase3ops.analytics.service.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

from flask import Flask

from phase3ops.analytics.runner import ProcessorRunner
from phase3ops.analytics.service import create_app_from_environment
from phase3ops.local.state import RUN_FAILS_ENV

_consumed = threading.Lock()


class ChaosReadTimeout(RuntimeError):
    """The injected failure: the warehouse read timed out."""


def _fails_now(processor: str, game_date: dt.date) -> bool:
    armed = os.environ.get(RUN_FAILS_ENV)
    if not armed:
        return False
    with _consumed:
        path = Path(armed)
        if not path.exists() or path.read_text().split() != [processor, game_date.isoformat()]:
            return False
        path.unlink()
        return True


def arm(runner: ProcessorRunner) -> None:
    run_holding = runner._run_holding

    def failing_once(processor, game_date, *args, **kwargs):
        if _fails_now(processor.name, game_date):
            raise ChaosReadTimeout(f"chaos: reading the warehouse for {processor.name} {game_date} timed out")
        return run_holding(processor, game_date, *args, **kwargs)

    runner._run_holding = failing_once  # type: ignore[method-assign]


def create_chaos_app() -> Flask:
    """Gunicorn's app factory for the local environment."""
    return create_app_from_environment(arm)
