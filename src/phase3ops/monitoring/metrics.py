"""Metric names and aggregations as Cloud Monitoring spells them, shared by alert rules and dashboard widgets."""

from __future__ import annotations

from typing import Any

LOG_METRIC_PREFIX = "logging.googleapis.com/user/"

LOG_METRIC_REFERENCE = "log:"

# statistic -> (per-series aligner, cross-series reducer)
STATISTICS = {
    "count": ("ALIGN_SUM", "REDUCE_SUM"),
    "sum": ("ALIGN_SUM", "REDUCE_SUM"),
    "mean": ("ALIGN_MEAN", "REDUCE_MEAN"),
    "max": ("ALIGN_MAX", "REDUCE_MAX"),
    "min": ("ALIGN_MIN", "REDUCE_MIN"),
    "rate": ("ALIGN_RATE", "REDUCE_SUM"),
}

# Metrics whose values are seconds: a threshold on one may state its value as a duration ("30m").
SECONDS_METRICS = frozenset(
    {
        "pubsub.googleapis.com/subscription/oldest_unacked_message_age",  # GAUGE INT64, unit s
    }
)


def metric_type(reference: str) -> str:
    """The full metric type a condition or widget names (`log:<name>` is a log-based metric)."""
    if reference.startswith(LOG_METRIC_REFERENCE):
        return LOG_METRIC_PREFIX + reference.removeprefix(LOG_METRIC_REFERENCE)
    return reference


def metric_filter(selector: dict[str, Any]) -> str:
    """A Monitoring filter from a selector: its metric, resource type and extra filter."""
    parts = [f'metric.type="{metric_type(selector["metric"])}"']
    if selector.get("resourceType"):
        parts.append(f'resource.type="{selector["resourceType"]}"')
    if selector.get("filter"):
        parts.append(f"({selector['filter'].strip()})")
    return " AND ".join(parts)


def counter_log_metric_body(metric: dict[str, Any]) -> dict[str, Any]:
    """A log-based counter from its spec (name, filter, description, labels: label -> log field)."""
    labels = metric.get("labels", {})
    body: dict[str, Any] = {
        "name": metric["name"],
        "filter": metric["filter"].strip(),
        "description": metric["description"],
        "metric_descriptor": {"metric_kind": "DELTA", "value_type": "INT64", "unit": "1"},
    }
    if labels:
        body["metric_descriptor"]["labels"] = [{"key": key, "value_type": "STRING"} for key in labels]
        body["label_extractors"] = {key: f"EXTRACT({field})" for key, field in labels.items()}
    return body
