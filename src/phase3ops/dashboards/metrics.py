"""The metrics a dashboard can chart: what the plan deploys, or what Google reports about what it deploys.

A chart on a metric nobody writes is not an error anywhere: Cloud Monitoring
draws "No data is available" forever. So a widget may name only

* `custom.googleapis.com/phase3/...`: a metric the health check writes and
  the infra declares (`phase3ops.checks.metrics.CUSTOM_METRICS`);
* `log:<name>` (or `logging.googleapis.com/user/<name>`): a log-based metric
  a dashboard or an alert rule declares, which the infra creates;
* a built-in metric of a Google service the plan deploys something on,
  listed below with its kind, value type, resource types and labels (written
  from https://cloud.google.com/monitoring/api/metrics_gcp, not fetched: a
  real metric reported as unknown belongs here).
"""

from __future__ import annotations

from dataclasses import dataclass

from phase3ops.monitoring.custom_metrics import CUSTOM_METRICS, METRIC_PREFIX, MONITORED_RESOURCE, custom_metric
from phase3ops.monitoring.metrics import LOG_METRIC_PREFIX, metric_type


@dataclass(frozen=True)
class MetricFacts:
    type: str
    kind: str  # GAUGE | DELTA | CUMULATIVE
    value_type: str  # INT64 | DOUBLE | DISTRIBUTION | BOOL
    resource_types: frozenset[str]  # the monitored resources its time series are written on; empty: any
    labels: frozenset[str]  # metric labels
    origin: str  # who writes it, for messages


def _built_in(type_: str, kind: str, value_type: str, resource: str, *labels: str) -> MetricFacts:
    return MetricFacts(type_, kind, value_type, frozenset({resource}), frozenset(labels), "Google")


_REQUEST_LABELS = ("response_code", "response_code_class", "route")
BUILT_IN_METRICS: dict[str, MetricFacts] = {
    m.type: m
    for m in (
        # Cloud Run services, and the gen2 functions (each runs as a Cloud Run service).
        _built_in("run.googleapis.com/request_count", "DELTA", "INT64", "cloud_run_revision", *_REQUEST_LABELS),
        _built_in(
            "run.googleapis.com/request_latencies", "DELTA", "DISTRIBUTION", "cloud_run_revision", *_REQUEST_LABELS
        ),
        _built_in("run.googleapis.com/container/instance_count", "GAUGE", "INT64", "cloud_run_revision", "state"),
        _built_in("run.googleapis.com/container/cpu/utilizations", "DELTA", "DISTRIBUTION", "cloud_run_revision"),
        _built_in("run.googleapis.com/container/memory/utilizations", "DELTA", "DISTRIBUTION", "cloud_run_revision"),
        # Cloud Run jobs (the scheduled checks).
        _built_in("run.googleapis.com/job/completed_execution_count", "DELTA", "INT64", "cloud_run_job", "result"),
        _built_in(
            "run.googleapis.com/job/completed_task_attempt_count",
            "DELTA",
            "INT64",
            "cloud_run_job",
            "result",
            "attempt",
        ),
        # Pub/Sub topics and subscriptions.
        _built_in(
            "pubsub.googleapis.com/subscription/num_undelivered_messages", "GAUGE", "INT64", "pubsub_subscription"
        ),
        _built_in(
            "pubsub.googleapis.com/subscription/oldest_unacked_message_age", "GAUGE", "INT64", "pubsub_subscription"
        ),
        _built_in(
            "pubsub.googleapis.com/subscription/dead_letter_message_count", "DELTA", "INT64", "pubsub_subscription"
        ),
        _built_in(
            "pubsub.googleapis.com/subscription/push_request_count",
            "DELTA",
            "INT64",
            "pubsub_subscription",
            "response_class",
            "response_code",
            "delivery_type",
        ),
        _built_in(
            "pubsub.googleapis.com/topic/send_message_operation_count",
            "DELTA",
            "INT64",
            "pubsub_topic",
            "response_code",
        ),
    )
}
# Google services whose metrics describe something the plan deploys.
DEPLOYED_SERVICES = {
    "run.googleapis.com": "the analytics service, the gen2 functions (as Cloud Run services) and the check jobs",
    "pubsub.googleapis.com": "the pipeline's topics and subscriptions",
}
GEN1_FUNCTION_METRICS = "cloudfunctions.googleapis.com/"


@dataclass(frozen=True)
class DeclaredLogMetric:
    name: str
    labels: frozenset[str]
    distribution: bool
    resource_types: frozenset[str] | None  # what its filter pins, if anything
    declared_by: str  # "dashboard phase3-handoff", "alert rule orchestrator-errors"


def facts(reference: str, log_metrics: dict[str, DeclaredLogMetric]) -> MetricFacts | str:
    """What is known about the metric a widget names, or why it is not in the plan."""
    type_ = metric_type(reference)
    if type_.startswith(LOG_METRIC_PREFIX):
        name = type_.removeprefix(LOG_METRIC_PREFIX)
        declared = log_metrics.get(name)
        if declared is None:
            known = ", ".join(sorted(log_metrics)) or "none"
            return f"log metric {name!r} is declared by no dashboard (spec.logMetrics) and no alert rule (spec.logMetric) (declared: {known})"
        return MetricFacts(
            type_,
            "DELTA",
            "DISTRIBUTION" if declared.distribution else "INT64",
            declared.resource_types or frozenset(),
            declared.labels,
            f"the log metric {name} ({declared.declared_by})",
        )
    if type_.startswith("custom.googleapis.com/"):
        custom = custom_metric(type_)
        if custom is None:
            listed = ", ".join(METRIC_PREFIX + name for name in sorted(CUSTOM_METRICS))
            return f"{type_} is not a declared custom metric, so nothing writes it (declared: {listed})"
        return MetricFacts(
            type_,
            custom.metric_kind,
            custom.value_type,
            frozenset({MONITORED_RESOURCE}),
            frozenset(),
            "the health check",
        )
    if type_.startswith(GEN1_FUNCTION_METRICS):
        return (
            f"{type_} is reported for 1st gen functions only; the plan deploys gen2 functions, which report as Cloud Run: "
            'run.googleapis.com/... on resource type cloud_run_revision with resource.labels.service_name="<function>"'
        )
    service = type_.split("/", 1)[0]
    if service not in DEPLOYED_SERVICES:
        deployed = "; ".join(f"{s} ({what})" for s, what in DEPLOYED_SERVICES.items())
        return f"{type_}: the plan deploys nothing that {service} reports on (charted services: {deployed})"
    if type_ not in BUILT_IN_METRICS:
        known = ", ".join(sorted(t for t in BUILT_IN_METRICS if t.startswith(service)))
        return (
            f"{type_} is not a {service} metric this lint knows (known: {known}); "
            "if it is real, add it to BUILT_IN_METRICS in phase3ops/dashboards/metrics.py"
        )
    return BUILT_IN_METRICS[type_]
