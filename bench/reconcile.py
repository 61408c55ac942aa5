"""Reconciliation over a year: round trips and time for 1 day vs 365 days.

Run: .venv/bin/python bench/reconcile.py

Starts the Firestore emulator and a DuckDB warehouse, records a completion
for every processor and a published trigger for each of 365 game dates and
writes their rows, then times the reconciliation's read (read_state) plus its
analysis (find_issues) for 1 and for 365 dates, counting the calls that go to
Firestore or the warehouse.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from phase3ops import emulators  # noqa: E402
from phase3ops.checks.reconcile import find_issues  # noqa: E402
from phase3ops.checks.state import read_state  # noqa: E402
from phase3ops.orchestrator.messages import Completion, Delivery  # noqa: E402
from phase3ops.spec.pipeline import load_pipeline_spec  # noqa: E402
from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse  # noqa: E402

DAYS = 365


def main() -> int:
    directory = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    started = emulators.start_both(directory / "logs")
    try:
        os.environ.update(started[emulators.FIRESTORE].env)
        os.environ.update(started[emulators.PUBSUB].env)
        from phase3ops.orchestrator.factory import build_orchestrator

        spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
        orchestrator = build_orchestrator(spec, "bench-reconcile")
        warehouse = DuckDBWarehouse(directory / "warehouse.duckdb")
        warehouse.ensure_tables([*(p.table for p in spec.processors), spec.raw_table(spec.game_schedule_table)])
        last = dt.date(2026, 6, 30)
        dates = [last - dt.timedelta(days=n) for n in range(DAYS)]
        now = dt.datetime.now(dt.UTC)
        print(f"seeding {DAYS} dates x {len(spec.processors)} processors ...", flush=True)
        for processor in spec.processors:
            rows = [
                dict.fromkeys(processor.table.column_names)
                | {k: f"k{n}" for k in processor.primary_key if k != "game_date"}
                | {"game_date": d}
                for n, d in enumerate(dates)
            ]
            warehouse.append(processor.table, rows)
        for day in dates:
            for processor in spec.processors:
                completion = Completion(
                    processor.name,
                    processor.name,
                    day,
                    "success",
                    f"seed-{processor.name}-{day}",
                    None,
                    processor.output_table,
                    1,
                )
                orchestrator.store.record(completion, Delivery(f"seed:{processor.name}:{day}", now, {}, b""))
            claim = orchestrator.claims.try_claim(day, f"seed:{day}", "seed", {"trigger_reason": "all_complete"}, [])
            assert claim is not None  # a fresh emulator holds no claim yet
            orchestrator.claims.mark_published(claim, {}, complete=True)

        calls: list[str] = []
        for obj, name in (
            (orchestrator.store, "records_between"),
            (orchestrator.claims, "claims_between"),
            (warehouse, "row_counts"),
        ):
            real = getattr(obj, name)

            def counted(*a, _real=real, _name=name, **k):
                calls.append(_name)
                return _real(*a, **k)

            setattr(obj, name, counted)

        print(f"\n{'dates':>6} {'read + analyse s':>17} {'store/warehouse calls':>22} {'issues':>7}")
        for span in (1, DAYS):
            calls.clear()
            begun = time.perf_counter()
            states = read_state(
                spec, orchestrator.store, orchestrator.claims, warehouse, last - dt.timedelta(days=span - 1), last
            )
            issues = find_issues(spec, states, now)
            elapsed = time.perf_counter() - begun
            print(f"{span:6d} {elapsed:17.2f} {len(calls):22d} {len(issues):7d}")
    finally:
        for emulator in started.values():
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
