"""What a health check looks at: the pipeline's state for the checked dates, and where it runs."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from phase3ops.checks.ledger import Ledger
from phase3ops.checks.state import DateState
from phase3ops.spec.pipeline import PipelineSpec
from phase3ops.warehouse.port import Warehouse

TARGET_ENV = "PHASE3OPS_TARGET"
STACK_ENV = "PHASE3OPS_STACK"


def target_from_environment() -> str:
    """`cloud` where the deployment exists to be checked (the scheduled jobs set it), `local` otherwise."""
    value = os.environ.get(TARGET_ENV, "local")
    if value not in ("local", "cloud"):
        from phase3ops.cloud import SettingError

        raise SettingError(f"{TARGET_ENV}={value!r} is not one of: local, cloud")
    return value


@dataclass
class CheckContext:
    spec: PipelineSpec
    first: dt.date
    last: dt.date
    now: dt.datetime
    states: dict[dt.date, DateState]
    warehouse: Warehouse
    target: str = "local"
    project: str = ""
    alerts_dir: Path | None = None
    stack: str | None = None  # whose alerts/stacks/<stack>.yaml overrides the deployment applied
    region: str = "us-west2"
    notes: dict[str, float] = field(default_factory=dict)
    ledger: Ledger | None = None  # every date since the ledger's start, whatever the window

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def reconcile_command(self) -> str:
        return f"scripts/reconcile_phase3_completion.py --days {max(self.days, 1)} --fix"
