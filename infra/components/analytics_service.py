"""The analytics Cloud Run service, reachable only through its authenticated push subscription.

One request runs one processor (see phase3ops.analytics.fan_out), within
`analytics.request_timeout_seconds` from pipeline.yaml, which the spec keeps
well inside the push subscription's 600 s ack deadline. Startup and
liveness probes on /healthz: gunicorn binds the port before the app has
loaded its spec and created its tables, so a bare TCP check would route
pushes to an instance that cannot serve them yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options
from infra.components.push_subscription import PushSubscription, PushSubscriptionArgs
from phase3ops.checks.deployed_revisions import SOURCE_COMMIT_LABEL
from phase3ops.spec.pipeline import PipelineSpec

PORT = 8080
HEALTH_PATH = "/healthz"


@dataclass
class AnalyticsServiceArgs:
    project: str
    region: str
    pipeline: PipelineSpec
    image: str
    runtime_service_account: pulumi.Input[str]
    push_service_account: pulumi.Input[str]
    push_member: pulumi.Input[str]
    trigger_topic: gcp.pubsub.Topic
    max_instances: int
    labels: dict[str, str]
    # The commit `image` was built from (stack config analyticsImageCommit, validated by infra.settings);
    # None: the stack does not say, and the revisions carry no source-commit label.
    source_commit: str | None = None


def runtime_environment(project: str, region: str) -> list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgsDict]:
    """What the image needs to find its project, warehouse, spec and stack (shared with the check jobs)."""
    return [
        {"name": "GOOGLE_CLOUD_PROJECT", "value": project},
        {"name": "PHASE3OPS_WAREHOUSE", "value": "bigquery"},
        {"name": "PHASE3OPS_BIGQUERY_LOCATION", "value": region},
        {"name": "PHASE3OPS_PIPELINE", "value": "/app/pipeline.yaml"},
        # Which alerts/stacks/<stack>.yaml overrides the deployment applied.
        {"name": "PHASE3OPS_STACK", "value": pulumi.get_stack()},
    ]


def with_source_commit(labels: dict[str, str], commit: str | None) -> dict[str, str]:
    """`labels` plus the source-commit label when the stack says which commit the image was built from.

    From stack config, never from the checkout running `pulumi up`: the label changes exactly when
    the image does, so a deploy from a newer commit (docs only, say) creates no new revision and the
    drift preview has nothing to report. The deployment_state check reads it back
    (phase3ops.checks.deployed_revisions) to tell whether git is ahead of what is deployed."""
    return {**labels, SOURCE_COMMIT_LABEL: commit} if commit else labels


class AnalyticsService(pulumi.ComponentResource):
    def __init__(self, name: str, args: AnalyticsServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:AnalyticsService", name, None, opts)
        child = child_options(self, opts)
        service_name = args.pipeline.analytics.service_name
        labels = {**args.labels, "component": "analytics"}
        # On the revision (not the service), so each revision says which commit its image came from.
        revision_labels = with_source_commit(labels, args.source_commit)
        # Pub/Sub signs its push token for this audience; Cloud Run accepts it as
        # a custom audience and the service checks it again (PushAuth).
        audience = f"https://{service_name}.{args.project}.internal/push"

        self.service = gcp.cloudrunv2.Service(
            service_name,
            name=service_name,
            project=args.project,
            location=args.region,
            ingress="INGRESS_TRAFFIC_INTERNAL_ONLY",
            deletion_protection=False,
            custom_audiences=[audience],
            labels=labels,
            template={
                "service_account": args.runtime_service_account,
                "timeout": f"{args.pipeline.analytics.request_timeout_seconds}s",
                "max_instance_request_concurrency": 8,
                "scaling": {"min_instance_count": 0, "max_instance_count": args.max_instances},
                "labels": revision_labels,
                "containers": [
                    {
                        "image": args.image,
                        "ports": {"container_port": PORT},
                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                        "startup_probe": {
                            "http_get": {"path": HEALTH_PATH, "port": PORT},
                            "initial_delay_seconds": 0,
                            "period_seconds": 5,
                            "timeout_seconds": 3,
                            "failure_threshold": 24,  # up to 2 minutes to load the spec and create tables
                        },
                        "liveness_probe": {
                            "http_get": {"path": HEALTH_PATH, "port": PORT},
                            "period_seconds": 30,
                            "timeout_seconds": 5,
                            "failure_threshold": 3,
                        },
                        "envs": [
                            *runtime_environment(args.project, args.region),
                            {"name": "PHASE3OPS_PUSH_AUDIENCE", "value": audience},
                            {"name": "PHASE3OPS_PUSH_SERVICE_ACCOUNT", "value": args.push_service_account},
                            # Cloud Run's IAM checks the push token first and may pass it on with its
                            # signature removed: the app then pins its claims (analytics/push_auth.py).
                            {"name": "PHASE3OPS_PUSH_BEHIND_CLOUD_RUN_IAM", "value": "true"},
                        ],
                    }
                ],
            },
            opts=child,
        )
        gcp.cloudrunv2.ServiceIamMember(
            f"{service_name}-invoker-push",
            name=self.service.name,
            location=args.region,
            project=args.project,
            role="roles/run.invoker",
            member=args.push_member,
            opts=child,
        )
        self.trigger = PushSubscription(
            f"{service_name}-trigger",
            PushSubscriptionArgs(
                project=args.project,
                topic=args.trigger_topic,
                topic_name=args.pipeline.topics.phase3_trigger,
                subscription_name=f"{service_name}-push",
                push_endpoint=self.service.uri,
                push_service_account_email=args.push_service_account,
                audience=audience,
                labels=labels,
            ),
            opts=child,
        )
        self.register_outputs({"url": self.service.uri})
