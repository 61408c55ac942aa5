"""Least privilege, verified by tracing: what each workload touched is what phase3ops.access declares.

The local environment's components and the scheduled commands run with
their Firestore, Pub/Sub and warehouse clients instrumented
(tests/support/access_trace: a sitecustomize on PYTHONPATH, inherited by
every process). A chaos game day, a Phase 2 trigger naming several
processors, malformed messages, then the three scheduled commands as their
jobs run them (reconcile --fix, health, holds --recheck). Then, per
workload: traced <= declared (a use nobody granted fails in the cloud with
PermissionDenied) and declared <= traced, but for the accesses this run
cannot provoke, each allowed with the test that does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from phase3ops.access import workload_access
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.cli_process import phase3ops, state_of
from tests.support.repo_copy import REPO_ROOT

pytestmark = [pytest.mark.emulators, pytest.mark.minutes_long(seconds=100)]
TRACER = REPO_ROOT / "tests" / "support" / "access_trace"
SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
C = SPEC.orchestrator.collections
CHAOS_DAY = "2026-11-20"
# Declared, and not provoked by this run: each is exercised where the reason says.
NOT_PROVOKED_HERE = {
    ("orchestrator", "firestore", "write", C.holds): "a gate holds a date before its deadline: test_data_gates.py",
    ("receipts", "firestore", "write", C.rejected): "a malformed Phase 4 message: test_hostile_deliveries.py "
    "(one here would reach the Phase 4 stand-in too)",
    ("reconcile", "firestore", "write", C.completions): "rows without a completion: test_operator_checks.py "
    "test_rows_without_a_completion_are_found_and_repaired_with_exactly_one_trigger",
    ("reconcile", "firestore", "write", C.triggers): "a stale pending claim finished: test_operator_checks.py "
    "test_a_stale_pending_claim_is_reported_then_finished_once",
    ("reconcile", "pubsub", "publish", SPEC.topics.phase4_trigger): "the same stale claim's messages",
    ("reconcile", "firestore", "write", C.holds): "the recheck releases a held date: test_data_gates.py "
    "test_a_held_date_fails_the_health_check_and_the_recheck_releases_it_when_data_lands",
}


def traced(trace_dir: Path) -> dict[str, set[tuple[str, str, str]]]:
    touched: dict[str, set[tuple[str, str, str]]] = {}
    for path in trace_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            touched.setdefault(entry["workload"], set()).add((entry["service"], entry["verb"], entry["resource"]))
    return touched


def as_phase2(local_env: dict[str, str], game_date: dt.date, processors: list[str]) -> None:
    """Phase 2's part: the raw data, one trigger naming several processors, and two malformed messages."""
    import google.cloud.pubsub_v1 as pubsub_v1

    from phase3ops.analytics.synthetic import generate_game_day, write_game_day
    from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse

    saved = {k: os.environ.get(k) for k in local_env}
    os.environ.update(local_env)
    try:
        warehouse = DuckDBWarehouse(local_env["PHASE3OPS_WAREHOUSE"].split(":", 1)[1])
        write_game_day(warehouse, SPEC, generate_game_day(SPEC, game_date, games=2, seed=3))
        publisher = pubsub_v1.PublisherClient()
        project = local_env["GOOGLE_CLOUD_PROJECT"]
        trigger = publisher.topic_path(project, SPEC.topics.phase3_trigger)
        message = {"game_date": game_date.isoformat(), "processors": processors, "correlation_id": "phase2-traced"}
        publisher.publish(trigger, json.dumps(message).encode()).result(timeout=30)
        publisher.publish(trigger, b"{not json").result(timeout=30)
        completion = publisher.topic_path(project, SPEC.topics.completion)
        publisher.publish(completion, b'{"processor_name": 7}').result(timeout=30)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def completions(local_env: dict[str, str], game_date: dt.date) -> int:
    from google.cloud import firestore

    os.environ["FIRESTORE_EMULATOR_HOST"] = local_env["FIRESTORE_EMULATOR_HOST"]
    client = firestore.Client(project=local_env["GOOGLE_CLOUD_PROJECT"])
    refs = [client.collection(C.completions).document(f"{game_date}_{n}") for n in SPEC.processor_names]
    return sum(1 for snapshot in client.get_all(refs) if snapshot.exists)


def test_each_workload_touches_exactly_what_it_is_granted(tmp_path, monkeypatch):
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    run_dir, trace_dir = tmp_path / "local", tmp_path / "trace"
    trace_dir.mkdir()
    path = os.pathsep.join(filter(None, [str(TRACER), os.environ.get("PYTHONPATH")]))
    tracing = {"PYTHONPATH": path, "PHASE3OPS_ACCESS_TRACE": str(trace_dir)}
    up = phase3ops("local", "up", "--run-dir", str(run_dir), env=tracing)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        day = phase3ops(
            "local", "run-day", "--run-dir", str(run_dir), "--date", CHAOS_DAY, "--games", "2", "--chaos", env=tracing
        )
        assert day.returncode == 0, day.stdout[-3000:]
        state = state_of(run_dir)
        local_env = {
            "GOOGLE_CLOUD_PROJECT": state["project"],
            "PHASE3OPS_PIPELINE": state["pipeline"],
            "PHASE3OPS_WAREHOUSE": f"duckdb:{state['warehouse']}",
            "PHASE3OPS_TARGET": "local",
            "FIRESTORE_EMULATOR_HOST": state["components"]["firestore"]["address"],
            "PUBSUB_EMULATOR_HOST": state["components"]["pubsub"]["address"],
        }
        # Two days ago where the games are: owed by now, and inside the scheduled jobs' --days 3.
        recent = (dt.datetime.now(ZoneInfo(SPEC.timezone)) - dt.timedelta(days=2)).date()
        left_out = SPEC.processor_names[-1]
        as_phase2(local_env, recent, [n for n in SPEC.processor_names if n != left_out])
        deadline = time.monotonic() + 120
        while completions(local_env, recent) < len(SPEC.processor_names) - 1 and time.monotonic() < deadline:
            time.sleep(1)
        assert completions(local_env, recent) == len(SPEC.processor_names) - 1
        for command in (["reconcile", "--fix"], ["health"], ["holds", "--recheck"]):
            done = phase3ops(*command, "--days", "3", "--findings-exit-zero", env={**local_env, **tracing})
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        deadline = time.monotonic() + 120  # the re-requested run, through the service and the orchestrator
        while completions(local_env, recent) < len(SPEC.processor_names) and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        phase3ops("local", "down", "--run-dir", str(run_dir))

    touched = traced(trace_dir)
    assert not [t for ts in touched.values() for t in ts if t[0] == "tracer"], touched  # the tracer understood all
    declared = {workload: access.touches() for workload, access in workload_access(SPEC).items()}
    assert set(touched) == set(declared), (set(touched), set(declared))
    for workload, accesses in sorted(declared.items()):
        ungranted = touched[workload] - accesses
        assert not ungranted, f"{workload} touched what it is not granted: {sorted(ungranted)}"
        unused = {a for a in accesses - touched[workload] if (workload, *a) not in NOT_PROVOKED_HERE}
        assert not unused, f"{workload} is granted what it never touched here: {sorted(unused)}"
    provoked_anyway = [key for key in NOT_PROVOKED_HERE if key[1:] in touched.get(key[0], set())]
    assert not provoked_anyway, f"now traced, drop from NOT_PROVOKED_HERE: {provoked_anyway}"
