"""An orchestrator wired to the emulators, with the Pub/Sub topology infra would create."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from google.cloud import firestore, pubsub_v1

from phase3ops.orchestrator.factory import build_orchestrator
from phase3ops.orchestrator.orchestrator import Orchestrator
from phase3ops.pubsub_admin import ensure_orchestrator_topology, ensure_subscription
from phase3ops.spec.pipeline import PipelineSpec, load_pipeline_spec
from tests.support.completions import completion, encode
from tests.support.delivery import DeliveryStats, deliver_all, pull_everything
from tests.support.specs import write_pipeline_variant

# A fixed "now": 2026-11-29 15:00 UTC is 10:00 in New York, so 2026-11-28 is
# an overnight (past) date, 2026-11-29 same_day and 2026-11-30 tomorrow.
NOW = dt.datetime(2026, 11, 29, 15, 0, tzinfo=dt.timezone.utc)
PAST = dt.date(2026, 11, 28)
TODAY = dt.date(2026, 11, 29)
TOMORROW = dt.date(2026, 11, 30)

FUNCTION_SUBSCRIPTION = "eventarc-phase3-to-phase4-orchestrator"
PHASE4_LISTENER = "phase4-precompute-listener"


class Clock:
    """A clock tests can move; the lease logic reads only this."""

    def __init__(self, now: dt.datetime = NOW):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@dataclass
class Pipeline:
    project: str
    spec: PipelineSpec
    clock: Clock
    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient
    firestore: firestore.Client
    function_subscription: str
    phase4_listener: str

    def orchestrator(self, **clients: Any) -> Orchestrator:
        return build_orchestrator(self.spec, self.project, clock=self.clock, **clients)

    def publish(self, message: dict[str, Any] | bytes, **attributes: str) -> str:
        data = message if isinstance(message, bytes) else encode(message)
        topic = self.publisher.topic_path(self.project, self.spec.topics.completion)
        return self.publisher.publish(topic, data, **attributes).result(timeout=10)

    def publish_day(self, game_date: dt.date, processors: list[str] | None = None, **fields: Any) -> list[str]:
        return [self.publish(completion(name, game_date, **fields)) for name in processors or self.spec.processor_names]

    def deliver(self, handler: Callable[[dict], Any] | None = None, **options: Any) -> DeliveryStats:
        handler = handler or self.orchestrator().handle_event
        return deliver_all(self.subscriber, self.function_subscription, handler, **options)

    def triggers(self, settle_seconds: float = 0.5) -> list:
        return pull_everything(self.subscriber, self.phase4_listener, settle_seconds)

    def claim(self, game_date: dt.date) -> dict[str, Any] | None:
        snapshot = self.firestore.collection(self.spec.orchestrator.collections.triggers).document(game_date.isoformat()).get()
        return snapshot.to_dict() if snapshot.exists else None


def make_pipeline(project: str, spec: PipelineSpec, clock: Clock | None = None) -> Pipeline:
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    ensure_orchestrator_topology(publisher, subscriber, project, spec)
    function_subscription = ensure_subscription(subscriber, project, spec.topics.completion, FUNCTION_SUBSCRIPTION)
    listener = ensure_subscription(subscriber, project, spec.topics.phase4_trigger, PHASE4_LISTENER)
    return Pipeline(
        project=project,
        spec=spec,
        clock=clock or Clock(),
        publisher=publisher,
        subscriber=subscriber,
        firestore=firestore.Client(project=project),
        function_subscription=function_subscription,
        phase4_listener=listener,
    )


@pytest.fixture
def short_lease_spec(tmp_path) -> PipelineSpec:
    # Lease and publish timeout in seconds, so crash-recovery tests wait 2 s, not 60.
    path = write_pipeline_variant(
        tmp_path,
        {"spec.orchestrator.claim_lease_seconds": 2, "spec.orchestrator.publish_timeout_seconds": 1},
    )
    return load_pipeline_spec(path)


@pytest.fixture
def pipeline(gcp_project, short_lease_spec) -> Pipeline:
    return make_pipeline(gcp_project, short_lease_spec)
