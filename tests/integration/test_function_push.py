"""The orchestrator as deployed: the Functions Framework behind a Pub/Sub push subscription."""

from __future__ import annotations

import json
import time

import pytest

from phase3ops.function_server import start_function_server
from phase3ops.pubsub_admin import ensure_subscription
from tests.integration.conftest import exactly_once, make_pipeline, per_date_and_table
from tests.support.completions import completion
from tests.support.delivery import pull_everything

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

        triggers = pull_everything(pipeline.subscriber, pipeline.phase4_listener, settle_seconds=2, at_least=len(spec.processors))
        decisions = _wait_for_decisions(tmp_path / "function.log", count=16)  # 15 completions + 1 bad message
    finally:
        server.stop()
        pipeline.stop()

    assert per_date_and_table(triggers) == exactly_once(spec, ["2026-11-20"])
    acknowledged = [d for d in decisions if d["outcome"] != "retry_later"]  # a retry_later is answered 500 and redelivered
    assert len(acknowledged) == 16
    assert [d["severity"] for d in decisions if d["outcome"] == "rejected"] == ["ERROR"]
    assert sum(d["outcome"] == "triggered" for d in decisions) == 1


def _wait_for_decisions(log_path, count: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        decisions = [line for line in lines if line.get("event") == "phase3_completion" and line.get("outcome") != "retry_later"]
        if len(decisions) >= count or time.monotonic() > deadline:
            time.sleep(1.0)  # anything beyond `count` (a redelivery) shows up in the assertion
            lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("event") == "phase3_completion"]
        time.sleep(0.2)
