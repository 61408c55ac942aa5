"""Processor building blocks: lock latency, and the cost of a de-duplicated MERGE write.

Run: .venv/bin/python bench/processing.py [--rows 100000] [--naive-rows 2000]

1. Lease lock acquire + release on the Firestore emulator (started here):
   p50/p99 uncontended, and with 5 contenders on the same key (a contender's
   latency includes its wait for the others).
2. Pre-write dedup + MERGE of --rows rows (10 % of them duplicate keys) into
   DuckDB, side by side with a naive row-by-row upsert (SELECT, then UPDATE
   or INSERT per row) on --naive-rows rows, both as rows per second.
   Target: the 100,000-row dedup + MERGE under 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

import duckdb  # noqa: E402

from phase3ops import emulators  # noqa: E402
from phase3ops.analytics.dedup import keep_newest  # noqa: E402
from phase3ops.spec.pipeline import load_pipeline_spec  # noqa: E402
from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse  # noqa: E402

DAY = dt.date(2026, 11, 28)
T0 = dt.datetime(2026, 11, 29, 6, tzinfo=dt.UTC)
MERGE_TARGET_SECONDS = 1.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def bench_locks(rounds: int) -> dict[str, list[float]]:
    from google.cloud import firestore

    from phase3ops.locking.lease_lock import LeaseLocks

    project = f"bench-locks-{uuid.uuid4().hex[:6]}"
    uncontended = []
    locks = LeaseLocks(firestore.Client(project=project), "locks", lease_seconds=60, max_wait_seconds=300)
    for index in range(rounds):
        started = time.perf_counter()
        locks.acquire("player_game_summary", DAY + dt.timedelta(days=index)).release()
        uncontended.append(time.perf_counter() - started)

    contended: list[float] = []
    guard = threading.Lock()

    def contender() -> None:
        own = LeaseLocks(firestore.Client(project=project), "locks", lease_seconds=60, max_wait_seconds=300)
        for _ in range(rounds // 5):
            started = time.perf_counter()
            own.acquire("team_offense_game_summary", DAY).release()
            with guard:
                contended.append(time.perf_counter() - started)

    threads = [threading.Thread(target=contender) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"uncontended": uncontended, "5 contenders": contended}


def summary_rows(count: int, duplicate_share: float = 0.1) -> list[dict]:
    unique = int(count * (1 - duplicate_share))
    rows = []
    for index in range(count):
        player = index % unique
        rows.append(
            {
                "game_date": DAY,
                "player_lookup": f"player{player:06d}",
                "player_name": f"Player {player}",
                "team_abbr": "BOS",
                "opponent_abbr": "NYK",
                "game_id": "g1",
                "minutes": 30.0,
                "points": index % 50,
                "rebounds": 5,
                "assists": 3,
                "fg_pct": 0.5,
                "true_shooting_pct": 0.55,
                "processed_at": T0 + dt.timedelta(seconds=index),
            }
        )
    return rows


def bench_merge(rows: int, directory: Path) -> tuple[float, int]:
    spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
    table = spec.processor("player_game_summary").table
    warehouse = DuckDBWarehouse(directory / "merge.duckdb")
    warehouse.ensure_tables([table])
    data = summary_rows(rows)
    started = time.perf_counter()
    kept = keep_newest(data, table.primary_key)
    warehouse.write_partition(table, DAY, kept)
    elapsed = time.perf_counter() - started
    assert warehouse.duplicate_counts(table, DAY, DAY) == {DAY: 0}
    return elapsed, warehouse.row_counts(table, DAY, DAY)[DAY]


def bench_naive(rows: int, directory: Path) -> float:
    """Row-by-row upsert: what a processor without staging + MERGE does."""
    conn = duckdb.connect(str(directory / "naive.duckdb"))
    conn.execute("CREATE TABLE t (game_date DATE, player_lookup VARCHAR, points BIGINT, processed_at TIMESTAMP)")
    data = summary_rows(rows)
    started = time.perf_counter()
    for row in data:
        key = (row["game_date"], row["player_lookup"])
        exists = conn.execute("SELECT 1 FROM t WHERE game_date = ? AND player_lookup = ?", key).fetchone()
        if exists:
            conn.execute(
                "UPDATE t SET points = ?, processed_at = ? WHERE game_date = ? AND player_lookup = ?",
                (row["points"], row["processed_at"].replace(tzinfo=None), *key),
            )
        else:
            conn.execute(
                "INSERT INTO t VALUES (?, ?, ?, ?)", (*key, row["points"], row["processed_at"].replace(tzinfo=None))
            )
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--naive-rows", type=int, default=2_000)
    parser.add_argument("--lock-rounds", type=int, default=200)
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="bench-processing-"))
    started = emulators.start_both(directory / "logs")
    try:
        os.environ.update(started[emulators.FIRESTORE].env)
        lock_latencies = bench_locks(args.lock_rounds)
    finally:
        for emulator in started.values():
            emulator.stop()

    print("lease lock acquire + release on the Firestore emulator")
    print(f"{'':16} {'ops':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in lock_latencies.items():
        print(f"{name:16} {len(values):6d} {percentile(values, 0.5):8.1f} {percentile(values, 0.99):8.1f}")

    merge_seconds, merged = bench_merge(args.rows, directory)
    naive_seconds = bench_naive(args.naive_rows, directory)
    merge_rate = args.rows / merge_seconds
    naive_rate = args.naive_rows / naive_seconds
    print(f"\nDuckDB writes ({args.rows:,} rows, 10 % duplicate keys -> {merged:,} rows)")
    print(f"{'':34} {'rows':>8} {'seconds':>9} {'rows/s':>10}")
    print(f"{'dedup + staging + one MERGE':34} {args.rows:8d} {merge_seconds:9.3f} {merge_rate:10.0f}")
    print(f"{'naive row-by-row upsert':34} {args.naive_rows:8d} {naive_seconds:9.3f} {naive_rate:10.0f}")
    print(
        f"\nratio dedup+MERGE / naive: {merge_rate / naive_rate:.0f}x rows/s "
        f"(naive at this rate: {args.rows / naive_rate:.0f} s for {args.rows:,} rows)"
    )
    met = merge_seconds < MERGE_TARGET_SECONDS
    print(f"target {args.rows:,}-row dedup + MERGE < {MERGE_TARGET_SECONDS:.0f} s: {'met' if met else 'NOT met'}")
    print(f"(median uncontended lock: {statistics.median(lock_latencies['uncontended']) * 1000:.1f} ms)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
