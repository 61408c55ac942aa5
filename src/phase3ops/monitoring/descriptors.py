"""What is known about a metric an alert rule or a dashboard names: kind, value type, resource types, labels.

A policy or chart on a metric nobody writes is not an error anywhere: Cloud
Monitoring draws "No data is available" forever and the alert never fires.
So a rule or widget may name only

* `custom.googleapis.com/phase3/...`: a metric the health check writes and
  the infra declares (`phase3ops.monitoring.custom_metrics`);
* `log:<name>` (or `logging.googleapis.com/user/<name>`): a log-based metric
  a dashboard or an alert rule declares, which the infra creates;
* a built-in metric of a Google service the plan deploys something on, from
  the vendored descriptor table `data/metric-descriptors.json` (Google's
  published metric lists; `scripts/refresh_metric_descriptors.py` rewrites it
  from the Monitoring API's metricDescriptors.list).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

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
    unit: str = ""


DESCRIPTORS_FILE = Path(__file__).parent / "data" / "metric-descriptors.json"


def _load_built_in(path: Path = DESCRIPTORS_FILE) -> dict[str, MetricFacts]:
    table = json.loads(path.read_text(encoding="utf-8"))
    return {
        m["type"]: MetricFacts(
            m["type"],
            m["metricKind"],
            m["valueType"],
            frozenset(m["monitoredResourceTypes"]),
            frozenset(m["labels"]),
            "Google",
            m.get("unit", ""),
        )
        for m in table["metrics"]
    }


BUILT_IN_METRICS: dict[str, MetricFacts] = _load_built_in()
# Google services whose metrics describe something the plan deploys.
DEPLOYED_SERVICES = {
    "run.googleapis.com": "the analytics service, the gen2 functions (as Cloud Run services) and the check jobs",
    "pubsub.googleapis.com": "the pipeline's topics and subscriptions",
    "firestore.googleapis.com": "the orchestrator's and the locks' database",
    "bigquery.googleapis.com": "the warehouse",
    "logging.googleapis.com": "every workload's logs",
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
        close = difflib.get_close_matches(type_, list(BUILT_IN_METRICS), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return (
            f"{type_} is not a {service} metric this lint knows ({hint}known: {known}); "
            "if it is real, refresh the table: scripts/refresh_metric_descriptors.py --project <project>"
        )
    return BUILT_IN_METRICS[type_]


def kind_and_value_type(reference: str, distributions: frozenset[str] = frozenset()) -> tuple[str | None, str | None]:
    """The metric kind and value type of what a selector names (None, None when nothing knows it).
    A log-based metric is a DELTA: a distribution if it is among `distributions` (the names
    declared with a value extractor), else a counter."""
    type_ = metric_type(reference)
    if type_.startswith(LOG_METRIC_PREFIX):
        return "DELTA", "DISTRIBUTION" if type_.removeprefix(LOG_METRIC_PREFIX) in distributions else "INT64"
    custom = custom_metric(type_)
    if custom is not None:
        return custom.metric_kind, custom.value_type
    known = BUILT_IN_METRICS.get(type_)
    return (known.kind, known.value_type) if known else (None, None)
