"""Semantic lints: what Cloud Monitoring would reject at deploy time, or accept and never fire.

Each lint is a plain function (rule, context) -> problems, listed in LINTS
with the failure it prevents. They run after the schema checks, on the rule
as merged with defaults and the stack's overrides.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from phase3ops.alerts import durations
from phase3ops.alerts.filters import (
    LOGGING,
    MONITORING,
    block_scalar_line,
    cloud_function_mentions,
    filter_problems,
    gen2_function_hint,
    resource_type_problems,
)
from phase3ops.alerts.policies import LOG_METRIC_REFERENCE, STATISTICS, policy_body, to_proto
from phase3ops.alerts.specs import AlertRule, AlertSpecs
from phase3ops.input_bounds import quoted
from phase3ops.spec.documents import SpecProblem

_WORKLOAD_NAME = re.compile(r'resource\.labels?\.(service_name|function_name|job_name|configuration_name)\s*=\s*"([^"]+)"')
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# Aligners that add up a counter's values over the alignment period.
_COUNTING_ALIGNERS = {"ALIGN_SUM", "ALIGN_DELTA"}


@dataclass(frozen=True)
class LintContext:
    channels: frozenset[str]
    workloads: dict[str, str]  # deployed name -> function | service | job
    repo_root: Path


Lint = Callable[[AlertRule, LintContext], list[SpecProblem]]


def _filters(rule: AlertRule) -> Iterator[tuple[list[Any], str]]:
    """Every filter in the rule with its path: conditions and the log metric."""
    for index, condition in enumerate(rule.conditions):
        for kind, body in condition.items():
            if body.get("filter"):
                yield ["conditions", index, kind, "filter"], body["filter"]
    if rule.log_metric:
        yield ["logMetric", "filter"], rule.log_metric["filter"]


def log_match_needs_rate_limit(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    if any("logMatch" in c for c in rule.conditions) and not rule.spec.get("notify", {}).get("rateLimit"):
        return [rule.problem(["notify"], "a log-match condition needs notify.rateLimit (the API rejects it without notification_rate_limit)")]
    return []


def log_match_is_the_only_condition(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    if any("logMatch" in c for c in rule.conditions) and len(rule.conditions) > 1:
        return [rule.problem(["conditions"], f"a log-match condition must be the policy's only condition (found {len(rule.conditions)})")]
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
        path = ["conditions", index, kind, "aggregation"]
        if kind == "logMatch" or not override:
            continue
        window = body["window"]
        period = override.get("alignmentPeriod")
        if period and durations.seconds(period) != durations.seconds(window):
            problems.append(
                rule.problem(path + ["alignmentPeriod"], f"aligns over {period} but the rule states a window of {window}")
            )
        statistic = body.get("statistic", "count")
        aligner = override.get("aligner")
        if not aligner:
            continue
        if statistic in ("count", "sum") and aligner not in _COUNTING_ALIGNERS:
            hint = " (a per-second rate: the threshold would have to be reached every second)" if aligner == "ALIGN_RATE" else ""
            problems.append(
                rule.problem(
                    path + ["aligner"],
                    f"{aligner} does not count over the {window} window the rule states{hint}; use ALIGN_SUM or ALIGN_DELTA",
                )
            )
        elif statistic not in ("count", "sum") and aligner != STATISTICS[statistic][0]:
            problems.append(
                rule.problem(path + ["aligner"], f"{aligner} does not compute the {statistic} the rule states ({STATISTICS[statistic][0]})")
            )
    return problems


ABSENCE_WINDOW = (120, 84_600)  # 2 minutes .. 23.5 hours


def durations_the_api_accepts(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    """Windows and durations the API would refuse at deploy time."""
    problems = []
    for index, condition in enumerate(rule.conditions):
        kind = next(iter(condition))
        body = condition[kind]
        path = ["conditions", index, kind]
        if kind == "logMatch":
            continue
        window = durations.seconds(body["window"])
        if window < 60 or window % 60:
            problems.append(rule.problem(path + ["window"], f"{body['window']} is not a whole number of minutes (at least 1m)"))
        if kind == "absence" and not ABSENCE_WINDOW[0] <= window <= ABSENCE_WINDOW[1]:
            problems.append(rule.problem(path + ["window"], f"{body['window']}: an absence window must be between 2m and 23.5h"))
        held = durations.seconds(body.get("for", "0s"))
        if held % 60:
            problems.append(rule.problem(path + ["for"], f"{body['for']} is not a whole number of minutes"))
    return problems


def channels_are_defined(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    return [
        rule.problem(["notify", "channels", i], f"no channel named {name!r} in alerts/channels.yaml (have: {', '.join(sorted(context.channels))})")
        for i, name in enumerate(rule.spec.get("notify", {}).get("channels", []))
        if name not in context.channels
    ]


def runbook_section_exists(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    runbook = rule.spec["documentation"]["runbook"]
    if runbook.startswith("https://"):
        return []
    file, _, anchor = runbook.partition("#")
    # The runbook is published from docs/: a path that leaves it (`..`, an absolute path, a symlink out)
    # names a file the on-call cannot open, and would have the lint read any file on the machine.
    try:
        path = (context.repo_root / file).resolve()
        inside_docs = path.is_relative_to((context.repo_root / "docs").resolve())
    except (OSError, ValueError, RuntimeError):  # a NUL character, a symlink loop
        inside_docs = False
    if not inside_docs:
        return [rule.problem(["documentation", "runbook"], f"{quoted(file)} is not inside docs/: a runbook must be a file in the repository's docs folder")]
    if not path.is_file():
        return [rule.problem(["documentation", "runbook"], f"{file} does not exist")]
    if anchor not in _anchors(str(path), path.stat().st_mtime_ns):
        return [rule.problem(["documentation", "runbook"], f"{file} has no section #{anchor}")]
    return []


def names_only_deployed_workloads(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    problems = []
    for path, text in _filters(rule):
        for label, name in _WORKLOAD_NAME.findall(text):
            if name not in context.workloads:
                deployed = ", ".join(sorted(context.workloads))
                problems.append(rule.problem(path, f'{label}="{name}" names nothing the infra deploys (deployed: {deployed})'))
    return problems


def log_metric_is_used_and_exists(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    own = rule.log_metric["name"] if rule.log_metric else None
    referenced = []
    problems = []
    for index, condition in enumerate(rule.conditions):
        kind = next(iter(condition))
        metric = condition[kind].get("metric", "")
        if metric.startswith(LOG_METRIC_REFERENCE):
            name = metric.removeprefix(LOG_METRIC_REFERENCE)
            referenced.append(name)
            if name != own:
                problems.append(
                    rule.problem(["conditions", index, kind, "metric"], f"log metric {name!r} is not defined by this rule's logMetric")
                )
    if own and own not in referenced:
        problems.append(rule.problem(["logMetric", "name"], f"log metric {own!r} is defined but no condition uses it (metric: log:{own})"))
    return problems


def custom_metrics_are_declared(rule: AlertRule, context: LintContext) -> list[SpecProblem]:
    """A policy on a custom metric the infra does not declare fails to create (404 Cannot find metric(s))."""
    from phase3ops.checks.metrics import CUSTOM_METRICS, METRIC_PREFIX, custom_metric

    problems = []
    for index, condition in enumerate(rule.conditions):
        kind = next(iter(condition))
        metric = condition[kind].get("metric", "")
        if metric.startswith("custom.googleapis.com/") and custom_metric(metric) is None:
            declared = ", ".join(METRIC_PREFIX + name for name in sorted(CUSTOM_METRICS))
            problems.append(
                rule.problem(["conditions", index, kind, "metric"], f"{metric} is not a declared custom metric (declared: {declared})")
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
        for kind, body in condition.items():
            path: list[str | int] = ["conditions", index, kind]
            if kind == "logMatch":
                report(path + ["filter"], body["filter"], LOGGING)
                continue
            resource_type = body.get("resourceType")
            if resource_type:
                problems += [rule.problem(path + ["resourceType"], m) for m in resource_type_problems(resource_type)]
            if body.get("filter"):
                report(path + ["filter"], body["filter"], MONITORING, resource_type)
    return problems


LINTS: tuple[Lint, ...] = (
    log_match_needs_rate_limit,
    log_match_is_the_only_condition,
    gen2_functions_log_as_cloud_run,
    aligner_matches_window,
    durations_the_api_accepts,
    channels_are_defined,
    runbook_section_exists,
    names_only_deployed_workloads,
    log_metric_is_used_and_exists,
    custom_metrics_are_declared,
    is_a_valid_api_object,
    filters_parse_and_name_real_things,
)


def lint(specs: AlertSpecs, context: LintContext) -> list[SpecProblem]:
    problems = [problem for rule in specs.rules for check in LINTS for problem in check(rule, context)]
    problems += _cross_rule_problems(specs)
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
            problems.append(rule.problem(["logMetric", "name"], f"log metric {name!r} is already defined by rule {others}"))
    used = {name for rule in specs.rules for name in rule.spec.get("notify", {}).get("channels", [])}
    for index, channel in enumerate(specs.channels):
        if channel.name not in used:
            problems.append(specs.channels_document.problem(["channels", index, "name"], f"channel {channel.name!r} is used by no rule"))
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
