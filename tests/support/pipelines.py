"""An orchestrator wired to the emulators, with the Pub/Sub topology infra would create.

Besides the orchestrator's own delivery, every pipeline runs the receipts
recorder the way its Eventarc trigger does: a subscription on the Phase 4
topic whose messages are handed to `ReceiptRecorder.handle_event` in the
background (ack on return, redeliver on raise), so a test sees the same
evidence a recovering orchestrator sees in the cloud.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.cloud import firestore

from phase3ops.orchestrator.factory import build_orchestrator, build_receipt_recorder
from phase3ops.orchestrator.orchestrator import Orchestrator
from phase3ops.pubsub_admin import ensure_orchestrator_topology, ensure_subscription
from phase3ops.spec.pipeline import PipelineSpec
from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse
from tests.support.completions import completion, encode
from tests.support.delivery import DeliveryStats, cloud_event_data, deliver_all, pull_everything
from tests.support.specs import write_pipeline_variant

# A fixed "now": 2026-11-29 15:00 UTC is 10:00 in New York, so 2026-11-28 is
# an overnight (past) date, 2026-11-29 same_day and 2026-11-30 tomorrow. Only
# the modes read it: leases are measured in Firestore's time.
NOW = dt.datetime(2026, 11, 29, 15, 0, tzinfo=dt.UTC)
PAST = dt.date(2026, 11, 28)
TODAY = dt.date(2026, 11, 29)
TOMORROW = dt.date(2026, 11, 30)

FUNCTION_SUBSCRIPTION = "eventarc-phase3-to-phase4-orchestrator"
RECEIPTS_SUBSCRIPTION = "eventarc-phase4-trigger-receipts"
PHASE4_LISTENER = "phase4-precompute-listener"


class Clock:
    """A clock tests can move; only mode detection reads it."""

    def __init__(self, now: dt.datetime = NOW):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class ReceiptsDelivery:
    """The receipts function's Eventarc trigger: streaming pull -> handler, ack on return."""

    def __init__(self, subscriber: pubsub_v1.SubscriberClient, subscription: str, handler: Callable[[dict], Any]):
        self.handled = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()

        def callback(message) -> None:
            try:
                handler(cloud_event_data(types.SimpleNamespace(message=message), subscription))
            except Exception as exc:  # redelivered, as Eventarc would
                self.failures.append(f"{type(exc).__name__}: {exc}")
                message.nack()
                return
            with self._lock:
                self.handled += 1
            message.ack()

        self._future = subscriber.subscribe(subscription, callback)

    def stop(self) -> None:
        self._future.cancel()
        try:
            self._future.result(timeout=10)
        except Exception:  # cancelled
            pass


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
    warehouse: DuckDBWarehouse | None = None  # where the data gates look
    receipts: ReceiptsDelivery | None = None
    received: list = field(default_factory=list)  # every Phase 4 message pulled so far

    def orchestrator(self, **clients: Any) -> Orchestrator:
        return build_orchestrator(self.spec, self.project, clock=self.clock, warehouse=self.warehouse, **clients)

    def publish(self, message: dict[str, Any] | bytes, **attributes: str) -> str:
        data = message if isinstance(message, bytes) else encode(message)
        topic = self.publisher.topic_path(self.project, self.spec.topics.completion)
        return self.publisher.publish(topic, data, **attributes).result(timeout=10)

    def publish_day(self, game_date: dt.date, processors: list[str] | None = None, **fields: Any) -> list[str]:
        return [self.publish(completion(name, game_date, **fields)) for name in processors or self.spec.processor_names]

    def deliver(self, handler: Callable[[dict], Any] | None = None, **options: Any) -> DeliveryStats:
        handler = handler or self.orchestrator().handle_event
        return deliver_all(self.subscriber, self.function_subscription, handler, **options)

    def triggers(self, settle_seconds: float = 0.5, at_least: int = 0) -> list:
        """The Phase 4 messages that arrived since the last call."""
        messages = pull_everything(self.subscriber, self.phase4_listener, settle_seconds, at_least=at_least)
        self.received.extend(messages)
        return messages

    def claim(self, game_date: dt.date) -> dict[str, Any] | None:
        snapshot = self.firestore.document(self.spec.orchestrator.collections.triggers, game_date.isoformat()).get()
        return snapshot.to_dict() if snapshot.exists else None

    def receipt(self, trigger_id: str) -> dict[str, Any] | None:
        snapshot = self.firestore.document(self.spec.orchestrator.collections.receipts, trigger_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def stop(self) -> None:
        if self.receipts is not None:
            self.receipts.stop()


def make_pipeline(
    project: str,
    spec: PipelineSpec,
    clock: Clock | None = None,
    record_receipts: bool = True,
    receipts_fault: Callable[[Callable[[dict], Any]], Callable[[dict], Any]] | None = None,
    warehouse: DuckDBWarehouse | None = None,
) -> Pipeline:
    """`receipts_fault` wraps the receipts function's handler (to make it fail for a while);
    `warehouse` is where the data gates look (the specs of most tests have none)."""
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    ensure_orchestrator_topology(publisher, project, spec)
    function_subscription = ensure_subscription(subscriber, project, spec.topics.completion, FUNCTION_SUBSCRIPTION)
    listener = ensure_subscription(subscriber, project, spec.topics.phase4_trigger, PHASE4_LISTENER)
    receipts_subscription = ensure_subscription(subscriber, project, spec.topics.phase4_trigger, RECEIPTS_SUBSCRIPTION)
    pipeline = Pipeline(
        project=project,
        spec=spec,
        clock=clock or Clock(),
        publisher=publisher,
        subscriber=subscriber,
        firestore=firestore.Client(project=project),
        function_subscription=function_subscription,
        phase4_listener=listener,
        warehouse=warehouse,
    )
    if record_receipts:
        handler = build_receipt_recorder(spec, project).handle_event
        pipeline.receipts = ReceiptsDelivery(
            subscriber, receipts_subscription, receipts_fault(handler) if receipts_fault else handler
        )
    return pipeline


def per_date_and_table(messages) -> dict[tuple[str, str], int]:
    """How many Phase 4 messages arrived per (game date, source table)."""
    counts: collections.Counter = collections.Counter()
    for message in messages:
        body = json.loads(message.data)
        counts[(body["game_date"], body.get("source_table", "date"))] += 1
    return dict(counts)


def exactly_once(spec: PipelineSpec, dates) -> dict[tuple[str, str], int]:
    """What Phase 4 must receive for `dates`: one message per source table each."""
    return {(str(day), p.output_table): 1 for day in dates for p in spec.processors}


def short_lease_spec_file(
    directory,
    lease: float = 2,
    publish_timeout: float = 1,
    receipt_grace: float | None = None,
    gates: bool = False,
    **changes: Any,
):
    """Lease, publish timeout and receipt grace in seconds, so crash-recovery tests wait seconds, not minutes.
    Without `gates`, no data gates: these tests are about the trigger path, and write no Phase 3 rows."""
    return write_pipeline_variant(
        directory,
        {
            "spec.orchestrator.claim_lease_seconds": lease,
            "spec.orchestrator.publish_timeout_seconds": publish_timeout,
            "spec.orchestrator.receipt_grace_seconds": publish_timeout if receipt_grace is None else receipt_grace,
            **({} if gates else {"spec.gates": []}),
            **changes,
        },
    )
