"""Lints on what a rule's metrics are: known, on the right resource, with the labels it names, and
aggregated the way the API allows for their kind and value type; and PromQL that parses.

Cloud Monitoring refuses an aligner or reducer that its documentation does not
allow for the metric (`pulumi up` fails), and accepts a policy on a metric
or label nothing writes (it never fires). Both are caught here, at the
rule's file and line, with what would be allowed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from phase3ops.alerts.specs import AlertRule
from phase3ops.filters.language import MONITORING, label_restrictions
from phase3ops.filters.positions import block_scalar_line
from phase3ops.filters.vocabulary import MONITORED_RESOURCES
from phase3ops.monitoring import durations
from phase3ops.monitoring.aggregation_rules import aligned, aligner_problem, reducer_problem
from phase3ops.monitoring.descriptors import BUILT_IN_METRICS, DeclaredLogMetric, MetricFacts, facts
from phase3ops.monitoring.metrics import LOG_METRIC_PREFIX, PERCENTILES, STATISTICS, statistic_operations
from phase3ops.spec.documents import PathPart, SpecProblem

# Cloud Monitoring's PromQL spells a metric type's domain with underscores and ends it with a colon,
# and the rest of the path with underscores: run.googleapis.com/request_count is
# run_googleapis_com:request_count. A distribution is read as its _bucket, _count and _sum series.
DISTRIBUTION_SUFFIXES = ("_bucket", "_count", "_sum")


def _log_metrics(rule: AlertRule) -> dict[str, DeclaredLogMetric]:
    if not rule.log_metric:
        return {}
    metric = rule.log_metric
    declared = DeclaredLogMetric(
        metric["name"], frozenset(metric.get("labels", {})), False, None, f"alert rule {rule.name}"
    )
    return {metric["name"]: declared}


def _operations_problem(aligner: str, reducer: str, known: MetricFacts) -> str | None:
    """Why the API refuses this aligner and reducer on the metric, or the threshold could not compare
    what they leave; None when they are fine."""
    problem = aligner_problem(aligner, known.kind, known.value_type)
    if problem is not None:
        return problem
    kind, value_type = aligned(aligner, known.kind, known.value_type)
    problem = reducer_problem(reducer, kind, value_type)
    if problem is not None:
        return problem
    if reducer in ("REDUCE_NONE", "REDUCE_SUM") and value_type == "DISTRIBUTION":
        return f"{aligner} and {reducer} leave a distribution, which a threshold cannot compare"
    return None


def _statistics_allowed(known: MetricFacts) -> list[str]:
    return [
        statistic
        for statistic in STATISTICS
        if _operations_problem(*statistic_operations(statistic, known.kind, known.value_type), known) is None
    ]


def _aggregation_problem(selector: dict[str, Any], statistic: str, known: MetricFacts) -> tuple[str, str] | None:
    """(the field to blame, why) when the aggregation the rule asks for is not one the API allows."""
    override = selector.get("aggregation") or {}
    if statistic in PERCENTILES and known.value_type != "DISTRIBUTION":
        allowed = ", ".join(s for s in _statistics_allowed(known) if s not in PERCENTILES)
        return "statistic", (
            f"{statistic} is a percentile of a distribution's observations (request latencies); {known.type} is a "
            f"{known.kind} {known.value_type}: the statistics this metric allows: {allowed}"
        )
    aligner, reducer = statistic_operations(statistic, known.kind, known.value_type)
    aligner, reducer = override.get("aligner", aligner), override.get("reducer", reducer)
    what = f"{known.type} is a {known.kind} {known.value_type}"
    field = "aggregation" if override else "statistic"
    problem = _operations_problem(aligner, reducer, known)
    if problem is None:
        return None
    allowed = ", ".join(_statistics_allowed(known)) or "none"
    return field, f"{what}: {problem}; the statistics this metric allows: {allowed}"


def metrics_are_known_and_aggregated_as_the_api_allows(rule: AlertRule, context: Any) -> list[SpecProblem]:
    problems = []
    log_metrics = _log_metrics(rule)
    for path, selector in rule.metric_selectors():
        known = facts(selector["metric"], log_metrics)
        if isinstance(known, str):
            own_metric = "metric" in rule.stated(path)
            if own_metric and not selector["metric"].startswith(("log:", LOG_METRIC_PREFIX, "custom.googleapis.com/")):
                problems.append(rule.problem([*path, "metric"], known))
            continue  # a log or custom metric's own lints say what is wrong with it
        resource_type = selector.get("resourceType")
        if resource_type and known.resource_types and resource_type not in known.resource_types:
            types = " or ".join(sorted(known.resource_types))
            problems.append(
                rule.problem([*path, "resourceType"], f"{known.type} is written on {types}, never on {resource_type}")
            )
        problems += _label_problems(rule, path, selector, known)
        kind = path[-1] if path[-1] in ("threshold", "absence") else "ratio"
        statistic = selector.get("statistic", "count") if kind == "threshold" else "count"
        found = _aggregation_problem(selector, statistic, known)
        if found is not None:
            field, message = found
            problems.append(rule.problem([*path, field] if kind == "threshold" else [*path, "metric"], message))
    return problems


def _label_problems(
    rule: AlertRule, path: list[PathPart], selector: dict[str, Any], known: MetricFacts
) -> list[SpecProblem]:
    resource_type = selector.get("resourceType") or (
        next(iter(known.resource_types)) if len(known.resource_types) == 1 else None
    )
    resource_labels = MONITORED_RESOURCES.get(resource_type) if resource_type else None
    # A ratio groups both sides by its own groupBy (checked against each side's metric).
    group_path = path[:-1] if path[-1] in ("numerator", "denominator") else path
    same_metric = path[-1] == "denominator" and "metric" not in rule.stated(path)
    group_by = [] if same_metric else rule.stated(group_path).get("groupBy", [])  # said once for a shared metric
    named: list[tuple[list[PathPart], str, str, str, int | None]] = [
        ([*group_path, "groupBy", i], field.split(".")[0], field.split(".")[-1], field, None)
        for i, field in enumerate(group_by)
    ]
    named += [
        ([*path, "filter"], r.owner, r.key, r.source, r.offset)
        for r in label_restrictions(selector.get("filter", ""), MONITORING)
    ]
    problems = []
    for where, owner, key, written, offset in named:
        if owner == "metric" and key not in known.labels:
            have = ", ".join(sorted(known.labels)) or "none"
            message = f'{written}: "{key}" is not a label of {known.type} (its labels: {have})'
        elif owner == "resource" and resource_labels is not None and key not in resource_labels:
            message = f'{written}: "{key}" is not a label of {resource_type} (its labels: {", ".join(sorted(resource_labels))})'
        else:
            continue
        problem = rule.problem(where, message)
        if offset is not None:
            line = block_scalar_line(rule.document, ["spec", *where], selector["filter"], offset)
            problem = dataclasses.replace(problem, line=line) if line else problem
        problems.append(problem)
    return problems


def promql_name(metric_type: str) -> str:
    """The name Cloud Monitoring's PromQL gives a metric type."""
    domain, _, path = metric_type.partition("/")
    return domain.replace(".", "_").replace("-", "_") + ":" + path.replace("/", "_").replace(".", "_")


