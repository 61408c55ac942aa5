"""One service account per workload, with only the project roles it needs.

The data roles (Firestore, running BigQuery queries) come from
phase3ops.access, the one declaration of what each workload reads and
writes; the roles here are the rest (logs, metrics, viewing deployments).

Resource-scoped grants (a dataset, a topic, a subscription, a service, a
job) are made next to the resource they are on, by the component that
creates it; this component holds the identities and the few roles that
only exist project-wide (running BigQuery jobs, writing logs and metrics,
reading Firestore). No primitive role (owner, editor, viewer) is ever
granted, and nobody gets BigQuery data roles on the whole project.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options
from phase3ops.access import WorkloadAccess


@dataclass(frozen=True)
class Workload:
    account_id: str  # 6-30 characters
    display_name: str
    project_roles: tuple[str, ...] = ()


WORKLOADS: dict[str, Workload] = {
    "orchestrator": Workload(
        "phase3-orchestrator",
        "Phase 3 -> Phase 4 orchestrator function; reads the Phase 3 tables and the schedule for the data gates",
        ("roles/logging.logWriter",),
    ),
    "receipts": Workload(
        "phase3-trigger-receipts",
        "Phase 4 trigger receipts function: records what was published; publishes nothing",
        ("roles/logging.logWriter",),
    ),
    # Builds both functions (Cloud Build): the roles Google lists for a function's build account,
    # logs project-wide; the source bucket and the image repository are granted where they are made.
    "function_build": Workload(
        "phase3-function-build", "Builds the orchestrator and receipts functions", ("roles/logging.logWriter",)
    ),
    # Only invokes the functions (granted on each function's service); a direct
    # Pub/Sub trigger needs no eventarc.eventReceiver.
    "orchestrator_trigger": Workload("phase3-orchestrator-trigger", "Eventarc triggers of the orchestrator functions"),
    "analytics": Workload(
        "phase3-analytics",
        "Phase 3 analytics processors (Cloud Run); edits only the analytics dataset",
        ("roles/logging.logWriter",),
    ),
    "analytics_push": Workload("phase3-analytics-push", "Pub/Sub push identity calling the analytics service"),
    "health_check": Workload(
        "phase3-health-check",
        "Daily health check job: reads state, writes its metrics, changes nothing",
        (
            "roles/monitoring.metricWriter",
            "roles/monitoring.viewer",
            "roles/cloudfunctions.viewer",
            "roles/run.viewer",
            "roles/logging.logWriter",
        ),
    ),
    "reconcile": Workload(
        "phase3-reconcile",
        "Daily reconciliation job: records missing completions, finishes triggers",
        ("roles/logging.logWriter",),
    ),
    "scheduler": Workload("phase3-scheduler", "Cloud Scheduler identity starting the check jobs"),
}


@dataclass
class WorkloadIdentitiesArgs:
    project: str
    access: dict[str, WorkloadAccess]  # phase3ops.access: the data roles of each workload


class WorkloadIdentities(pulumi.ComponentResource):
    accounts: dict[str, gcp.serviceaccount.Account]

    def __init__(self, name: str, args: WorkloadIdentitiesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:WorkloadIdentities", name, None, opts)
        child = child_options(self, opts)
        self.accounts = {}
        for key, workload in WORKLOADS.items():
            account = gcp.serviceaccount.Account(
                workload.account_id,
                account_id=workload.account_id,
                display_name=workload.display_name,
                project=args.project,
                opts=child,
            )
            self.accounts[key] = account
            declared = args.access[key].project_roles if key in args.access else ()
            for role in (*declared, *workload.project_roles):
                gcp.projects.IAMMember(
                    f"{workload.account_id}-{role.removeprefix('roles/').replace('.', '-')}",
                    project=args.project,
                    role=role,
                    member=account.member,
                    opts=child_options(self, opts, account),
                )
        self.register_outputs({workload: account.email for workload, account in self.accounts.items()})

    def email(self, workload: str) -> pulumi.Output[str]:
        return self.accounts[workload].email

    def member(self, workload: str) -> pulumi.Output[str]:
        return self.accounts[workload].member
