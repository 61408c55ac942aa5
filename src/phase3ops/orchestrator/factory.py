"""Wire the orchestrator and the receipts recorder to real clients (Firestore, Pub/Sub) for one project."""

from __future__ import annotations

import datetime as dt

from phase3ops import cloud
from phase3ops.gates.evaluate import GateEvaluator
from phase3ops.orchestrator.completion_store import CompletionStore
from phase3ops.orchestrator.gate_holds import GateHolds
from phase3ops.orchestrator.orchestrator import Clock, Orchestrator, utc_now
from phase3ops.orchestrator.phase4_publisher import Phase4Publisher
from phase3ops.orchestrator.receipts import ReceiptRecorder
from phase3ops.orchestrator.trigger_claims import TriggerClaims
from phase3ops.spec.pipeline import PipelineSpec
from phase3ops.warehouse.factory import warehouse_from_environment
from phase3ops.warehouse.port import Warehouse


def build_orchestrator(
    spec: PipelineSpec,
    project: str | None = None,
    clock: Clock = utc_now,
    firestore_client=None,
    publisher_client=None,
    warehouse: Warehouse | None = None,
) -> Orchestrator:
    """`warehouse` is where the data gates look (default: $PHASE3OPS_WAREHOUSE, built on the first ready date)."""
    project = cloud.project_id(project)
    settings = spec.orchestrator
    db = firestore_client or cloud.firestore_client(project)
    publisher = Phase4Publisher(
        publisher_client or cloud.publisher_client(),
        project,
        spec.topics.phase4_trigger,
        timeout_seconds=settings.publish_timeout_seconds,
    )

    def claims(collection: str) -> TriggerClaims:
        return TriggerClaims(
            db,
            collection,
            settings.collections.receipts,
            lease=dt.timedelta(seconds=settings.claim_lease_seconds),
            receipt_grace=dt.timedelta(seconds=settings.receipt_grace_seconds),
        )

    return Orchestrator(
        spec=spec,
        store=CompletionStore(
            db, settings.collections.completions, settings.collections.rejected, spec.analytics.lock.collection
        ),
        claims=claims(settings.collections.triggers),
        publisher=publisher,
        clock=clock,
        gates=GateEvaluator(spec, lambda: warehouse or warehouse_from_environment()),
        holds=GateHolds(db, settings.collections.holds),
        followups=claims(settings.collections.followups),
    )


def build_receipt_recorder(spec: PipelineSpec, project: str | None = None, firestore_client=None) -> ReceiptRecorder:
    db = firestore_client or cloud.firestore_client(cloud.project_id(project))
    collections = spec.orchestrator.collections
    return ReceiptRecorder(db, collections.receipts, spec.name, collections.rejected)
