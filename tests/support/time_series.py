"""Time series as Cloud Monitoring stores them, and an offline evaluator of an alert policy's metric conditions.

Tests use these to ask "would this policy fire on these points?" of the
conditions the rules really build (`policy_body` parsed into the API's
AlertPolicy), against points shaped like the real signal (the TimeSeries
the health check sends, or the metric type, resource and labels Google
lists for a built-in metric).

The evaluation follows Cloud Monitoring's documented behaviour for metric
conditions (https://cloud.google.com/monitoring/alerts/concepts-indepth):
the alignment period is a look-back window ending at the evaluation time
(a series has an aligned value at t when it has a point in (t - period, t]);
the aligned values are reduced across series, grouped by the group-by
fields; a MetricThreshold compares that value; a MetricAbsence is met when
the aligned series has had no value for its whole `duration`, and only once
a point was written after the policy was created. It covers what the shipped
rules use (ALIGN_SUM/MAX/MIN/MEAN, REDUCE_SUM/MAX/MIN/MEAN/NONE, a 0s
threshold duration, the Monitoring filter's =, != and one_of/starts_with/
ends_with); anything else fails loudly instead of evaluating by accident.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from phase3ops.filters.language import And, Call, Comparison, FieldPath, Literal, Not, Or, parse_monitoring_filter


@dataclass(frozen=True)
class Series:
    metric_type: str
    resource_type: str
    resource_labels: dict[str, str] = field(default_factory=dict)
    metric_labels: dict[str, str] = field(default_factory=dict)
    points: tuple[tuple[dt.datetime, float], ...] = ()

    def selector(self, parts: tuple[str, ...]) -> str | None:
        if parts == ("metric", "type"):
            return self.metric_type
        if parts == ("resource", "type"):
            return self.resource_type
        if len(parts) == 3 and parts[1] in ("label", "labels") and parts[0] in ("metric", "resource"):
            return (self.metric_labels if parts[0] == "metric" else self.resource_labels).get(parts[2])
        raise NotImplementedError(f"the test evaluator does not select {'.'.join(parts)}")


def from_api(series: Any) -> Series:
    """A `monitoring_v3.TimeSeries` (what a client sends to create_time_series) as a Series."""
    points = []
    for point in series.points:
        kind = point.value._pb.WhichOneof("value")
        points.append((point.interval.end_time, float(getattr(point.value, kind))))
    return Series(
        series.metric.type,
        series.resource.type,
        dict(series.resource.labels),
        dict(series.metric.labels),
        tuple(points),
    )


def matches(filter_text: str, series: Series) -> bool:
    return _holds(parse_monitoring_filter(filter_text), series)


def _holds(node, series: Series) -> bool:
    if isinstance(node, And):
        return all(_holds(item, series) for item in node.items)
    if isinstance(node, Or):
        return any(_holds(item, series) for item in node.items)
    if isinstance(node, Not):
        return not _holds(node.item, series)
    if isinstance(node, Comparison) and isinstance(node.field, FieldPath) and node.operator in ("=", "!="):
        actual = series.selector(node.field.parts)
        found = actual is not None and _value_matches(actual, node.value)
        return found if node.operator == "=" else not found
    raise NotImplementedError(f"the test evaluator does not evaluate {node}")


def _value_matches(actual: str, value) -> bool:
    if isinstance(value, Literal):
        return actual == value.value
    if isinstance(value, Call) and all(isinstance(a, Literal) for a in value.arguments):
        arguments = [a.value for a in value.arguments if isinstance(a, Literal)]  # every one, as checked
        if value.name == "one_of":
            return actual in arguments
        if value.name == "starts_with":
            return actual.startswith(arguments[0])
        if value.name == "ends_with":
            return actual.endswith(arguments[0])
    raise NotImplementedError(f"the test evaluator does not evaluate the value {value}")


_ALIGNERS: dict[str, Callable[[list[float]], float]] = {
    "ALIGN_SUM": sum,
    "ALIGN_MAX": max,
    "ALIGN_MIN": min,
    "ALIGN_MEAN": lambda values: sum(values) / len(values),
}
_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "REDUCE_SUM": sum,
    "REDUCE_MAX": max,
    "REDUCE_MIN": min,
    "REDUCE_MEAN": lambda values: sum(values) / len(values),
}


def _aggregation(condition) -> tuple[str, str, float, tuple[str, ...]]:
    (aggregation,) = condition.aggregations
    return (
        aggregation.per_series_aligner.name,
        aggregation.cross_series_reducer.name,
        aggregation.alignment_period.total_seconds(),
        tuple(aggregation.group_by_fields),
    )


def _group_key(series: Series, group_by: tuple[str, ...]) -> tuple:
    return tuple(series.selector(tuple(name.split("."))) for name in group_by)


def aligned_values(condition, series: list[Series], at: dt.datetime) -> dict[tuple, float]:
    """The condition's reduced, aligned value at `at`, per group (no entry: no data)."""
    aligner, reducer, period, group_by = _aggregation(condition)
    if aligner not in _ALIGNERS or (reducer not in _REDUCERS and reducer != "REDUCE_NONE"):
        raise NotImplementedError(f"the test evaluator does not compute {aligner}/{reducer}")
    start = at - dt.timedelta(seconds=period)
    groups: dict[tuple, list[float]] = {}
    for item in series:
        if not matches(condition.filter, item):
            continue
        values = [value for when, value in item.points if start < when <= at]
        if values:
            key = _group_key(item, group_by) if reducer != "REDUCE_NONE" else (id(item),)
            groups.setdefault(key, []).append(_ALIGNERS[aligner](values))
    if reducer == "REDUCE_NONE":
        return {key: values[0] for key, values in groups.items()}
    return {key: _REDUCERS[reducer](values) for key, values in groups.items()}


def threshold_violations(condition, series: list[Series], at: dt.datetime) -> dict[tuple, float]:
    """The groups whose value crosses a MetricThreshold at `at` (its duration must be 0s)."""
    if condition.duration.total_seconds():
        raise NotImplementedError("the test evaluator evaluates a threshold with a 0s duration only")
    compare = {"COMPARISON_GT": float.__gt__, "COMPARISON_LT": float.__lt__}[condition.comparison.name]
    return {
        key: value
        for key, value in aligned_values(condition, series, at).items()
        if compare(float(value), condition.threshold_value)
    }


def absence_met(condition, series: list[Series], at: dt.datetime, policy_created: dt.datetime) -> bool:
    """Whether a MetricAbsence is met at `at`: the aligned series had no value for the whole duration,
    after a point was written since the policy was created."""
    written_since = any(
        policy_created <= when <= at for item in series if matches(condition.filter, item) for when, _ in item.points
    )
    if not written_since:
        return False
    aligner, reducer, period, _ = _aggregation(condition)
    if aligner not in _ALIGNERS or reducer not in _REDUCERS:
        raise NotImplementedError(f"the test evaluator does not compute {aligner}/{reducer}")
    # The aligned series has a value at t exactly when a raw point lies in (t - period, t]; so it has
    # had none for all t in (at - duration, at] exactly when no point lies in (at - duration - period, at].
    silent_since = at - dt.timedelta(seconds=condition.duration.total_seconds() + period)
    return not any(
        silent_since < when <= at for item in series if matches(condition.filter, item) for when, _ in item.points
    )
