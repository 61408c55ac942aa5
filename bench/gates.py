"""What the data gates cost per ready date, on the embedded warehouse (DuckDB).

Run: .venv/bin/python bench/gates.py [--days 120] [--games 8]

Writes `days` synthetic game days and every processor's rows for them into a
DuckDB file, then evaluates the shipped gates of one ready date many times
and prints the median and p99 of that one query, and how many queries a
ready date costs (always one). Only a date that the completion rules call
ready pays it: the per-event path never queries the warehouse.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT))

from phase3ops.gates.evaluate import GateEvaluator  # noqa: E402
from phase3ops.spec.pipeline import load_pipeline_spec  # noqa: E402
from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse  # noqa: E402
from tests.support.game_days import processed_day  # noqa: E402


class Counting(DuckDBWarehouse):
    queries = 0

    def query(self, bigquery_sql):
        self.queries += 1
        return super().query(bigquery_sql)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60, help="game days in the warehouse")
    parser.add_argument("--games", type=int, default=8, help="games per day")
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
    warehouse = Counting(Path(tempfile.mkdtemp(prefix="bench-gates-")) / "warehouse.duckdb")
    last = dt.date(2026, 11, 27)
    started = time.perf_counter()
    for offset in range(args.days):
        processed_day(warehouse, spec, last - dt.timedelta(days=offset), games=args.games)
    print(f"warehouse: {args.days} game days x {args.games} games, written in {time.perf_counter() - started:.0f} s")
    evaluator = GateEvaluator(spec, lambda: warehouse)
    mode = spec.mode("overnight")
    evaluator.evaluate(last, mode)  # the first connection is not what a ready date pays
    timings, before = [], warehouse.queries
    for _ in range(args.samples):
        report = evaluator.evaluate(last, mode)
        timings.append(report.query_seconds)
    assert report.passed, report.summary
    timings.sort()
    print(
        f"gates of one ready date ({len(report.results)} gates, overnight mode): "
        f"{(warehouse.queries - before) / args.samples:.0f} query, median {statistics.median(timings) * 1000:.1f} ms, "
        f"p99 {timings[int(0.99 * len(timings))] * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
