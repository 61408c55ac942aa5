"""Each SLI event metric counts the same events in the orchestrator's real log lines (through the
log-based metric's filter) as the SLO report counts in what it stored."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from phase3ops.function_server import start_function_server
from phase3ops.orchestrator.factory import build_orchestrator
from phase3ops.slos.event_metrics import EVENT_METRICS
from phase3ops.slos.history import read_history
from phase3ops.spec.pipeline import load_pipeline_spec
from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse
from tests.integration.test_function_push import _post_push
from tests.support.completions import completion
from tests.support.game_days import processed_day
from tests.support.log_entries import cloud_run_entry, matches
from tests.support.pipelines import make_pipeline

pytestmark = pytest.mark.emulators

SERVICE = "phase3-to-phase4-orchestrator"


def test_every_event_metric_counts_in_the_logs_what_the_report_counts_in_the_store(
    gcp_project, repo_root, emulator_hosts, tmp_path, monkeypatch
):
    for name, value in emulator_hosts.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", gcp_project)
    spec = load_pipeline_spec(repo_root / "pipeline.yaml")
    pipeline = make_pipeline(gcp_project, spec)
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    past = dt.date(2026, 11, 20)  # long past its deadline: triggered late, and degraded (no rows: the gates fail)
    complete = dt.date(2026, 11, 28)  # late too, on data that passes every gate
    warehouse_file = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(warehouse_file)
    processed_day(warehouse, spec, complete)
    warehouse.close()
    server = start_function_server(
        repo_root,
        {
            **emulator_hosts,
            "GOOGLE_CLOUD_PROJECT": gcp_project,
            "PHASE3OPS_PIPELINE": str(repo_root / "pipeline.yaml"),
            "PHASE3OPS_WAREHOUSE": f"duckdb:{warehouse_file}",
        },
        tmp_path / "function.log",
    )
    endpoint = server.push_endpoint(gcp_project, spec.topics.completion)
    try:
        answers = []
        for name in spec.processor_names:
            first = completion(name, past, status="failed" if name == spec.processor_names[0] else "success")
            answers.append(_post_push(endpoint, first))
            answers.append(_post_push(endpoint, first))  # Pub/Sub redelivers it: a duplicate, in both counts
        answers.append(_post_push(endpoint, completion(spec.processor_names[0], past)))  # the re-run that succeeds
        answers.append(_post_push(endpoint, {"processor_name": "PlayerGameSummaryProcessor"}))  # refused
        answers.append(_post_push(endpoint, completion(spec.processor_names[1], "2026-11-21", status="failed")))
        answers += [_post_push(endpoint, completion(name, complete)) for name in spec.processor_names]
        answers.append(
            _post_push(endpoint, completion(spec.processor_names[2], "2026-11-22", status="no_data"))
        )  # not a failure
    finally:
        server.stop()
        pipeline.stop()
    assert 503 not in answers, answers  # nothing left for a redelivery to change after the counts
    lines = (tmp_path / "function.log").read_text().splitlines()
    entries = [cloud_run_entry(line, SERVICE) for line in lines if line.startswith("{")]
    in_logs = Counter(name for name, metric in EVENT_METRICS.items() for e in entries if matches(metric.filter, e))

    orchestrator = build_orchestrator(spec)
    history = read_history(spec, orchestrator.store, orchestrator.claims, started, dt.datetime.now(dt.UTC))
    in_store = Counter({name: len(metric.stored(history)) for name, metric in EVENT_METRICS.items()})

    assert dict(in_logs) == {k: v for k, v in in_store.items() if v}, _decisions(lines)
    # Not agreement on nothing: every kind of event happened.
    # Each processor for both dates, the re-run, the failure and the no-data run of two other dates.
    runs = 2 * len(spec.processor_names) + 3
    assert (in_store["phase3_processor_runs"], in_store["phase3_processor_runs_failed"]) == (runs, 2)
    assert in_store["phase3_completions_refused"] == 1
    assert in_store["phase3_completion_deliveries"] == runs + 1
    assert in_store["phase3_phase4_triggers"] == 2
    # Both dates went out late (a deadline the real clock has not passed depends on the hour the test
    # runs; tests/unit/test_slo_report.py holds the deadline arithmetic both sides share); one degraded.
    assert in_store["phase3_phase4_triggers_on_time"] == 0
    assert in_store["phase3_phase4_triggers_complete"] == 1


def _decisions(lines: list[str]) -> list[str]:
    found = []
    for line in lines:
        if line.startswith("{"):
            data = json.loads(line)
            found.append(f"{data.get('event')} {data.get('outcome')} {data.get('record')} {data.get('degraded')}")
    return found
