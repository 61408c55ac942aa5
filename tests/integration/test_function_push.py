"""The orchestrator as deployed: the Functions Framework behind a Pub/Sub push subscription."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from phase3ops.alerts.specs import load_alert_specs
from phase3ops.function_server import start_function_server
from phase3ops.pubsub_admin import ensure_subscription
from tests.support.completions import completion
from tests.support.delivery import pull_everything
from tests.support.log_entries import cloud_run_entry, cloud_run_request_entry, matches
from tests.support.pipelines import exactly_once, make_pipeline, per_date_and_table

pytestmark = pytest.mark.emulators


def test_push_delivery_through_the_functions_framework(gcp_project, repo_root, emulator_hosts, tmp_path):
    from phase3ops.spec.pipeline import load_pipeline_spec

    spec = load_pipeline_spec(repo_root / "pipeline.yaml")
    pipeline = make_pipeline(gcp_project, spec)
    server = start_function_server(
        repo_root,
        {**emulator_hosts, "GOOGLE_CLOUD_PROJECT": gcp_project, "PHASE3OPS_PIPELINE": str(repo_root / "pipeline.yaml")},
        tmp_path / "function.log",
    )
    try:
        ensure_subscription(
            pipeline.subscriber,
            gcp_project,
            spec.topics.completion,
            "push-to-function",
            push_endpoint=server.push_endpoint(gcp_project, spec.topics.completion),
        )
        for name in spec.processor_names:
            message = completion(name, "2026-11-20")
            for _ in range(3):
                pipeline.publish(message)
        pipeline.publish(b"this is not json")

        triggers = pull_everything(
            pipeline.subscriber, pipeline.phase4_listener, settle_seconds=2, at_least=len(spec.processors)
        )
        decisions = _wait_for_decisions(tmp_path / "function.log", count=16)  # 15 completions + 1 bad message
    finally:
        server.stop()
        pipeline.stop()

    assert per_date_and_table(triggers) == exactly_once(spec, ["2026-11-20"])
    acknowledged = [
        d for d in decisions if d["outcome"] != "retry_later"
    ]  # a retry_later is answered 500 and redelivered
    assert len(acknowledged) == 16
    assert [d["severity"] for d in decisions if d["outcome"] == "rejected"] == ["ERROR"]
    assert sum(d["outcome"] == "triggered" for d in decisions) == 1


def test_an_expected_retry_answers_503_at_warning_without_a_traceback(gcp_project, repo_root, emulator_hosts, tmp_path):
    """A delivery that finds the date's claim held by another live instance asks for
    redelivery. That is routine: it must not log an ERROR (the orchestrator-errors alert
    counts those) nor Flask's traceback: one `retry_later` WARNING per date and minute."""
    from google.cloud import firestore

    from phase3ops.orchestrator.trigger_claims import TriggerClaims
    from phase3ops.spec.pipeline import load_pipeline_spec

    spec = load_pipeline_spec(repo_root / "pipeline.yaml")
    day = dt.date(2026, 11, 19)
    collections = spec.orchestrator.collections
    claims = TriggerClaims(
        firestore.Client(project=gcp_project), collections.triggers, collections.receipts, dt.timedelta(minutes=10)
    )
    assert claims.try_claim(day, "held-elsewhere", owner="another-instance", decision={}, messages=()) is not None
    server = start_function_server(
        repo_root,
        {**emulator_hosts, "GOOGLE_CLOUD_PROJECT": gcp_project, "PHASE3OPS_PIPELINE": str(repo_root / "pipeline.yaml")},
        tmp_path / "function.log",
    )
    endpoint = server.push_endpoint(gcp_project, spec.topics.completion)
    try:
        answers = [_post_push(endpoint, completion(name, day)) for name in spec.processor_names]
        last = completion(spec.processor_names[-1], day)
        answers += [_post_push(endpoint, last) for _ in range(3)]  # Pub/Sub redelivering it
        malformed = _post_push(endpoint, {"processor_name": "PlayerGameSummaryProcessor"})  # a real fault, for contrast
    finally:
        server.stop()

    assert answers[-4:] == [503] * 4 and set(answers) <= {204, 200, 503} and malformed in (200, 204), answers
    log = (tmp_path / "function.log").read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    retries = [line for line in lines if line.get("outcome") == "retry_later"]
    # One WARNING for the date; the retries after it within the minute at INFO (a summary, not a stream).
    assert len(retries) == answers.count(503) and [line["severity"] for line in retries] == ["WARNING"] + ["INFO"] * (
        len(retries) - 1
    )
    assert "Traceback" not in log and "Exception on /" not in log  # was: Flask's ERROR traceback for every redelivery
    assert [line["outcome"] for line in lines if line.get("severity") in ("ERROR", "CRITICAL")] == ["rejected"]

    # What the orchestrator-errors alert would count in Cloud Logging: the rejected message, not the retries
    # (neither their WARNING lines nor the request log's ERROR entry for each 503).
    log_metric = load_alert_specs(repo_root / "alerts").rule("orchestrator-errors").log_metric
    assert log_metric is not None
    errors_metric = log_metric["filter"]
    service = "phase3-to-phase4-orchestrator"
    entries = [cloud_run_entry(line, service) for line in log.splitlines()] + [
        cloud_run_request_entry(a, service) for a in answers
    ]
    assert [e.get("jsonPayload", e).get("outcome", e["logName"]) for e in entries if matches(errors_metric, e)] == [
        "rejected"
    ]


def _post_push(url: str, body: dict) -> int:
    """POST one Pub/Sub push request, as the push subscription would; the HTTP status."""
    envelope = {
        "message": {
            "data": base64.b64encode(json.dumps(body).encode()).decode(),
            "messageId": uuid.uuid4().hex,
            "publishTime": dt.datetime.now(dt.UTC).isoformat(),
        },
        "subscription": "projects/test/subscriptions/push-to-function",
    }
    request = urllib.request.Request(url, json.dumps(envelope).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _wait_for_decisions(log_path, count: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        decisions = [
            line for line in lines if line.get("event") == "phase3_completion" and line.get("outcome") != "retry_later"
        ]
        if len(decisions) >= count or time.monotonic() > deadline:
            time.sleep(1.0)  # anything beyond `count` (a redelivery) shows up in the assertion
            lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("event") == "phase3_completion"]
        time.sleep(0.2)
