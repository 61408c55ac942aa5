"""Time series as Cloud Monitoring stores them, and an offline evaluator of an alert policy's metric conditions.

`phase3ops alerts test` and the tests ask "would this policy fire on these
points?" of the conditions the rules really build (`policy_body` parsed into
the API's AlertPolicy message).

The evaluation follows Cloud Monitoring's documented behaviour for metric
conditions (https://cloud.google.com/monitoring/alerts/concepts-indepth):
the alignment period is a look-back window ending at the evaluation time (a
series has an aligned value at t when it has a point in (t - period, t]);
the aligned values are reduced across series, grouped by the group-by
fields; a MetricThreshold compares that value (or numerator / denominator,
when it has a denominator filter) and fires once it has crossed at every
evaluation, a minute apart, through its duration; a MetricAbsence is met
when the aligned series has had no value for its whole duration, and only
once a point was written after the policy was created.

Percentiles are taken over the observations themselves (nearest rank);
Cloud Monitoring interpolates within its histogram buckets, so a figure
right at a threshold may come out on the other side there. An operation
this evaluator does not implement raises NotImplementedError instead of
evaluating by accident.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from phase3ops.filters.language import And, Call, Comparison, FieldPath, Literal, Not, Or, parse_monitoring_filter
from phase3ops.monitoring.descriptors import kind_and_value_type

EVALUATION_STEP = dt.timedelta(minutes=1)  # how often Cloud Monitoring evaluates a metric condition

Value = float | tuple[float, ...]  # a number, or a distribution's observations


@dataclass(frozen=True)
class Series:
    metric_type: str
    resource_type: str
    resource_labels: dict[str, str] = field(default_factory=dict)
    metric_labels: dict[str, str] = field(default_factory=dict)
    points: tuple[tuple[dt.datetime, Value], ...] = ()

    def selector(self, parts: tuple[str, ...]) -> str | None:
        if parts == ("metric", "type"):
            return self.metric_type
        if parts == ("resource", "type"):
            return self.resource_type
        if len(parts) == 3 and parts[1] in ("label", "labels") and parts[0] in ("metric", "resource"):
            return (self.metric_labels if parts[0] == "metric" else self.resource_labels).get(parts[2])
        raise NotImplementedError(f"the evaluator does not select {'.'.join(parts)}")


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
    raise NotImplementedError(f"the evaluator does not evaluate {node}")


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
        if value.name == "has_substring":
            return arguments[0] in actual
    raise NotImplementedError(f"the evaluator does not evaluate the value {value}")


def percentile(observations: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest observation with at least `fraction` of them at or below it."""
    ordered = sorted(observations)
    if not ordered:
        raise ValueError("no observations")
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _merged(values: list[Value]) -> tuple[float, ...]:
    return tuple(o for value in values for o in (value if isinstance(value, tuple) else (value,)))


def _numbers(values: list[Value], operation: str) -> list[float]:
    if any(isinstance(v, tuple) for v in values):
        raise NotImplementedError(f"{operation} takes numbers; these are distributions")
    return [float(v) for v in values if not isinstance(v, tuple)]


def _sum(values: list[Value]) -> Value:
    """Numbers add up; distributions merge (the API's ALIGN_SUM and REDUCE_SUM keep the value type)."""
    if values and isinstance(values[0], tuple):
        return _merged(values)
    return sum(_numbers(values, "a sum"))


def _mean(values: list[Value]) -> float:
    merged = _merged(values)
    return sum(merged) / len(merged)


def _percentile_of(fraction: float) -> Callable[[list[Value]], float]:
    return lambda values: percentile(_merged(values), fraction)


_PERCENTILES = {"99": 0.99, "95": 0.95, "50": 0.50, "05": 0.05}
_REDUCERS: dict[str, Callable[[list[Value]], Value]] = {
    "REDUCE_SUM": _sum,
    "REDUCE_MAX": lambda values: max(_numbers(values, "REDUCE_MAX")),
    "REDUCE_MIN": lambda values: min(_numbers(values, "REDUCE_MIN")),
    "REDUCE_MEAN": _mean,
    "REDUCE_COUNT": lambda values: float(len(values)),
    **{f"REDUCE_PERCENTILE_{p}": _percentile_of(f) for p, f in _PERCENTILES.items()},
}


