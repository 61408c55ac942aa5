"""What each workload of the stack reads and writes: the one declaration its data grants come from.

The infra program derives every data grant from this: BigQuery dataset
roles (read: dataViewer, write: dataEditor, on that dataset only) and
`bigquery.jobUser` to run the queries; the Firestore role (Firestore IAM has
no per-collection role, so `datastore.user` where it writes a collection,
`datastore.viewer` where it only reads, project-wide); `pubsub.publisher` on
each topic it publishes to. A test runs the local game day and the
scheduled commands with the clients instrumented and holds what each
workload touched against this, both ways (tests/integration/
test_least_privilege_traced.py): a grant nobody uses and a use nobody
granted both fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phase3ops.spec.pipeline import PipelineSpec

FIRESTORE_WRITER, FIRESTORE_READER = "roles/datastore.user", "roles/datastore.viewer"
QUERY_RUNNER = "roles/bigquery.jobUser"


def _set(*names: str) -> frozenset[str]:
    return frozenset(names)


@dataclass(frozen=True)
class WorkloadAccess:
    reads_datasets: frozenset[str] = field(default_factory=frozenset)
    writes_datasets: frozenset[str] = field(default_factory=frozenset)
    reads_collections: frozenset[str] = field(default_factory=frozenset)
    writes_collections: frozenset[str] = field(default_factory=frozenset)
    publishes: frozenset[str] = field(default_factory=frozenset)

    @property
    def project_roles(self) -> tuple[str, ...]:
        """The project-wide roles this access needs (dataset and topic grants are made on those)."""
        roles = []
        if self.writes_collections:
            roles.append(FIRESTORE_WRITER)
        elif self.reads_collections:
            roles.append(FIRESTORE_READER)
        if self.reads_datasets or self.writes_datasets:
            roles.append(QUERY_RUNNER)
        return tuple(roles)

    def touches(self) -> set[tuple[str, str, str]]:
        """(service, verb, resource), as the tracer records them."""
        return (
            {("bigquery", "read", d) for d in self.reads_datasets}
            | {("bigquery", "write", d) for d in self.writes_datasets}
            | {("firestore", "read", c) for c in self.reads_collections}
            | {("firestore", "write", c) for c in self.writes_collections}
            | {("pubsub", "publish", t) for t in self.publishes}
        )


def workload_access(spec: PipelineSpec) -> dict[str, WorkloadAccess]:
    """Per workload (the keys of infra's identities): what its code reads and writes."""
    analytics, raw = spec.analytics.dataset, spec.analytics.raw_dataset
    c, locks, topics = spec.orchestrator.collections, spec.analytics.lock.collection, spec.topics
    return {
        # Runs the processors: reads Phase 2's tables, writes its own, under a lock; reports each run.
        "analytics": WorkloadAccess(
            reads_datasets=_set(raw, analytics),
            writes_datasets=_set(analytics),
            reads_collections=_set(locks),
            writes_collections=_set(locks, c.rejected),
            # completions; and a trigger naming several processors is split into one message each
            publishes=_set(topics.completion, topics.phase3_trigger),
        ),
        # Records completions, gates (the tables and the schedule), claims and publishes the trigger.
        "orchestrator": WorkloadAccess(
            reads_datasets=_set(analytics, raw),
            reads_collections=_set(c.completions, c.triggers, c.followups, c.holds, c.receipts, locks),
            writes_collections=_set(c.completions, c.triggers, c.followups, c.holds, c.rejected),
            publishes=_set(topics.phase4_trigger),
        ),
        # Records what reached the Phase 4 topic; publishes nothing.
        "receipts": WorkloadAccess(writes_collections=_set(c.receipts, c.rejected)),
        # Reads state and tables, changes nothing (its metrics go to Cloud Monitoring, a project role).
        "health_check": WorkloadAccess(
            reads_datasets=_set(analytics, raw),
            reads_collections=_set(c.completions, c.triggers, c.holds, c.overrides),
        ),
        # reconcile --fix and the hold recheck: re-requests missing runs, records missing completions,
        # finishes a trigger its publisher left, re-evaluates held dates.
        "reconcile": WorkloadAccess(
            reads_datasets=_set(analytics, raw),
            reads_collections=_set(c.completions, c.triggers, c.holds, c.overrides, c.repairs),
            writes_collections=_set(c.completions, c.triggers, c.holds, c.repairs),
            publishes=_set(topics.phase3_trigger, topics.phase4_trigger),
        ),
    }
