"""Every data grant of the plan comes from phase3ops.access, and every declared access has its grant.

(The traced test, tests/integration/test_least_privilege_traced.py, holds the
declaration against what the workloads really touch.)
"""

from __future__ import annotations

import pytest

from phase3ops.access import FIRESTORE_READER, FIRESTORE_WRITER, QUERY_RUNNER, workload_access
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.repo_copy import REPO_ROOT
from tests.support.shipped_plans import shipped_plan

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
ACCOUNT_IDS = {
    "analytics": "phase3-analytics",
    "orchestrator": "phase3-orchestrator",
    "receipts": "phase3-trigger-receipts",
    "health_check": "phase3-health-check",
    "reconcile": "phase3-reconcile",
}


@pytest.fixture(scope="module")
def dev():
    return shipped_plan("dev")


def workload_of(member: str) -> str | None:
    account = member.removeprefix("serviceAccount:").split("@")[0]
    return next((w for w, a in ACCOUNT_IDS.items() if a == account), None)


def test_publishers_are_the_declared_ones(dev):
    publishers = [
        g
        for g in dev.of_type("gcp:pubsub/topicIAMMember:TopicIAMMember")
        if g.inputs["role"] == "roles/pubsub.publisher"
    ]
    granted = {(workload_of(g.inputs["member"]), g.inputs["topic"].rsplit("/", 1)[-1]) for g in publishers}
    # Besides the workloads, only Pub/Sub's own agent publishes: dead letters.
    others = {g.inputs["member"] for g in publishers if workload_of(g.inputs["member"]) is None}
    assert others == {"serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"}
    granted = {(w, t) for w, t in granted if w is not None}
    declared = {(w, t) for w, a in workload_access(SPEC).items() for t in a.publishes}
    assert granted == declared
    assert ("reconcile", SPEC.topics.phase3_trigger) in granted  # reconcile --fix re-requests runs there


def test_dataset_roles_are_the_declared_reads_and_writes(dev):
    granted = {
        (workload_of(g.inputs["member"]), g.name.split("-")[0], g.inputs["role"])
        for g in dev.of_type("gcp:bigquery/datasetIamMember:DatasetIamMember")
    }
    declared = set()
    for workload, access in workload_access(SPEC).items():
        declared |= {(workload, d, "roles/bigquery.dataEditor") for d in access.writes_datasets}
        declared |= {(workload, d, "roles/bigquery.dataViewer") for d in access.reads_datasets - access.writes_datasets}
    assert granted == declared


def test_project_data_roles_follow_what_each_workload_reads_and_writes(dev):
    data_roles = {FIRESTORE_WRITER, FIRESTORE_READER, QUERY_RUNNER}
    granted = {
        (workload_of(g.inputs["member"]), g.inputs["role"])
        for g in dev.of_type("gcp:projects/iAMMember:IAMMember")
        if g.inputs["role"] in data_roles
    }
    declared = {(w, role) for w, a in workload_access(SPEC).items() for role in a.project_roles}
    assert granted == declared
    assert ("health_check", FIRESTORE_READER) in granted and ("health_check", FIRESTORE_WRITER) not in granted
    assert ("receipts", QUERY_RUNNER) not in granted