def _align(aligner: str, kind: str | None, in_window: list[Value], before: Value | None, period: float) -> Value:
    """One series' aligned value from its points in the window (`before`: its last point before it)."""
    if aligner in ("ALIGN_SUM", "ALIGN_DELTA", "ALIGN_RATE"):
        if kind == "CUMULATIVE":
            first = before if before is not None else in_window[0]
            total: Value = float(_numbers([in_window[-1]], aligner)[0] - _numbers([first], aligner)[0])
        else:
            total = _sum(in_window)
        if aligner != "ALIGN_RATE":
            return total
        return _numbers([total], "ALIGN_RATE")[0] / period
    if aligner == "ALIGN_MAX":
        return max(_numbers(in_window, aligner))
    if aligner == "ALIGN_MIN":
        return min(_numbers(in_window, aligner))
    if aligner == "ALIGN_MEAN":
        numbers = _numbers(in_window, aligner)
        return sum(numbers) / len(numbers)
    if aligner == "ALIGN_COUNT":
        return float(len(in_window))
    if aligner == "ALIGN_NEXT_OLDER":
        return in_window[-1]
    if aligner.startswith("ALIGN_PERCENTILE_"):
        return percentile(_merged(in_window), _PERCENTILES[aligner.rsplit("_", 1)[1]])
    raise NotImplementedError(f"the evaluator does not compute {aligner}")


def _group_key(series: Series, group_by: tuple[str, ...]) -> tuple:
    return tuple(series.selector(tuple(name.split("."))) for name in group_by)


def _aggregate(filter_text: str, aggregations: Any, series: list[Series], at: dt.datetime) -> dict[tuple, Value]:
    (aggregation,) = aggregations
    aligner = aggregation.per_series_aligner.name
    reducer = aggregation.cross_series_reducer.name
    period = aggregation.alignment_period.total_seconds()
    group_by = tuple(aggregation.group_by_fields)
    if reducer not in _REDUCERS and reducer != "REDUCE_NONE":
        raise NotImplementedError(f"the evaluator does not compute {reducer}")
    start = at - dt.timedelta(seconds=period)
    groups: dict[tuple, list[Value]] = {}
    for item in series:
        if not matches(filter_text, item):
            continue
        in_window = [value for when, value in item.points if start < when <= at]
        if not in_window:
            continue
        earlier = [value for when, value in item.points if when <= start]
        kind, _ = kind_and_value_type(item.metric_type)
        value = _align(aligner, kind, in_window, earlier[-1] if earlier else None, period)
        key = _group_key(item, group_by) if reducer != "REDUCE_NONE" else (id(item),)
        groups.setdefault(key, []).append(value)
    if reducer == "REDUCE_NONE":
        return {key: values[0] for key, values in groups.items()}
    return {key: _REDUCERS[reducer](values) for key, values in groups.items()}


def aligned_values(condition, series: list[Series], at: dt.datetime) -> dict[tuple, float]:
    """A MetricThreshold's (or MetricAbsence's) value at `at`, per group (no entry: no data); a
    threshold with a denominator gives numerator / denominator, where the denominator is not 0."""
    numerator = _aggregate(condition.filter, condition.aggregations, series, at)
    if not getattr(condition, "denominator_filter", ""):
        return {key: _scalar(value) for key, value in numerator.items()}
    denominator = _aggregate(condition.denominator_filter, condition.denominator_aggregations, series, at)
    return {
        key: _scalar(value) / _scalar(denominator[key])
        for key, value in numerator.items()
        if key in denominator and _scalar(denominator[key])
    }


def _scalar(value: Value) -> float:
    if isinstance(value, tuple):
        raise NotImplementedError("a distribution left unreduced cannot be compared with a threshold")
    return float(value)


_COMPARE = {"COMPARISON_GT": float.__gt__, "COMPARISON_LT": float.__lt__}


def threshold_violations(condition, series: list[Series], at: dt.datetime) -> dict[tuple, float]:
    """The groups whose value crosses a MetricThreshold at `at` (this one evaluation)."""
    compare = _COMPARE[condition.comparison.name]
    return {
        key: value
        for key, value in aligned_values(condition, series, at).items()
        if compare(float(value), condition.threshold_value)
    }


def threshold_met(condition, series: list[Series], at: dt.datetime) -> dict[tuple, float]:
    """The groups for which a MetricThreshold fires at `at`: crossed at every evaluation through its duration."""
    held = dt.timedelta(seconds=condition.duration.total_seconds())
    firing = threshold_violations(condition, series, at)
    step = EVALUATION_STEP
    while firing and step <= held:
        earlier = threshold_violations(condition, series, at - step)
        firing = {key: value for key, value in firing.items() if key in earlier}
        step += EVALUATION_STEP
    return firing


def absence_met(condition, series: list[Series], at: dt.datetime, policy_created: dt.datetime) -> bool:
    """Whether a MetricAbsence is met at `at`: the aligned series had no value for the whole duration,
    after a point was written since the policy was created."""
    written_since = any(
        policy_created <= when <= at for item in series if matches(condition.filter, item) for when, _ in item.points
    )
    if not written_since:
        return False
    (aggregation,) = condition.aggregations
    period = aggregation.alignment_period.total_seconds()
    # The aligned series has a value at t exactly when a raw point lies in (t - period, t]; so it has
    # had none for all t in (at - duration, at] exactly when no point lies in (at - duration - period, at].
    silent_since = at - dt.timedelta(seconds=condition.duration.total_seconds() + period)
    return not any(
        silent_since < when <= at for item in series if matches(condition.filter, item) for when, _ in item.points
    )
