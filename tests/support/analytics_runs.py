"""The analytics runner on the emulators and DuckDB, with a listener on the completion topic."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1
from google.cloud import firestore

from phase3ops.analytics.factory import build_runner
from phase3ops.analytics.runner import ProcessorRunner
from phase3ops.analytics.synthetic import generate_game_day, write_game_day
from phase3ops.pubsub_admin import ensure_orchestrator_topology, ensure_subscription
from phase3ops.spec.pipeline import PipelineSpec, load_pipeline_spec
from tests.support.delivery import pull_everything
from tests.support.single_process_duckdb import SingleProcessDuckDB
from tests.support.specs import REPO_ROOT

DAY = dt.date(2026, 11, 28)


@dataclass
class Analytics:
    project: str
    spec: PipelineSpec
    warehouse: SingleProcessDuckDB
    subscriber: pubsub_v1.SubscriberClient
    completions: str

    def runner(self, **lock_overrides) -> ProcessorRunner:
        return build_runner(
            self.spec,
            self.project,
            warehouse=self.warehouse,
            firestore_client=firestore.Client(project=self.project),
            **{"lease_seconds": 1.5, "max_wait_seconds": 60, **lock_overrides},
        )

    def published(self, at_least: int = 0) -> list[dict]:
        return [json.loads(m.data) for m in pull_everything(self.subscriber, self.completions, 0.5, at_least=at_least)]

    def rows(self, processor: str) -> list[dict]:
        table = self.spec.processor(processor).table
        return self.warehouse.query(f"SELECT * FROM `{table.dataset}.{table.name}` WHERE game_date = DATE '{DAY}'")


def make_analytics(gcp_project: str, tmp_path: Path) -> Analytics:
    """Phase 2's rows of DAY in a DuckDB warehouse, the completion topic and a listener on it."""
    spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    ensure_orchestrator_topology(publisher, gcp_project, spec)
    completions = ensure_subscription(subscriber, gcp_project, spec.topics.completion, "completions-listener")
    warehouse = SingleProcessDuckDB(tmp_path / "warehouse.duckdb")
    write_game_day(warehouse, spec, generate_game_day(spec, DAY, games=4, seed=5, stale_scrapes=True))
    analytics = Analytics(gcp_project, spec, warehouse, subscriber, completions)
    analytics.runner().prepare()
    return analytics