PROMQL_NAMES = {promql_name(t): m for t, m in BUILT_IN_METRICS.items()}


def promql_parses_and_names_known_metrics(rule: AlertRule, context: Any) -> list[SpecProblem]:
    import promql_parser

    problems = []
    for index, condition in enumerate(rule.conditions):
        if "promql" not in condition:
            continue
        path: list[PathPart] = ["conditions", index, "promql", "query"]
        query = condition["promql"]["query"]
        try:
            expression = promql_parser.parse(query)
        except ValueError as error:
            problems.append(rule.problem(path, f"not a valid PromQL expression: {error}"))
            continue
        for name in promql_metric_names(expression):
            message = _promql_name_problem(name)
            if message:
                problems.append(rule.problem(path, message))
        interval = condition["promql"].get("evaluationInterval")
        if interval and durations.seconds(interval) % 30:
            problems.append(
                rule.problem(
                    ["conditions", index, "promql", "evaluationInterval"],
                    f"{interval}: the evaluation interval must be a multiple of 30s",
                )
            )
    return problems


def promql_metric_names(expression: Any) -> list[str]:
    """The metric names a parsed PromQL expression selects."""
    import promql_parser

    names: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.append(node.name)

    promql_parser.walk(expression, collect)
    return names


def _promql_name_problem(name: str) -> str | None:
    domain, colon, _ = name.partition(":")
    if not colon or not domain.endswith("_googleapis_com"):
        return None  # a Prometheus metric of its own (Managed Service for Prometheus)
    if name.startswith("logging_googleapis_com:user_") or domain == "custom_googleapis_com":
        return None  # log-based and custom metrics have lints of their own
    if name in PROMQL_NAMES:
        known = PROMQL_NAMES[name]
        if known.value_type == "DISTRIBUTION":
            return f"{name} is a distribution: PromQL reads it as {name}_bucket, {name}_count or {name}_sum"
        return None
    for suffix in DISTRIBUTION_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in PROMQL_NAMES:
            known = PROMQL_NAMES[base]
            if known.value_type != "DISTRIBUTION":
                return f"{name}: {base} is a {known.kind} {known.value_type}, not a distribution; it has no {suffix} series"
            return None
    service = domain.removesuffix("_googleapis_com")
    candidates = sorted(n for n in PROMQL_NAMES if n.startswith(domain + ":"))
    listed = ", ".join(candidates) if candidates else f"no {service} metric is in the table"
    return f"{name} names no metric in the descriptor table (known here: {listed}); if it is real, refresh the table: scripts/refresh_metric_descriptors.py --project <project>"
