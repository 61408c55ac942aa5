"""Metric names and aggregations as Cloud Monitoring spells them, shared by alert rules and dashboard widgets."""

from __future__ import annotations

from typing import Any

LOG_METRIC_PREFIX = "logging.googleapis.com/user/"

LOG_METRIC_REFERENCE = "log:"

# statistic -> (per-series aligner, cross-series reducer), for a DELTA or GAUGE number. A percentile
# keeps each series' distribution (ALIGN_DELTA) and takes the percentile of them all together.
STATISTICS = {
    "count": ("ALIGN_SUM", "REDUCE_SUM"),
    "sum": ("ALIGN_SUM", "REDUCE_SUM"),
    "mean": ("ALIGN_MEAN", "REDUCE_MEAN"),
    "max": ("ALIGN_MAX", "REDUCE_MAX"),
    "min": ("ALIGN_MIN", "REDUCE_MIN"),
    "rate": ("ALIGN_RATE", "REDUCE_SUM"),
    "p50": ("ALIGN_DELTA", "REDUCE_PERCENTILE_50"),
    "p95": ("ALIGN_DELTA", "REDUCE_PERCENTILE_95"),
    "p99": ("ALIGN_DELTA", "REDUCE_PERCENTILE_99"),
}
PERCENTILES = ("p50", "p95", "p99")


def statistic_operations(statistic: str, kind: str | None = None, value_type: str | None = None) -> tuple[str, str]:
    """The aligner and reducer that compute `statistic` on a metric of this kind and value type
    (unknown: as for a DELTA number). The API allows ALIGN_SUM only on DELTA and GAUGE series, and
    ALIGN_MEAN only on numbers: a CUMULATIVE counter is counted with ALIGN_DELTA, and the mean of a
    distribution is its merged distribution's mean (ALIGN_DELTA, REDUCE_MEAN)."""
    aligner, reducer = STATISTICS[statistic]
    counts_a_cumulative = statistic in ("count", "sum") and kind == "CUMULATIVE"
    averages_a_distribution = statistic == "mean" and value_type == "DISTRIBUTION" and kind != "GAUGE"
    if counts_a_cumulative or averages_a_distribution:
        aligner = "ALIGN_DELTA"
    elif statistic in PERCENTILES and kind == "GAUGE":
        # ALIGN_DELTA takes CUMULATIVE and DELTA series only: each series' own percentile, the worst of them.
        aligner, reducer = "ALIGN_PERCENTILE_" + statistic[1:], "REDUCE_MAX"
    return aligner, reducer


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
