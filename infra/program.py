"""Everything the stack deploys, from pipeline.yaml, alerts/, dashboards/ and slos/, grouped in components."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pulumi

from infra.components.analytics_datasets import AnalyticsDatasets, AnalyticsDatasetsArgs, analytics_dataset
from infra.components.analytics_service import AnalyticsService, AnalyticsServiceArgs, with_source_commit
from infra.components.dashboards import Dashboards, DashboardsArgs
from infra.components.identities import WorkloadIdentities, WorkloadIdentitiesArgs
from infra.components.image_repository import ImageRepository, ImageRepositoryArgs
from infra.components.lock_ttl import LockTtl, LockTtlArgs
from infra.components.messaging import Messaging, MessagingArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.orchestrator_function import OrchestratorFunction, OrchestratorFunctionArgs
from infra.components.project_apis import ProjectApis, ProjectApisArgs
from infra.components.scheduled_checks import ScheduledChecks, ScheduledChecksArgs
from infra.components.service_agents import ServiceAgents, ServiceAgentsArgs
from infra.components.service_levels import ServiceLevels, ServiceLevelsArgs
from infra.function_source import collect_function_source
from infra.settings import load_settings
from phase3ops.access import WorkloadAccess, workload_access
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.dashboards.specs import load_dashboard_specs
from phase3ops.slos.specs import load_slo_specs
from phase3ops.spec.documents import SpecError
from phase3ops.spec.pipeline import deployed_receipt_grace_problems, load_pipeline_spec


def members(
    access: dict[str, WorkloadAccess], identities: WorkloadIdentities, needs: Callable[[WorkloadAccess], bool]
) -> dict[str, pulumi.Input[str]]:
    """The members of the workloads whose declared access `needs` says yes to, keyed by workload."""
    return {workload.replace("_", "-"): identities.member(workload) for workload, a in access.items() if needs(a)}


def publishes_to(topic: str) -> Callable[[WorkloadAccess], bool]:
    return lambda access: topic in access.publishes


def deploy(repo_root: Path) -> None:
    settings = load_settings()
    pipeline = load_pipeline_spec(repo_root / "pipeline.yaml")
    # Checked here, where both are known: the function's timeout is stack config.
    problems = deployed_receipt_grace_problems(pipeline, settings.function_timeout_seconds)
    if problems:
        raise SpecError(problems)
    alerts = load_alert_specs(repo_root / "alerts", pulumi.get_stack())
    dashboards_spec = load_dashboard_specs(repo_root / "dashboards", pulumi.get_stack())
    slos = load_slo_specs(repo_root / "slos", pulumi.get_stack())
    config = pulumi.Config()
    labels = settings.labels

    # Everything waits for the APIs it calls to be enabled.
    apis = ProjectApis("apis", ProjectApisArgs(project=settings.project))
    after_apis = pulumi.ResourceOptions(depends_on=[apis])
    # Every data grant below comes from one declaration of what each workload reads and writes.
    access = workload_access(pipeline)
    identities = WorkloadIdentities(
        "identities", WorkloadIdentitiesArgs(project=settings.project, access=access), opts=after_apis
    )
    # A fresh project's order: Google's agents exist and have settled before what uses them.
    agents = ServiceAgents("service-agents", ServiceAgentsArgs(project=settings.project), opts=after_apis)
    images = ImageRepository(
        "images", ImageRepositoryArgs(project=settings.project, region=settings.region, labels=labels), opts=after_apis
    )
    dataset = analytics_dataset(settings.project, settings.region, pipeline.analytics.dataset, labels, after_apis)
    AnalyticsDatasets(
        "datasets",
        AnalyticsDatasetsArgs(
            project=settings.project,
            dataset=dataset,
            dataset_name=pipeline.analytics.dataset,
            raw_dataset=pipeline.analytics.raw_dataset,
            analytics_editors=members(access, identities, lambda a: pipeline.analytics.dataset in a.writes_datasets),
            analytics_readers=members(
                access,
                identities,
                lambda a: pipeline.analytics.dataset in a.reads_datasets - a.writes_datasets,
            ),
            raw_readers=members(access, identities, lambda a: pipeline.analytics.raw_dataset in a.reads_datasets),
        ),
        opts=after_apis,
    )
    messaging = Messaging(
        "messaging",
        MessagingArgs(
            project=settings.project,
            pipeline=pipeline,
            labels=labels,
            publishers={
                topic: members(access, identities, publishes_to(topic))
                for topic in sorted({t for a in access.values() for t in a.publishes})
            },
        ),
        opts=after_apis,
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
            receipts_service_account=identities.email("receipts"),
            trigger_service_account=identities.email("orchestrator_trigger"),
            trigger_member=identities.member("orchestrator_trigger"),
            build_service_account=identities.email("function_build"),
            build_member=identities.member("function_build"),
            repository=images,
            pubsub_agent_member=agents.pubsub.member,
            service_agents_ready=agents.ready,
            max_instances=settings.function_max_instances,
            timeout_seconds=settings.function_timeout_seconds,
            labels=labels,
        ),
        # The receipts function's trigger must exist before the first trigger is published.
        opts=pulumi.ResourceOptions(depends_on=[apis, messaging, identities]),
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
            source_commit=settings.analytics_image_commit,
        ),
        # Its push subscription's token is signed by Pub/Sub's agent.
        opts=pulumi.ResourceOptions(depends_on=[apis, agents.ready]),
    )
    LockTtl(
        "lock-ttl",
        LockTtlArgs(project=settings.project, collection=pipeline.analytics.lock.collection),
        opts=after_apis,
    )
    checks = ScheduledChecks(
        "checks",
        ScheduledChecksArgs(
            project=settings.project,
            region=settings.region,
            pipeline=pipeline,
            image=settings.analytics_image,
            # Re-evaluating held dates triggers Phase 4 like a repair: the reconciliation's identity.
            service_accounts={
                "health": identities.email("health_check"),
                "reconcile": identities.email("reconcile"),
                "holds": identities.email("reconcile"),
            },
            scheduler_service_account=identities.email("scheduler"),
            scheduler_member=identities.member("scheduler"),
            # The jobs run the same image: the same source-commit label (on each job and its executions).
            labels=with_source_commit(labels, settings.analytics_image_commit),
        ),
        opts=after_apis,
    )
    # Before the alert policies: each policy links the dashboards by their console URL.
    dashboards = Dashboards(
        "dashboards", DashboardsArgs(project=settings.project, specs=dashboards_spec, labels=labels), opts=after_apis
    )
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            project=settings.project,
            specs=alerts,
            slack_tokens={c.token_config_key: config.require_secret(c.token_config_key) for c in alerts.channels},
            runbook_base_url=settings.runbook_base_url,
            labels=labels,
            log_metric_wait_seconds=settings.log_metric_wait_seconds,
            dashboard_links=dashboards.links,
        ),
        opts=after_apis,
    )

    service_levels = ServiceLevels(
        "service-levels",
        ServiceLevelsArgs(
            project=settings.project,
            specs=slos,
            channels=monitoring.channels,
            runbook_base_url=settings.runbook_base_url,
            labels=labels,
            log_metric_wait_seconds=settings.log_metric_wait_seconds,
            dashboard_links=dashboards.links,
        ),
        opts=after_apis,
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
    pulumi.export("dashboards", {**dashboards.urls, "phase3-slos": service_levels.url})
    pulumi.export("slos", {name: slo.name for name, slo in service_levels.slos.items()})
