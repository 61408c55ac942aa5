"""Semantic lints of the SLO specs: what Cloud Monitoring would refuse at deploy time, what the SLO
report could not count, and alerting that would page for the wrong reason.

Each lint is a plain function (slo, context) -> problems, run on the SLO as the stack deploys it.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from phase3ops.alerts.lints import runbook_problem
from phase3ops.filters.language import MONITORING, filter_problems
from phase3ops.filters.positions import block_scalar_line
from phase3ops.slos.cloud_monitoring import to_protos
from phase3ops.slos.event_metrics import EVENT_METRICS, event_metric
from phase3ops.slos.specs import (
    EVENTS_PER_DAY_ANNOTATION,
    RUNBOOK_ANNOTATION,
    SHORT_WINDOW_DIVISOR,
    BurnRateAlert,
    Slo,
    SloSpecs,
)
from phase3ops.spec.documents import SpecProblem

MAX_WINDOW_DAYS = 30  # Cloud Monitoring's rollingPeriod: whole days, at most 30
MAX_GOAL = 0.9999  # ServiceLevelObjective.goal: 0 < goal <= 0.9999
MIN_SHORT_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class LintContext:
    repo_root: Path
    channels: frozenset[str]  # alerts/channels.yaml
    policies: dict[str, BurnRateAlert]


Lint = Callable[[Slo, LintContext], list[SpecProblem]]


def window_and_target_are_deployable(slo: Slo, context: LintContext) -> list[SpecProblem]:
    problems = []
    if slo.window_days > MAX_WINDOW_DAYS:
        problems.append(
            slo.problem(
                ["timeWindow", 0, "duration"],
                f"{slo.window_days} days: Cloud Monitoring's rolling window is at most {MAX_WINDOW_DAYS} days",
            )
        )
    if slo.target > MAX_GOAL:
        problems.append(
            slo.problem(
                ["objectives", 0],
                f"target {slo.target:g}: Cloud Monitoring takes at most {MAX_GOAL} (and a target that high leaves "
                "a budget of less than one event in ten thousand)",
            )
        )
    return problems


def metrics_are_event_metrics(slo: Slo, context: LintContext) -> list[SpecProblem]:
    """Each side names an SLI event metric: the plan declares it, and the report can count it from storage."""
    problems = []
    for path, selector in slo.selectors():
        reference = selector["metric"]
        if event_metric(reference) is None:
            close = difflib.get_close_matches(reference, [m.reference for m in EVENT_METRICS.values()], n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            known = ", ".join(m.reference for m in EVENT_METRICS.values())
            problems.append(
                slo.problem(
                    [*path, "metric"],
                    f"{reference!r} is not an SLI event metric ({hint}known: {known}): the plan declares those, "
                    "and `phase3ops slo report` can count only what the pipeline stores for them",
                )
            )
        if "filter" in selector:
            problems.append(
                slo.problem(
                    [*path, "filter"],
                    "an SLI event metric counts exactly its events: a filter on top would count events the "
                    "SLO report cannot tell apart; add an event metric instead (phase3ops.slos.event_metrics)",
                )
            )
            for problem in filter_problems(selector["filter"], MONITORING, selector.get("resourceType")):
                located = slo.problem([*path, "filter"], str(problem))
                line = block_scalar_line(slo.document, ["spec", *path, "filter"], selector["filter"], problem.offset)
                problems.append(dataclasses.replace(located, line=line) if line else located)
    (_, numerator), (_, total) = slo.selectors()
    if numerator["metric"] == total["metric"]:
        problems.append(
            slo.problem(["indicator"], "good (or bad) and total count the same metric: the ratio is always 1")
        )
    return problems


def alert_policies_resolve(slo: Slo, context: LintContext) -> list[SpecProblem]:
    problems = []
    for index, name in enumerate(slo.alert_policy_names):
        if name not in context.policies:
            known = ", ".join(sorted(context.policies)) or "none"
            problems.append(
                slo.problem(
                    ["alertPolicies", index, "alertPolicyRef"],
                    f"no alert policy {name!r} in slos/alert-policies/ (known: {known})",
                )
            )
    if not any(name in context.policies for name in slo.alert_policy_names):
        problems.append(
            slo.problem(["alertPolicies"], "the SLO has no burn-rate alert: nobody would hear of its budget burning")
        )
    return problems


def burn_windows_fit_the_slo(slo: Slo, context: LintContext) -> list[SpecProblem]:
    problems = []
    for index, name in enumerate(slo.alert_policy_names):
        policy = context.policies.get(name)
        if policy is None:
            continue
        if policy.long_window_seconds >= slo.window_days * 86400:
            problems.append(
                slo.problem(
                    ["alertPolicies", index],
                    f"{name} looks back {policy.condition['lookbackWindow']}, as long as the SLO's window or longer: "
                    "a burn rate is measured over part of the window",
                )
            )
    return problems


def one_bad_event_does_not_page(slo: Slo, context: LintContext) -> list[SpecProblem]:
    """The SRE workbook's low-traffic advice, checked: with few events a single failure is a 100 % error
    rate in a short window, so a burn-rate page would fire on it; such an SLO gets tickets over long
    windows, and its symptoms page through the alert rules."""
    per_day = slo.events_per_day
    if per_day is None:
        given = slo.metadata.get("annotations", {}).get(EVENTS_PER_DAY_ANNOTATION)
        where = ["metadata", "annotations"] + ([EVENTS_PER_DAY_ANNOTATION] if given is not None else [])
        what = (
            f"{EVENTS_PER_DAY_ANNOTATION} {given!r} is not a positive number"
            if given is not None
            else f"metadata.annotations has no {EVENTS_PER_DAY_ANNOTATION}"
        )
        return [
            slo.document.problem(
                where,
                f'{what} (how many events the SLI counts on a normal day, e.g. "40"): without it nobody can tell '
                "whether one bad event would page",
            )
        ]
    problems = []
    for index, name in enumerate(slo.alert_policy_names):
        policy = context.policies.get(name)
        if policy is None or policy.severity != "page":
            continue
        burn = single_bad_event_burn(per_day, policy.long_window_seconds, slo.target)
        if policy.fires(burn, burn):
            problems.append(
                slo.problem(
                    ["alertPolicies", index],
                    f"{name} pages, and at {per_day:g} events a day one bad event in its {policy.condition['lookbackWindow']} "
                    f"window is a burn rate of {burn:.1f} (threshold {policy.threshold:g}): a single failure would page. "
                    "Alert on longer windows with a ticket, and page on the symptom with an alert rule",
                )
            )
    return problems


def single_bad_event_burn(events_per_day: float, window_seconds: int, target: float) -> float:
    """The burn rate of one bad event among the events a window holds on an ordinary day (at least one)."""
    events = max(1.0, events_per_day * window_seconds / 86400)
    return (1 / events) / (1 - target)


def runbook_section_exists(slo: Slo, context: LintContext) -> list[SpecProblem]:
    if slo.runbook is None:
        return [
            slo.document.problem(
                ["metadata", "annotations"], f"no {RUNBOOK_ANNOTATION}: every alert links its runbook section"
            )
        ]
    problem = runbook_problem(context.repo_root, slo.runbook)
    return [slo.document.problem(["metadata", "annotations", RUNBOOK_ANNOTATION], problem)] if problem else []


def is_a_valid_api_object(slo: Slo, context: LintContext) -> list[SpecProblem]:
    try:
        to_protos("p", slo, context.policies)
    except Exception as exc:  # the proto parser's errors are the API's own refusals
        return [slo.problem([], f"not a valid Cloud Monitoring object: {exc}")]
    return []


LINTS: tuple[Lint, ...] = (
    window_and_target_are_deployable,
    metrics_are_event_metrics,
    alert_policies_resolve,
    burn_windows_fit_the_slo,
    one_bad_event_does_not_page,
    runbook_section_exists,
    is_a_valid_api_object,
)


def policy_problems(policy: BurnRateAlert, context: LintContext) -> list[SpecProblem]:
    problems = []
    for index, target in enumerate(policy.targets):
        if target not in context.channels:
            known = ", ".join(sorted(context.channels)) or "none"
            problems.append(
                policy.problem(
                    ["notificationTargets", index, "targetRef"],
                    f"no channel {target!r} in alerts/channels.yaml (known: {known})",
                )
            )
    if policy.long_window_seconds % SHORT_WINDOW_DIVISOR or policy.short_window_seconds < MIN_SHORT_WINDOW_SECONDS:
        problems.append(
            policy.problem(
                ["conditions", 0, "spec", "condition", "lookbackWindow"],
                f"the short window is a twelfth of the lookback: {policy.condition['lookbackWindow']} gives "
                f"{policy.long_window_seconds / SHORT_WINDOW_DIVISOR:g} s; use a lookback of at least 12m",
            )
        )
    return problems


def lint(specs: SloSpecs, context: LintContext) -> list[SpecProblem]:
    problems = [problem for slo in specs.slos for check in LINTS for problem in check(slo, context)]
    for policy in context.policies.values():
        problems += policy_problems(policy, context)
        # A stack may drop a policy from every SLO (dev pages nobody); the base files must use each.
        if specs.stack is None and not any(policy.name in slo.alert_policy_names for slo in specs.slos):
            problems.append(
                policy.document.problem(["metadata", "name"], f"alert policy {policy.name!r} is used by no SLO")
            )
    return problems
