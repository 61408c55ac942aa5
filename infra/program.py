"""Everything the stack deploys, from pipeline.yaml and alerts/, grouped in components."""

from __future__ import annotations

from pathlib import Path

import pulumi

from infra.components.analytics_service import AnalyticsService, AnalyticsServiceArgs
from infra.components.identities import WorkloadIdentities, WorkloadIdentitiesArgs
from infra.components.lock_ttl import LockTtl, LockTtlArgs
from infra.components.messaging import Messaging, MessagingArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.orchestrator_function import OrchestratorFunction, OrchestratorFunctionArgs
from infra.components.scheduled_checks import ScheduledChecks, ScheduledChecksArgs
from infra.function_source import collect_function_source
from infra.settings import load_settings
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.spec.pipeline import load_pipeline_spec


def deploy(repo_root: Path) -> None:
    settings = load_settings()
    pipeline = load_pipeline_spec(repo_root / "pipeline.yaml")
    alerts = load_alert_specs(repo_root / "alerts", pulumi.get_stack())
    config = pulumi.Config()
    labels = settings.labels

    identities = WorkloadIdentities("identities", WorkloadIdentitiesArgs(project=settings.project))
    messaging = Messaging(
        "messaging",
        MessagingArgs(
            project=settings.project,
            pipeline=pipeline,
            labels=labels,
            orchestrator_member=identities.member("orchestrator"),
            analytics_member=identities.member("analytics"),
            checks_member=identities.member("checks"),
        ),
    )
    orchestrator = OrchestratorFunction(
        "orchestrator",
        OrchestratorFunctionArgs(
            project=settings.project,
            region=settings.region,
            pipeline=pipeline,
            source=collect_function_source(repo_root),
            completion_topic=messaging.completion,
            phase4_topic=messaging.phase4_trigger,
            runtime_service_account=identities.email("orchestrator"),
            trigger_service_account=identities.email("orchestrator_trigger"),
            trigger_member=identities.member("orchestrator_trigger"),
            max_instances=settings.function_max_instances,
            timeout_seconds=settings.function_timeout_seconds,
            labels=labels,
        ),
        # The receipts function's trigger must exist before the first trigger is published.
        opts=pulumi.ResourceOptions(depends_on=[messaging]),
    )
    analytics = AnalyticsService(
        "analytics",
        AnalyticsServiceArgs(
            project=settings.project,
            region=settings.region,
            pipeline=pipeline,
            image=settings.analytics_image,
            runtime_service_account=identities.email("analytics"),
            push_service_account=identities.email("analytics_push"),
            push_member=identities.member("analytics_push"),
            trigger_topic=messaging.phase3_trigger,
            max_instances=settings.service_max_instances,
            labels=labels,
        ),
    )
    LockTtl("lock-ttl", LockTtlArgs(project=settings.project, collection=pipeline.analytics.lock.collection))
    checks = ScheduledChecks(
        "checks",
        ScheduledChecksArgs(
            project=settings.project,
            region=settings.region,
            pipeline=pipeline,
            image=settings.analytics_image,
            runtime_service_account=identities.email("checks"),
            scheduler_service_account=identities.email("scheduler"),
            scheduler_member=identities.member("scheduler"),
            labels=labels,
        ),
    )
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            project=settings.project,
            specs=alerts,
            slack_tokens={c.token_config_key: config.require_secret(c.token_config_key) for c in alerts.channels},
            runbook_base_url=settings.runbook_base_url,
            labels=labels,
        ),
    )

    pulumi.export("orchestrator_function_name", orchestrator.function.name)
    pulumi.export("orchestrator_function_uri", orchestrator.function.service_config.uri)
    pulumi.export("receipts_function_name", orchestrator.receipts_function.name)
    pulumi.export("orchestrator_source_object", orchestrator.source_object.name)
    pulumi.export("analytics_service_url", analytics.service.uri)
    pulumi.export(
        "topics",
        {
            "phase3_trigger": messaging.phase3_trigger.id,
            "completion": messaging.completion.id,
            "phase4_trigger": messaging.phase4_trigger.id,
            "phase3_trigger_dead_letter": analytics.trigger.dead_letter_topic.id,
        },
    )
    pulumi.export("check_jobs", {name: job.name for name, job in checks.jobs.items()})
    pulumi.export("notification_channels", {name: c.name for name, c in monitoring.channels.items()})
    pulumi.export("alert_policies", {name: p.name for name, p in monitoring.policies.items()})
