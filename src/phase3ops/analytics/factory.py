"""Wire a `ProcessorRunner` and the per-processor fan-out to real clients from the environment."""

from __future__ import annotations

from phase3ops import cloud
from phase3ops.analytics.completions import CompletionPublisher
from phase3ops.analytics.dependencies import CompletedDependencies
from phase3ops.analytics.fan_out import PerProcessorFanOut
from phase3ops.analytics.runner import ProcessorRunner
from phase3ops.locking.lease_lock import LeaseLocks
from phase3ops.rejected_messages import RejectedMessages
from phase3ops.spec.pipeline import PipelineSpec
from phase3ops.warehouse.factory import warehouse_from_environment
from phase3ops.warehouse.port import Warehouse


def build_runner(
    spec: PipelineSpec,
    project: str | None = None,
    warehouse: Warehouse | None = None,
    firestore_client=None,
    publisher_client=None,
    **lock_overrides: float,
) -> ProcessorRunner:
    project = cloud.project_id(project)
    lock = spec.analytics.lock
    db = firestore_client or cloud.firestore_client(project)
    locks = LeaseLocks(
        db,
        lock.collection,
        lease_seconds=lock_overrides.get("lease_seconds", lock.lease_seconds),
        max_wait_seconds=lock_overrides.get("max_wait_seconds", lock.max_wait_seconds),
        retention_hours=lock.retention_hours,
    )
    completions = CompletionPublisher(publisher_client or cloud.publisher_client(), project, spec.topics.completion)
    dependencies = CompletedDependencies(db, spec.orchestrator.collections.completions)
    return ProcessorRunner(
        spec, warehouse or warehouse_from_environment(), locks, completions, dependencies=dependencies
    )


def build_fan_out(spec: PipelineSpec, project: str | None = None, publisher_client=None) -> PerProcessorFanOut:
    return PerProcessorFanOut(
        publisher_client or cloud.publisher_client(), cloud.project_id(project), spec.topics.phase3_trigger
    )


def build_rejected_pushes(spec: PipelineSpec, project: str | None = None, firestore_client=None) -> RejectedMessages:
    """Where the service keeps the pushes it acknowledges without running: the orchestrator's
    rejected collection, so the story of a date shows every message refused for it."""
    db = firestore_client or cloud.firestore_client(cloud.project_id(project))
    return RejectedMessages(db, spec.orchestrator.collections.rejected, handler=spec.analytics.service_name)
