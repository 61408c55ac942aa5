"""One service account per workload, with only the project roles it needs.

Resource-scoped grants (a topic, a subscription, a service, a job) are made
next to the resource they are on, by the component that creates it; this
component holds the identities and their project-wide roles. No primitive
role (owner, editor, viewer) is ever granted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

@dataclass(frozen=True)
class Workload:
    account_id: str  # 6-30 characters
    display_name: str
    project_roles: tuple[str, ...] = ()


WORKLOADS: dict[str, Workload] = {
    "orchestrator": Workload(
        "phase3-orchestrator",
        "Phase 3 -> Phase 4 orchestrator function",
        ("roles/datastore.user", "roles/logging.logWriter"),
    ),
    "orchestrator_trigger": Workload(
        "phase3-orchestrator-trigger", "Eventarc trigger of the orchestrator function", ("roles/eventarc.eventReceiver",)
    ),
    "analytics": Workload(
        "phase3-analytics",
        "Phase 3 analytics processors (Cloud Run)",
        ("roles/datastore.user", "roles/bigquery.dataEditor", "roles/bigquery.jobUser", "roles/logging.logWriter"),
    ),
    "analytics_push": Workload("phase3-analytics-push", "Pub/Sub push identity calling the analytics service"),
    "checks": Workload(
        "phase3-checks",
        "Scheduled health check and reconciliation jobs",
        (
            "roles/datastore.user",
            "roles/bigquery.dataViewer",
            "roles/bigquery.jobUser",
            "roles/monitoring.metricWriter",
            "roles/monitoring.viewer",
            "roles/cloudfunctions.viewer",
            "roles/run.viewer",
            "roles/logging.logWriter",
        ),
    ),
    "scheduler": Workload("phase3-scheduler", "Cloud Scheduler identity starting the check jobs"),
}


@dataclass
class WorkloadIdentitiesArgs:
    project: str


class WorkloadIdentities(pulumi.ComponentResource):
    accounts: dict[str, gcp.serviceaccount.Account]

    def __init__(self, name: str, args: WorkloadIdentitiesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:WorkloadIdentities", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
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
            for role in workload.project_roles:
                gcp.projects.IAMMember(
                    f"{workload.account_id}-{role.removeprefix('roles/').replace('.', '-')}",
                    project=args.project,
                    role=role,
                    member=account.member,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
                )
        self.register_outputs({workload: account.email for workload, account in self.accounts.items()})

    def email(self, workload: str) -> pulumi.Output[str]:
        return self.accounts[workload].email

    def member(self, workload: str) -> pulumi.Output[str]:
        return self.accounts[workload].member
