"""Semantic lints: what the Dashboards API would refuse, and charts that would never show anything.

Each lint is a plain function (dashboard, context) -> problems, listed in
LINTS with the failure it prevents. They run after the schema checks, on the
dashboard as merged with the stack's overrides; each problem is located at
the file and line that wrote the value.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from phase3ops.dashboards.render import dashboard_body, to_proto, widget_body
from phase3ops.dashboards.specs import Dashboard, DashboardSpecs, tile_widths
from phase3ops.filters.language import (
    LOGGING,
    MONITORING,
    cloud_function_mentions,
    filter_problems,
    gen2_function_hint,
    label_restrictions,
    pinned_resource_types,
    resource_type_problems,
)
from phase3ops.filters.positions import block_scalar_line
from phase3ops.filters.vocabulary import MONITORED_RESOURCES
from phase3ops.monitoring.api_limits import MAX_DOCUMENTATION_LINKS
from phase3ops.monitoring.descriptors import DeclaredLogMetric, MetricFacts, facts
from phase3ops.spec.documents import PathPart, SpecProblem

# Resource labels that name something the infra deploys, and what they must name.
_NAMING_LABELS = {
    "service_name": ("service", "function"),  # a gen2 function runs as the Cloud Run service of its name
    "configuration_name": ("service", "function"),
    "function_name": ("function",),
    "job_name": ("job",),
    "subscription_id": ("subscription",),
    "topic_id": ("topic",),
}
_PERCENTILES = ("p50", "p95", "p99")
_DISTRIBUTION_STATISTICS = ("mean", *_PERCENTILES)


@dataclass(frozen=True)
class LintContext:
    deployed: dict[str, str]  # deployed name -> function | service | job | subscription | topic
    log_metrics: dict[str, DeclaredLogMetric]  # every log metric the plan creates, by name


Lint = Callable[[Dashboard, LintContext], list[SpecProblem]]


@dataclass(frozen=True)
class Selector:
    """One metric a widget charts: a chart's series or a scorecard."""

    path: tuple[PathPart, ...]  # in the merged spec
    body: dict[str, Any]


def selectors(dashboard: Dashboard) -> Iterator[Selector]:
    for tile in dashboard.tiles:
        if tile.kind == "xyChart":
            for index, series in enumerate(tile.body["series"]):
                yield Selector((*tile.path, "xyChart", "series", index), series)
        elif tile.kind == "scorecard":
            yield Selector((*tile.path, "scorecard"), tile.body)


def filters(dashboard: Dashboard) -> Iterator[tuple[tuple[PathPart, ...], str, str, str | None]]:
    """(path, language, text, resource type) of every filter: log metrics, logs panels, series."""
    for index, metric in enumerate(dashboard.log_metrics):
        yield ("logMetrics", index, "filter"), LOGGING, metric["filter"], None
    for tile in dashboard.tiles:
        if tile.kind == "logsPanel":
            yield (*tile.path, "logsPanel", "filter"), LOGGING, tile.body["filter"], None
    for selector in selectors(dashboard):
        if selector.body.get("filter"):
            yield (*selector.path, "filter"), MONITORING, selector.body["filter"], selector.body.get("resourceType")


def _located(dashboard: Dashboard, path: tuple[PathPart, ...], text: str, offset: int, message: str) -> SpecProblem:
    """A problem at character `offset` of the filter at `path`: on its own line when the filter is a block."""
    problem = dashboard.problem(path, message)
    document, written = dashboard.written(path)
    line = block_scalar_line(document, written, text, offset)
    return dataclasses.replace(problem, line=line) if line else problem


# -- the lints ---------------------------------------------------------------


