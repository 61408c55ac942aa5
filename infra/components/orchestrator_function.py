"""The orchestrator and receipts Cloud Functions (gen2), deployed from one content-addressed source object.

`phase3-to-phase4-orchestrator` runs on the completion topic; the receipts
recorder `phase4-trigger-receipts` runs on the Phase 4 topic and writes the
evidence a recovering orchestrator reads before it re-publishes anything.
Both are the same bundle with different entry points, so they always run
the same version of the trigger contract. The receipts function runs as an
identity of its own, which can write receipts and cannot publish to Phase 4.

Both are built by a build account of their own (since July 2024 a new
project's default build account may lack the permissions), into the stack's
image repository, with the roles Google lists for it scoped to what it
builds from (the source bucket) and into (the repository); the functions
wait for those grants to settle, and for the service agents.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as time

from infra.components import child_options
from infra.components.image_repository import ImageRepository
from infra.function_source import FunctionSource
from phase3ops.spec.pipeline import PipelineSpec

RUNTIME = "python311"
BUILD_GRANTS_WAIT_SECONDS = 60  # Pulumi's gen2 builder example: the grants settle before the build reads the source
ENTRY_POINT = "handle_phase3_completion"
RECEIPTS_ENTRY_POINT = "record_phase4_trigger_receipt"
EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


@dataclass
class OrchestratorFunctionArgs:
    project: str
    region: str
    pipeline: PipelineSpec
    source: FunctionSource
    completion_topic: gcp.pubsub.Topic
    phase4_topic: gcp.pubsub.Topic
    runtime_service_account: pulumi.Input[str]
    receipts_service_account: pulumi.Input[str]
    trigger_service_account: pulumi.Input[str]
    trigger_member: pulumi.Input[str]
    build_service_account: pulumi.Input[str]
    build_member: pulumi.Input[str]
    repository: ImageRepository
    pubsub_agent_member: pulumi.Input[str]
    service_agents_ready: pulumi.Resource
    max_instances: int
    timeout_seconds: int
    labels: dict[str, str]


class OrchestratorFunction(pulumi.ComponentResource):
    def __init__(self, name: str, args: OrchestratorFunctionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:OrchestratorFunction", name, None, opts)
        child = child_options(self, opts)
        function_name = args.pipeline.orchestrator.function_name
        labels = {**args.labels, "component": "orchestrator"}

        self.bucket = gcp.storage.Bucket(
            f"{function_name}-source",
            name=f"{args.project}-{function_name}-source",
            project=args.project,
            location=args.region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            labels=labels,
            opts=child,
        )
        self.source_object = gcp.storage.BucketObject(
            f"{function_name}-source-object",
            name=args.source.object_name,
            bucket=self.bucket.name,
            source=pulumi.AssetArchive({path: pulumi.FileAsset(str(file)) for path, file in args.source.files.items()}),
            content_type="application/zip",
            opts=child,
        )
        build_grants = [
            gcp.storage.BucketIAMMember(
                f"{function_name}-source-build-reader",
                bucket=self.bucket.name,
                role="roles/storage.objectAdmin",
                member=args.build_member,
                opts=child,
            )
        ]
        args.repository.grant("function-build-writer", "roles/artifactregistry.writer", args.build_member, child)
        build_ready = time.Sleep(
            "function-build-grants-propagate",
            create_duration=f"{BUILD_GRANTS_WAIT_SECONDS}s",
            opts=child_options(self, opts, *build_grants, args.repository),
        )
        # The Pub/Sub agent signs the token each function's Eventarc trigger presents (needed when
        # the agent predates 2021-04-08, harmless after): as for the analytics push subscription.
        gcp.serviceaccount.IAMMember(
            f"{function_name}-trigger-token-creator-pubsub-agent",
            service_account_id=pulumi.Output.concat(
                "projects/", args.project, "/serviceAccounts/", args.trigger_service_account
            ),
            role="roles/iam.serviceAccountTokenCreator",
            member=args.pubsub_agent_member,
            opts=child,
        )
        self._ready = [build_ready, args.service_agents_ready]
        self.function = self._function(
            opts,
            args,
            args.runtime_service_account,
            function_name,
            ENTRY_POINT,
            args.completion_topic,
            "Records Phase 3 completions and triggers Phase 4 exactly once per game date",
            args.max_instances,
            labels,
        )
        self.receipts_function = self._function(
            opts,
            args,
            args.receipts_service_account,
            args.pipeline.orchestrator.receipts_function_name,
            RECEIPTS_ENTRY_POINT,
            args.phase4_topic,
            "Records a receipt of every Phase 4 trigger message published (evidence for the orchestrator's recovery)",
            args.max_instances,
            {**labels, "component": "receipts"},
        )
        self.register_outputs(
            {
                "name": self.function.name,
                "uri": self.function.service_config.uri,
                "receipts_name": self.receipts_function.name,
            }
        )

    def _function(
        self,
        opts: pulumi.ResourceOptions | None,
        args: OrchestratorFunctionArgs,
        runtime_service_account: pulumi.Input[str],
        function_name: str,
        entry_point: str,
        topic: gcp.pubsub.Topic,
        description: str,
        max_instances: int,
        labels: dict[str, str],
    ) -> gcp.cloudfunctionsv2.Function:
        child = child_options(self, opts)
        function = gcp.cloudfunctionsv2.Function(
            function_name,
            name=function_name,
            project=args.project,
            location=args.region,
            description=description,
            labels={**labels, "source-hash": args.source.short_hash},
            build_config={
                "runtime": RUNTIME,
                "entry_point": entry_point,
                "source": {"storage_source": {"bucket": self.bucket.name, "object": self.source_object.name}},
                "docker_repository": args.repository.repository.id,
                "service_account": pulumi.Output.concat(
                    "projects/", args.project, "/serviceAccounts/", args.build_service_account
                ),
            },
            service_config={
                "min_instance_count": 0,
                "max_instance_count": max_instances,
                "timeout_seconds": args.timeout_seconds,
                "available_memory": "512M",
                "ingress_settings": "ALLOW_INTERNAL_ONLY",
                "all_traffic_on_latest_revision": True,
                "service_account_email": runtime_service_account,
                "environment_variables": {
                    "GOOGLE_CLOUD_PROJECT": args.project,
                    "PHASE3OPS_PIPELINE": "pipeline.yaml",
                    # The data gates read the Phase 3 tables and the schedule in BigQuery.
                    "PHASE3OPS_WAREHOUSE": "bigquery",
                    "PHASE3OPS_BIGQUERY_LOCATION": args.region,
                    "LOG_EXECUTION_ID": "true",
                },
            },
            event_trigger={
                "trigger_region": args.region,
                "event_type": EVENT_TYPE,
                "pubsub_topic": topic.id,
                "retry_policy": "RETRY_POLICY_RETRY",
                "service_account_email": args.trigger_service_account,
            },
            opts=child_options(self, opts, *self._ready),
        )
        # A gen2 function runs as a Cloud Run service of the same name; the
        # Eventarc trigger's identity may invoke it, nobody else.
        gcp.cloudrunv2.ServiceIamMember(
            f"{function_name}-invoker-trigger",
            name=function.name,
            location=args.region,
            project=args.project,
            role="roles/run.invoker",
            member=args.trigger_member,
            opts=child,
        )
        return function
