"""Semantic lints: what Cloud Monitoring would reject at deploy time, or accept and never fire.

Each lint is a plain function (rule, context) -> problems, listed in LINTS
with the failure it prevents. They run after the schema checks, on the rule
as merged with defaults and the stack's overrides.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from phase3ops.alerts.metric_lints import (
    metrics_are_known_and_aggregated_as_the_api_allows,
    promql_parses_and_names_known_metrics,
)
from phase3ops.alerts.policies import absence_lookback, absence_silence_seconds, policy_body, to_proto
from phase3ops.alerts.schedules import RUN_ALLOWANCE_SECONDS, ScheduleError, longest_gap_seconds
from phase3ops.alerts.specs import AlertRule, AlertSpecs
from phase3ops.filters.language import (
    LOGGING,
    MONITORING,
    cloud_function_mentions,
    filter_problems,
    gen2_function_hint,
    resource_type_problems,
)
from phase3ops.filters.positions import block_scalar_line
from phase3ops.input_bounds import quoted
from phase3ops.monitoring import durations
from phase3ops.monitoring.custom_metrics import CUSTOM_METRICS, METRIC_PREFIX, custom_metric
from phase3ops.monitoring.metrics import LOG_METRIC_REFERENCE, SECONDS_METRICS, STATISTICS, metric_type
from phase3ops.spec.documents import PathPart, SpecProblem

_WORKLOAD_NAME = re.compile(
    r'resource\.labels?\.(service_name|function_name|job_name|configuration_name)\s*=\s*"([^"]+)"'
)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# The command whose runs write the custom metrics (phase3ops.checks.metrics).
HEALTH_COMMAND = "health"
# Aligners that add up a counter's values over the alignment period.
_COUNTING_ALIGNERS = {"ALIGN_SUM", "ALIGN_DELTA"}


@dataclass(frozen=True)
class LintContext:
    channels: frozenset[str]
    workloads: dict[str, str]  # deployed name -> function | service | job
    repo_root: Path
    pipeline: Any = None  # the PipelineSpec, for what its scheduled checks write and when


Lint = Callable[[AlertRule, LintContext], list[SpecProblem]]


def _filters(rule: AlertRule) -> Iterator[tuple[list[Any], str]]:
    """Every filter in the rule with its path: conditions and the log metric."""
    for index, condition in enumerate(rule.conditions):
        if "logMatch" in condition:
            yield ["conditions", index, "logMatch", "filter"], condition["logMatch"]["filter"]
    for path, selector in rule.metric_selectors():
        if selector.get("filter") and "filter" in rule.stated(path):
            yield [*path, "filter"], selector["filter"]
    if rule.log_metric:
        yield ["logMetric", "filter"], rule.log_metric["filter"]


def log_match_needs_rate_limit(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    if any("logMatch" in c for c in rule.conditions) and not rule.spec.get("notify", {}).get("rateLimit"):
        return [
            rule.problem(
                ["notify"],
                "a log-match condition needs notify.rateLimit (the API rejects it without notification_rate_limit)",
            )
        ]
    return []


def log_match_is_the_only_condition(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    if any("logMatch" in c for c in rule.conditions) and len(rule.conditions) > 1:
        return [
            rule.problem(
                ["conditions"],
                f"a log-match condition must be the policy's only condition (found {len(rule.conditions)})",
            )
        ]
    return []


def gen2_functions_log_as_cloud_run(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    functions = [name for name, kind in context.workloads.items() if kind == "function"]
    problems = []
    for path, text in _filters(rule):
        if cloud_function_mentions(text):
            message = f'resource.type="cloud_function" never matches a gen2 function: its logs and metrics arrive as {gen2_function_hint(functions)}'
            problems.append(rule.problem(path, message))
    return problems


def aligner_matches_window(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    problems = []
    for index, condition in enumerate(rule.conditions):
        kind = next(iter(condition))
        body = condition[kind]
        override = body.get("aggregation") or {}
        path: list[PathPart] = ["conditions", index, kind, "aggregation"]
        if kind in ("logMatch", "promql", "ratio") or not override:
            continue
        window = body["window"]
        period = override.get("alignmentPeriod")
        if kind == "absence" and period and durations.seconds(period) != durations.seconds(absence_lookback(body)):
            problems.append(
                rule.problem(
                    path + ["alignmentPeriod"],
                    f"aligns over {period} but the rule states a lookback of {absence_lookback(body)}",
                )
            )
        elif kind != "absence" and period and durations.seconds(period) != durations.seconds(window):
            problems.append(
                rule.problem(
                    path + ["alignmentPeriod"], f"aligns over {period} but the rule states a window of {window}"
                )
            )
        statistic = body.get("statistic", "count")
        aligner = override.get("aligner")
        if not aligner:
            continue
        if statistic in ("count", "sum") and aligner not in _COUNTING_ALIGNERS:
            hint = (
                " (a per-second rate: the threshold would have to be reached every second)"
                if aligner == "ALIGN_RATE"
                else ""
            )
            problems.append(
                rule.problem(
                    path + ["aligner"],
                    f"{aligner} does not count over the {window} window the rule states{hint}; use ALIGN_SUM or ALIGN_DELTA",
                )
            )
        elif statistic not in ("count", "sum") and aligner != STATISTICS[statistic][0]:
            problems.append(
                rule.problem(
                    path + ["aligner"],
                    f"{aligner} does not compute the {statistic} the rule states ({STATISTICS[statistic][0]})",
                )
            )
    return problems


ABSENCE_WINDOW = (120, 84_600)  # 2 minutes .. 23.5 hours (MetricAbsence.duration)
ALERT_ALIGNMENT_PERIOD = (60, 90_000)  # 1 minute .. 25 hours (Aggregation.alignment_period, for alerting policies)


def durations_the_api_accepts(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    """Windows and durations the API would refuse at deploy time."""
    problems = []
    for index, condition in enumerate(rule.conditions):
        kind = next(iter(condition))
        body = condition[kind]
        path: list[PathPart] = ["conditions", index, kind]
        if kind in ("logMatch", "promql"):
            continue
        window = durations.seconds(body["window"])
        if window < 60 or window % 60:
            problems.append(
                rule.problem(path + ["window"], f"{body['window']} is not a whole number of minutes (at least 1m)")
            )
        if kind == "absence" and not ABSENCE_WINDOW[0] <= window <= ABSENCE_WINDOW[1]:
            problems.append(
                rule.problem(path + ["window"], f"{body['window']}: an absence window must be between 2m and 23.5h")
            )
        if kind == "absence" and "lookback" in body:
            lookback = durations.seconds(body["lookback"])
            if lookback % 60 or not ALERT_ALIGNMENT_PERIOD[0] <= lookback <= ALERT_ALIGNMENT_PERIOD[1]:
                message = f"{body['lookback']}: a lookback (an alerting policy's alignment period) must be whole minutes between 1m and 25h"
                problems.append(rule.problem(path + ["lookback"], message))
        held = durations.seconds(body.get("for", "0s"))
        if held % 60:
            problems.append(rule.problem(path + ["for"], f"{body['for']} is not a whole number of minutes"))
    return problems


def duration_values_only_on_seconds(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    """A threshold written as a duration ("30m") is compared in seconds: only a metric in seconds means that."""
    problems = []
    for index, condition in enumerate(rule.conditions):
        threshold = condition.get("threshold")
        if not threshold or not isinstance(threshold.get("value"), str):
            continue
        metric = metric_type(threshold["metric"])
        if metric not in SECONDS_METRICS or threshold.get("statistic") in ("count", "sum", "rate"):
            known = ", ".join(sorted(SECONDS_METRICS))
            problems.append(
                rule.problem(
                    ["conditions", index, "threshold", "value"],
                    f"{threshold['value']} is a duration: it compares in seconds, which only a mean/max/min of a metric "
                    f"measured in seconds means (known: {known}); write a number",
                )
            )
    return problems


def absence_outlasts_the_writers_schedule(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    """An absence guard on a health metric that is shorter than the time between two health check runs fires every day."""
    if context.pipeline is None:
        return []

    problems = []
    writers = health_check_jobs(context.pipeline)
    for index, condition in enumerate(rule.conditions):
        absence = condition.get("absence")
        if not absence or custom_metric(metric_type(absence["metric"])) is None:
            continue
        path: list[PathPart] = ["conditions", index, "absence", "window"]
        if not writers:
            problems.append(
                rule.problem(
                    path,
                    f"{absence['metric']} is written by the health check, and no scheduled check in pipeline.yaml runs `health`: it never has data",
                )
            )
            continue
        try:
            gap = longest_gap_seconds(tuple(job.schedule for job in writers), context.pipeline.timezone)
        except ScheduleError as error:
            problems.append(rule.problem(path, f"cannot tell when the health check runs: {error}"))
            continue
        needed = gap + RUN_ALLOWANCE_SECONDS
        if absence_silence_seconds(absence) <= needed:
            runs = ", ".join(f"{job.name} ({job.schedule})" for job in writers)
            problems.append(
                rule.problem(
                    path,
                    f"fires after {durations.human_seconds(absence_silence_seconds(absence))} without data (lookback "
                    f"{absence_lookback(absence)} + window {absence['window']}), but {absence['metric']} is written only by {runs}, "
                    f"up to {durations.human_seconds(gap)} apart in {context.pipeline.timezone} and up to "
                    f"{durations.human_seconds(RUN_ALLOWANCE_SECONDS)} into a run: it would fire between two healthy runs; "
                    f"make lookback + window longer than {durations.human_seconds(needed)} (lookback up to 25h, window up to 23.5h)",
                )
            )
    return problems


def health_check_jobs(pipeline: Any) -> list[Any]:
    """The scheduled checks that run `phase3ops health`, the only writer of the custom metrics."""
    return [check for check in pipeline.scheduled_checks if check.args and check.args[0] == HEALTH_COMMAND]


def channels_are_defined(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    return [
        rule.problem(
            ["notify", "channels", i],
            f"no channel named {name!r} in alerts/channels.yaml (have: {', '.join(sorted(context.channels))})",
        )
        for i, name in enumerate(rule.spec.get("notify", {}).get("channels", []))
        if name not in context.channels
    ]


def runbook_section_exists(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    problem = runbook_problem(context.repo_root, rule.spec["documentation"]["runbook"])
    return [rule.problem(["documentation", "runbook"], problem)] if problem else []


def runbook_problem(repo_root: Path, runbook: str) -> str | None:
    """Why a runbook link (`docs/<file>.md#<anchor>` or an https URL) leads nowhere, if it does."""
    if runbook.startswith("https://"):
        return None
    file, _, anchor = runbook.partition("#")
    # The runbook is published from docs/: a path that leaves it (`..`, an absolute path, a symlink out)
    # names a file the on-call cannot open, and would have the lint read any file on the machine.
    try:
        path = (repo_root / file).resolve()
        inside_docs = path.is_relative_to((repo_root / "docs").resolve())
    except (OSError, ValueError, RuntimeError):  # a NUL character, a symlink loop
        inside_docs = False
    if not inside_docs:
        return f"{quoted(file)} is not inside docs/: a runbook must be a file in the repository's docs folder"
    if not path.is_file():
        return f"{file} does not exist"
    if anchor not in _anchors(str(path), path.stat().st_mtime_ns):
        return f"{file} has no section #{anchor}"
    return None


def names_only_deployed_workloads(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    problems = []
    for path, text in _filters(rule):
        for label, name in _WORKLOAD_NAME.findall(text):
            if name not in context.workloads:
                deployed = ", ".join(sorted(context.workloads))
                problems.append(
                    rule.problem(path, f'{label}="{name}" names nothing the infra deploys (deployed: {deployed})')
                )
    return problems


def log_metric_is_used_and_exists(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    own = rule.log_metric["name"] if rule.log_metric else None
    referenced = []
    problems = []
    for path, selector in rule.metric_selectors():
        metric = selector["metric"]
        if metric.startswith(LOG_METRIC_REFERENCE):
            name = metric.removeprefix(LOG_METRIC_REFERENCE)
            referenced.append(name)
            if name != own and "metric" in rule.stated(path):
                problems.append(
                    rule.problem(
                        [*path, "metric"],
                        f"log metric {name!r} is not defined by this rule's logMetric",
                    )
                )
    if own and own not in referenced:
        problems.append(
            rule.problem(
                ["logMetric", "name"], f"log metric {own!r} is defined but no condition uses it (metric: log:{own})"
            )
        )
    return problems


def custom_metrics_are_declared(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    """A policy on a custom metric the infra does not declare fails to create (404 Cannot find metric(s))."""

    problems = []
    for path, selector in rule.metric_selectors():
        metric = selector["metric"]
        if (
            metric.startswith("custom.googleapis.com/")
            and custom_metric(metric) is None
            and "metric" in rule.stated(path)
        ):
            declared = ", ".join(METRIC_PREFIX + name for name in sorted(CUSTOM_METRICS))
            problems.append(
                rule.problem(
                    [*path, "metric"],
                    f"{metric} is not a declared custom metric (declared: {declared})",
                )
            )
    return problems


def is_a_valid_api_object(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    try:
        to_proto(policy_body(rule, "https://runbooks.invalid/", ["projects/p/notificationChannels/1"]))
    except Exception as exc:  # the proto parser's errors are the API's own refusals
        return [rule.problem([], f"not a valid Cloud Monitoring AlertPolicy: {exc}")]
    return []


def filters_parse_and_name_real_things(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    """Every filter parses and names real fields, severities, resource types and labels.

    Cloud Logging and Cloud Monitoring accept a filter that names a
    misspelled resource type or compares with an unknown severity word, and
    the alert then never fires; a syntax error fails only at deploy time.
    """
    problems = []

    def report(path: list[str | int], text: str, language: str, resource_type: str | None = None) -> None:
        for problem in filter_problems(text, language, resource_type):
            located = rule.problem(path, str(problem))
            line = block_scalar_line(rule.document, ["spec", *path], text, problem.offset)
            problems.append(dataclasses.replace(located, line=line) if line else located)

    if rule.log_metric and rule.log_metric.get("filter"):
        report(["logMetric", "filter"], rule.log_metric["filter"], LOGGING)
    for index, condition in enumerate(rule.conditions):
        if "logMatch" in condition:
            report(["conditions", index, "logMatch", "filter"], condition["logMatch"]["filter"], LOGGING)
    for path, selector in rule.metric_selectors():
        own = rule.stated(path)
        resource_type = selector.get("resourceType")
        if resource_type and "resourceType" in own:
            problems += [rule.problem([*path, "resourceType"], m) for m in resource_type_problems(resource_type)]
        if selector.get("filter") and "filter" in own:
            report([*path, "filter"], selector["filter"], MONITORING, resource_type)
    return problems


LINTS: tuple[Lint, ...] = (
    log_match_needs_rate_limit,
    log_match_is_the_only_condition,
    gen2_functions_log_as_cloud_run,
    aligner_matches_window,
    durations_the_api_accepts,
    duration_values_only_on_seconds,
    absence_outlasts_the_writers_schedule,
    channels_are_defined,
    runbook_section_exists,
    names_only_deployed_workloads,
    log_metric_is_used_and_exists,
    custom_metrics_are_declared,
    is_a_valid_api_object,
    filters_parse_and_name_real_things,
    metrics_are_known_and_aggregated_as_the_api_allows,
    promql_parses_and_names_known_metrics,
)


def lint(specs: AlertSpecs, context: LintContext) -> list[SpecProblem]:
    problems = [problem for rule in specs.rules for check in LINTS for problem in check(rule, context)]
    problems += _cross_rule_problems(specs)
    problems += health_metrics_have_absence_guards(specs, context)
    return problems


def health_metrics_have_absence_guards(specs: AlertSpecs, context: LintContext) -> list[SpecProblem]:
    """Every threshold on a metric only the health check writes has an absence guard on that metric.

    A threshold sees only the points that arrive. If the health check job
    fails, stops being scheduled or exits 2 (could not check), nothing
    arrives, and a threshold on its metrics stays quiet exactly when the
    pipeline is least watched. So every metric such a threshold watches must
    also be watched for absence, by an enabled rule (alerts/health-check-silent.yaml).
    """

    guarded = {
        metric_type(condition["absence"]["metric"])
        for rule in specs.rules
        if rule.enabled
        for condition in rule.conditions
        if "absence" in condition
    }
    writers = ", ".join(job.name for job in health_check_jobs(context.pipeline)) if context.pipeline else ""
    problems = []
    for rule in specs.rules:
        if not rule.enabled:
            continue
        for path, selector in rule.metric_selectors():
            if "absence" in path or "metric" not in rule.stated(path):
                continue
            metric = metric_type(selector["metric"])
            if custom_metric(metric) is None or metric in guarded:
                continue
            problems.append(
                rule.problem(
                    [*path, "metric"],
                    f"{metric} is written only by the scheduled health check{f' ({writers})' if writers else ''}: if the job "
                    "fails, stops or exits 2, no point arrives and this condition can never fire; no enabled rule watches "
                    f"it for absence (add `- absence: {{metric: {metric}, resourceType: global, lookback: 25h, window: 2h}}` "
                    "to alerts/health-check-silent.yaml)",
                )
            )
    return problems


def _cross_rule_problems(specs: AlertSpecs) -> list[SpecProblem]:
    problems = []
    owners: dict[str, list[AlertRule]] = {}
    for rule in specs.rules:
        if rule.log_metric:
            owners.setdefault(rule.log_metric["name"], []).append(rule)
    for name, rules in owners.items():
        for rule in rules if len(rules) > 1 else ():
            others = ", ".join(r.name for r in rules if r is not rule)
            problems.append(
                rule.problem(["logMetric", "name"], f"log metric {name!r} is already defined by rule {others}")
            )
    used = {name for rule in specs.rules for name in rule.spec.get("notify", {}).get("channels", [])}
    for index, channel in enumerate(specs.channels):
        if channel.name not in used:
            problems.append(
                specs.channels_document.problem(
                    ["channels", index, "name"], f"channel {channel.name!r} is used by no rule"
                )
            )
    return problems


@lru_cache(maxsize=32)
def _anchors(path: str, modified_ns: int) -> frozenset[str]:
    """The section anchors of a Markdown file, read once per version of it (every rule links into the same runbook)."""
    return frozenset(github_anchor(h) for h in _HEADING.findall(Path(path).read_text(encoding="utf-8")))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[`*_~]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")