def metrics_exist_in_the_plan(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """A chart on a metric nothing writes shows "No data" forever; no API call fails to say so."""
    return [
        dashboard.problem((*s.path, "metric"), found)
        for s in selectors(dashboard)
        if isinstance(found := facts(s.body["metric"], context.log_metrics), str)
    ]


def resource_type_matches_the_metric(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """A metric is written on certain resource types; a series asking for another one selects nothing."""
    problems = []
    for s in selectors(dashboard):
        known = facts(s.body["metric"], context.log_metrics)
        resource_type = s.body.get("resourceType")
        if resource_type and resource_type_problems(resource_type):
            problems += [dashboard.problem((*s.path, "resourceType"), m) for m in resource_type_problems(resource_type)]
        elif (
            isinstance(known, MetricFacts)
            and resource_type
            and known.resource_types
            and resource_type not in known.resource_types
        ):
            types = " or ".join(sorted(known.resource_types))
            problems.append(
                dashboard.problem(
                    (*s.path, "resourceType"),
                    f"{known.type} is written on {types}, never on {resource_type} ({known.origin})",
                )
            )
    return problems


def statistic_fits_the_metric(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """Aligners the API refuses for the metric's kind and value type ("The aligner ... is not valid for ...")."""
    problems = []
    for s in selectors(dashboard):
        known = facts(s.body["metric"], context.log_metrics)
        if not isinstance(known, MetricFacts):
            continue
        statistic = s.body["statistic"]
        where = (*s.path, "statistic")
        if known.value_type == "DISTRIBUTION" and statistic not in _DISTRIBUTION_STATISTICS:
            problems.append(
                dashboard.problem(
                    where,
                    f"{known.type} is a distribution: chart its {', '.join(_DISTRIBUTION_STATISTICS)}, not its {statistic}",
                )
            )
        elif known.value_type != "DISTRIBUTION" and statistic in _PERCENTILES:
            problems.append(
                dashboard.problem(
                    where, f"{statistic} needs a distribution metric; {known.type} is {known.kind} {known.value_type}"
                )
            )
        elif known.kind == "GAUGE" and statistic == "rate":
            problems.append(
                dashboard.problem(where, f"{known.type} is a GAUGE: a rate of it means nothing (use max, min or mean)")
            )
    return problems


def labels_exist(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """groupBy and filters on a label the metric or resource does not have: one empty line, or no data."""
    problems = []
    for s in selectors(dashboard):
        known = facts(s.body["metric"], context.log_metrics)
        if not isinstance(known, MetricFacts):
            continue
        resource_type = s.body.get("resourceType") or (
            next(iter(known.resource_types)) if len(known.resource_types) == 1 else None
        )
        resource_labels = MONITORED_RESOURCES.get(resource_type) if resource_type else None
        named = [
            ((*s.path, "groupBy", i), field.split(".")[0], field.split(".")[2], field)
            for i, field in enumerate(s.body.get("groupBy", []))
        ]
        named += [
            ((*s.path, "filter"), r.owner, r.key, r.source)
            for r in label_restrictions(s.body.get("filter", ""), MONITORING)
        ]
        for where, owner, key, written in named:
            if owner == "metric" and key not in known.labels:
                have = ", ".join(sorted(known.labels)) or "none"
                problems.append(
                    dashboard.problem(where, f'{written}: "{key}" is not a label of {known.type} (its labels: {have})')
                )
            elif owner == "resource" and resource_labels is not None and key not in resource_labels:
                have = ", ".join(sorted(resource_labels))
                problems.append(
                    dashboard.problem(
                        where, f'{written}: "{key}" is not a label of {resource_type} (its labels: {have})'
                    )
                )
    return problems


def filters_parse_and_name_real_things(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """The filter languages' syntax and names (fields, severities, resource types), as for alert rules."""
    return [
        _located(dashboard, path, text, problem.offset, str(problem))
        for path, language, text, resource_type in filters(dashboard)
        for problem in filter_problems(text, language, resource_type)
    ]


def names_only_deployed_things(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """A filter naming a service, function, job, subscription or topic the plan does not deploy selects nothing."""
    problems = []
    for path, language, text, _resource_type in filters(dashboard):
        for restriction in label_restrictions(text, language):
            kinds = _NAMING_LABELS.get(restriction.key)
            if restriction.owner != "resource" or kinds is None:
                continue
            candidates = sorted(name for name, kind in context.deployed.items() if kind in kinds)
            if not any(restriction.admits(name) for name in candidates):
                message = f"{restriction.source} names nothing the infra deploys (deployed {' or '.join(k + 's' for k in kinds)}: {', '.join(candidates)})"
                problems.append(_located(dashboard, path, text, restriction.offset, message))
    return problems


def gen2_functions_report_as_cloud_run(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """resource.type cloud_function never matches a gen2 function's logs or metrics."""
    functions = sorted(name for name, kind in context.deployed.items() if kind == "function")
    hint = gen2_function_hint(functions)
    problems = [
        dashboard.problem(
            (*s.path, "resourceType"), f"cloud_function never matches a gen2 function: its metrics arrive as {hint}"
        )
        for s in selectors(dashboard)
        if s.body.get("resourceType") == "cloud_function"
    ]
    for path, _language, text, _ in filters(dashboard):
        for offset in cloud_function_mentions(text):
            message = (
                f'resource.type="cloud_function" never matches a gen2 function: its logs and metrics arrive as {hint}'
            )
            problems.append(_located(dashboard, path, text, offset, message))
    return problems


def log_metrics_are_used(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """A log metric no widget charts costs a metric and shows nothing."""
    used = {
        s.body["metric"].removeprefix("log:").removeprefix("logging.googleapis.com/user/") for s in selectors(dashboard)
    }
    return [
        dashboard.problem(
            ("logMetrics", index, "name"),
            f"log metric {metric['name']!r} is declared but no widget charts it (metric: log:{metric['name']})",
        )
        for index, metric in enumerate(dashboard.log_metrics)
        if metric["name"] not in used
    ]


def distribution_buckets_increase(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """The Logging API refuses explicit bucket bounds that do not strictly increase."""
    problems = []
    for index, metric in enumerate(dashboard.log_metrics):
        bounds = (metric.get("distribution") or {}).get("bounds", [])
        for position in range(1, len(bounds)):
            if bounds[position] <= bounds[position - 1]:
                path = ("logMetrics", index, "distribution", "bounds", position)
                problems.append(
                    dashboard.problem(
                        path, f"bucket bounds must strictly increase: {bounds[position]} follows {bounds[position - 1]}"
                    )
                )
    return problems


def tiles_fit_the_grid(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """The API refuses a tile that reaches past the grid's columns."""
    problems = []
    for r, row in enumerate(dashboard.spec["rows"]):
        widths = tile_widths(row["tiles"], dashboard.columns)
        if sum(widths) > dashboard.columns:
            text = " + ".join(f"{w} ({t['id']})" for w, t in zip(widths, row["tiles"]))
            problems.append(
                dashboard.problem(
                    ("rows", r, "tiles"),
                    f"the tiles are {text} = {sum(widths)} columns wide; the grid has {dashboard.columns}",
                )
            )
    return problems


def is_a_valid_api_object(dashboard: Dashboard, context: LintContext) -> list[SpecProblem]:
    """The client library's Dashboard message parses the body strictly; each widget first, to name its tile."""
    from google.cloud import monitoring_dashboard_v1

    problems = []
    for tile in dashboard.tiles:
        try:
            monitoring_dashboard_v1.Widget.from_json(json.dumps(widget_body(tile)), ignore_unknown_fields=False)
        except Exception as exc:  # the proto parser's errors are the API's own refusals
            problems.append(
                dashboard.problem(tile.path, f"tile {tile.id!r} is not a valid Cloud Monitoring widget: {exc}")
            )
    if problems:
        return problems
    try:
        to_proto(dashboard_body(dashboard))
    except Exception as exc:
        return [dashboard.problem((), f"not a valid Cloud Monitoring Dashboard: {exc}")]
    return []


LINTS: tuple[Lint, ...] = (
    metrics_exist_in_the_plan,
    resource_type_matches_the_metric,
    statistic_fits_the_metric,
    labels_exist,
    filters_parse_and_name_real_things,
    names_only_deployed_things,
    gen2_functions_report_as_cloud_run,
    log_metrics_are_used,
    distribution_buckets_increase,
    tiles_fit_the_grid,
    is_a_valid_api_object,
)


def lint(specs: DashboardSpecs, context: LintContext) -> list[SpecProblem]:
    problems = [problem for dashboard in specs.dashboards for check in LINTS for problem in check(dashboard, context)]
    return problems + _cross_dashboard_problems(specs, context)


def _cross_dashboard_problems(specs: DashboardSpecs, context: LintContext) -> list[SpecProblem]:
    problems = []
    for dashboard in specs.dashboards:
        for index, metric in enumerate(dashboard.log_metrics):
            owner = context.log_metrics.get(metric["name"])
            if owner is not None and owner.declared_by != f"dashboard {dashboard.name}":
                problems.append(
                    dashboard.problem(
                        ("logMetrics", index, "name"),
                        f"log metric {metric['name']!r} is already declared by {owner.declared_by}: chart it as log:{metric['name']} instead",
                    )
                )
    # Every alert policy links every dashboard, beside its runbook.
    room = MAX_DOCUMENTATION_LINKS - 1
    for dashboard in specs.dashboards[room:]:
        problems.append(
            dashboard.problem(
                (),
                f"an alert policy keeps at most {MAX_DOCUMENTATION_LINKS} links (its runbook and {room} dashboards), "
                f"and every policy links every dashboard: {len(specs.dashboards)} dashboards is too many",
            )
        )
    return problems


def declared_log_metrics(
    specs: DashboardSpecs, alert_rules: Any
) -> tuple[dict[str, DeclaredLogMetric], list[SpecProblem]]:
    """Every log metric the plan creates: the dashboards' and the alert rules'. The first declaration of a name wins
    (a second one is reported by `lint`); two in one dashboard are reported here."""
    declared: dict[str, DeclaredLogMetric] = {}
    problems = []
    for rule in alert_rules:
        if rule.log_metric:
            declared.setdefault(rule.log_metric["name"], _declared(rule.log_metric, f"alert rule {rule.name}"))
    for dashboard in specs.dashboards:
        for index, metric in enumerate(dashboard.log_metrics):
            name = metric["name"]
            if name in declared and declared[name].declared_by == f"dashboard {dashboard.name}":
                problems.append(
                    dashboard.problem(
                        ("logMetrics", index, "name"), f"log metric {name!r} is declared twice in this dashboard"
                    )
                )
                continue
            declared.setdefault(name, _declared(metric, f"dashboard {dashboard.name}"))
    return declared, problems


def _declared(metric: dict[str, Any], by: str) -> DeclaredLogMetric:
    """An alert rule's logMetric is a counter (no `distribution`); a dashboard's may be either."""
    pinned = frozenset(pinned_resource_types(metric["filter"], LOGGING) or ())
    return DeclaredLogMetric(
        metric["name"], frozenset(metric.get("labels", {})), bool(metric.get("distribution")), pinned, by
    )
