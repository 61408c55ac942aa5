"""The daily health check and reconciliation: Cloud Run jobs (the analytics
image) started by Cloud Scheduler in the pipeline's time zone.

Each job runs under the identity of its command: `health` reads and writes
only its metrics, `reconcile` may record completions and publish triggers.
Jobs have no probes: they serve no port, they run a command to its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options
from infra.components.analytics_service import runtime_environment
from phase3ops.spec.pipeline import PipelineSpec


@dataclass
class ScheduledChecksArgs:
    project: str
    region: str
    pipeline: PipelineSpec
    image: str
    service_accounts: dict[str, pulumi.Input[str]]  # command (health, reconcile) -> email
    scheduler_service_account: pulumi.Input[str]
    scheduler_member: pulumi.Input[str]
    labels: dict[str, str]


class ScheduledChecks(pulumi.ComponentResource):
    def __init__(self, name: str, args: ScheduledChecksArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:ScheduledChecks", name, None, opts)
        child = child_options(self, opts)
        labels = {**args.labels, "component": "checks"}
        self.jobs: dict[str, gcp.cloudrunv2.Job] = {}
        for check in args.pipeline.scheduled_checks:
            job = gcp.cloudrunv2.Job(
                check.name,
                name=check.name,
                project=args.project,
                location=args.region,
                deletion_protection=False,
                labels=labels,
                template={
                    "task_count": 1,
                    "labels": labels,
                    "template": {
                        "service_account": args.service_accounts[check.args[0]],
                        "timeout": "1800s",
                        "max_retries": 1,
                        "containers": [
                            {
                                "image": args.image,
                                "commands": ["phase3ops"],
                                "args": list(check.args),
                                "envs": [
                                    # The service's and the job's env entries have the same fields.
                                    *cast(
                                        list[gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgsDict],
                                        runtime_environment(args.project, args.region),
                                    ),
                                    {"name": "PHASE3OPS_TARGET", "value": "cloud"},
                                    {"name": "PHASE3OPS_REGION", "value": args.region},
                                ],
                                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                            }
                        ],
                    },
                },
                opts=child,
            )
            self.jobs[check.name] = job
            gcp.cloudrunv2.JobIamMember(
                f"{check.name}-invoker-scheduler",
                name=job.name,
                location=args.region,
                project=args.project,
                role="roles/run.invoker",
                member=args.scheduler_member,
                opts=child,
            )

            def run_uri(job_name: str, region: str = args.region, project: str = args.project) -> str:
                return (
                    f"https://{region}-run.googleapis.com/apis/run.googleapis.com/v1/"
                    f"namespaces/{project}/jobs/{job_name}:run"
                )

            gcp.cloudscheduler.Job(
                f"{check.name}-schedule",
                name=f"{check.name}-schedule",
                project=args.project,
                region=args.region,
                schedule=check.schedule,
                time_zone=args.pipeline.timezone,
                description=f"Runs phase3ops {' '.join(check.args)}",
                attempt_deadline="180s",
                retry_config={"retry_count": 1},
                http_target={
                    "http_method": "POST",
                    "uri": job.name.apply(run_uri),
                    "oauth_token": {"service_account_email": args.scheduler_service_account},
                },
                opts=child,
            )
        self.register_outputs({name: job.name for name, job in self.jobs.items()})
