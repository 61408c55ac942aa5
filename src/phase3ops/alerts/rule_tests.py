"""Rule tests, like `promtool test rules`: would this rule have fired on these series and log entries?

A test file (alerts/tests/<rule>.yaml, kind AlertRuleTest) gives cases of
input time series and log entries, and the times at which the rule's policy
must or must not have an open incident. Each case is evaluated offline on the
policy the rule really renders (`policy_body`, parsed into the API's
AlertPolicy), with Cloud Monitoring's semantics (phase3ops.monitoring.time_series):

* metric thresholds and ratios: the condition's aggregation, comparison and
  duration; absences: no point for lookback + window, after a point written
  since the policy was created;
* the rule's log-based metric counts the given entries its filter matches
  (one point of 1 per entry, labelled by its extractors);
* a log-match condition has an incident open from each matching entry until
  `notify.autoClose` later;
* a PromQL condition is not evaluated: no PromQL engine runs offline here. An
  expectation that depends on one is reported as not evaluated, never as
  passed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phase3ops.alerts.policies import policy_body, to_proto
from phase3ops.alerts.specs import SCHEMA_DIR, AlertRule, AlertSpecs
from phase3ops.filters.log_matching import field_value
from phase3ops.filters.log_matching import matches as log_matches
from phase3ops.monitoring import durations
from phase3ops.monitoring.metrics import LOG_METRIC_PREFIX, metric_type
from phase3ops.monitoring.time_series import Series, absence_met, aligned_values, threshold_met
from phase3ops.spec.documents import (
    SpecDocument,
    SpecError,
    SpecProblem,
    load_schema,
    read_yaml,
    schema_problems,
    schema_registry,
)

TESTS_DIR = "tests"
TEST_KIND = "AlertRuleTest"
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # a case's 0m; the date means nothing
_EXPANDING = re.compile(
    r"^(?P<start>_|-?[0-9.]+(?:e-?[0-9]+)?)(?:(?P<sign>[+-])(?P<step>[0-9.]+))?(?:x(?P<times>[0-9]+))?$"
)


@dataclass(frozen=True)
class ExpectationResult:
    at: str
    expected: bool
    evaluated: bool | None  # None: not evaluated (a PromQL condition decides)
    detail: str  # what each condition evaluated to at that time

    @property
    def passed(self) -> bool:
        return self.evaluated is self.expected


@dataclass(frozen=True)
class CaseResult:
    name: str
    results: tuple[ExpectationResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


@dataclass(frozen=True)
class RuleTestResult:
    file: str
    rule: str
    cases: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)


@dataclass(frozen=True)
class TestReport:
    results: tuple[RuleTestResult, ...]
    untested: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def expand_values(text: str) -> list[float | None]:
    """promtool's expanding notation: `1 2 _ 3`, `0+10x3` (0 10 20 30), `5x2` (5 5 5), `_x2` (three gaps)."""
    values: list[float | None] = []
    for token in text.split():
        found = _EXPANDING.match(token)
        if not found:
            raise ValueError(f"{token!r} is not a value in expanding notation (1, 0+10x5, 7x3, _, _x4)")
        times = int(found["times"]) if found["times"] else 0
        if found["start"] == "_":
            if found["sign"]:
                raise ValueError(f"{token!r}: a gap (_) cannot step")
            values += [None] * (times + 1)
            continue
        start = float(found["start"])
        step = float(found["step"] or 0) * (-1 if found["sign"] == "-" else 1)
        values += [start + step * i for i in range(times + 1)]
    return values


def load_test_files(alerts_dir: Path) -> tuple[list[SpecDocument], list[SpecProblem]]:
    directory = alerts_dir / TESTS_DIR
    schema = load_schema(alerts_dir / SCHEMA_DIR / "alert-rule-test.schema.json")
    registry = schema_registry(alerts_dir / SCHEMA_DIR)
    documents, problems = [], []
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        try:
            document = read_yaml(path)
        except SpecError as error:
            problems += error.problems
            continue
        found = schema_problems(document, schema, registry)
        if not found and document.data["metadata"]["name"] != path.stem:
            found = [document.problem(["metadata", "name"], f"must be {path.stem!r} (the file's name)")]
        problems += found
        if not found:
            documents.append(document)
    return documents, problems


def run_rule_tests(alerts_dir: Path, specs: AlertSpecs, only: Sequence[str] = ()) -> TestReport:
    """Evaluate every test file (or those of the rules in `only`); raises SpecError for a file that
    is not a valid test, or names no rule, or a series or value that cannot be read."""
    documents, problems = load_test_files(alerts_dir)
    rules = {rule.name: rule for rule in specs.rules}
    results = []
    for document in documents:
        name = document.data["metadata"]["name"]
        if only and name not in only:
            continue
        rule = rules.get(name)
        if rule is None:
            problems.append(document.problem(["metadata", "name"], f"no alert rule {name!r} in {alerts_dir}"))
            continue
        try:
            cases = tuple(_run_case(rule, document, index) for index in range(len(document.data["spec"]["cases"])))
        except SpecError as error:
            problems += error.problems
            continue
        results.append(RuleTestResult(document.file, name, cases))
    if problems:
        raise SpecError(problems)
    tested = {document.data["metadata"]["name"] for document in documents}
    untested = tuple(sorted(n for n in rules if n not in tested and (not only or n in only)))
    return TestReport(tuple(results), untested)


def _run_case(rule: AlertRule, document: SpecDocument, index: int) -> CaseResult:
    case = document.data["spec"]["cases"][index]
    path: list[str | int] = ["spec", "cases", index]
    interval = dt.timedelta(seconds=durations.seconds(case.get("interval", "1m")))
    created = START + dt.timedelta(seconds=durations.seconds(case.get("policyCreated", "0m")))
    series = [_series(document, [*path, "series", i], s, interval) for i, s in enumerate(case.get("series", []))]
    entries = [
        (START + dt.timedelta(seconds=durations.seconds(item["at"])) + n * interval, item["entry"])
        for item in case.get("logs", [])
        for n in range(item.get("repeat", 1))
    ]
    series += _log_metric_series(rule, entries)
    policy = to_proto(policy_body(rule, "https://runbooks.invalid/"))
    results = []
    for expectation in case["expect"]:
        at = START + dt.timedelta(seconds=durations.seconds(expectation["at"]))
        evaluated, detail = _policy_fires(rule, policy, series, entries, at, created)
        results.append(ExpectationResult(expectation["at"], expectation["firing"], evaluated, detail))
    return CaseResult(case["name"], tuple(results))


def _series(document: SpecDocument, path: list[str | int], spec: dict[str, Any], interval: dt.timedelta) -> Series:
    points: list[tuple[dt.datetime, Any]] = []
    if "values" in spec:
        try:
            values = expand_values(spec["values"])
        except ValueError as error:
            raise SpecError([document.problem([*path, "values"], str(error))]) from None
        points = [(START + i * interval, v) for i, v in enumerate(values) if v is not None]
    else:
        offset = 0
        for stretch in spec["distribution"]:
            observations = tuple(float(value) for value, count in stretch["observations"].items() for _ in range(count))
            for _ in range(stretch["points"]):
                points.append((START + offset * interval, observations))
                offset += 1
    resource = spec["resource"]
    return Series(
        metric_type(spec["metric"]),
        resource["type"],
        dict(resource.get("labels", {})),
        dict(spec.get("labels", {})),
        tuple(points),
    )


def _log_metric_series(rule: AlertRule, entries: list[tuple[dt.datetime, dict[str, Any]]]) -> list[Series]:
    """What the rule's log-based counter writes for these entries: a point of 1 per matching entry."""
    metric = rule.log_metric
    if metric is None:
        return []
    labels = metric.get("labels", {})
    series = []
    for when, entry in entries:
        if not log_matches(metric["filter"], entry):
            continue
        resource = entry.get("resource", {})
        extracted = {key: str(field_value(entry, source)) for key, source in labels.items()}
        series.append(
            Series(
                LOG_METRIC_PREFIX + metric["name"],
                resource.get("type", "global"),
                dict(resource.get("labels", {})),
                extracted,
                ((when, 1.0),),
            )
        )
    return series


def _policy_fires(
    rule: AlertRule, policy: Any, series: list[Series], entries: list, at: dt.datetime, created: dt.datetime
) -> tuple[bool | None, str]:
    states: list[bool | None] = []
    details = []
    for index, condition in enumerate(policy.conditions):
        kind = condition._pb.WhichOneof("condition")
        if kind == "condition_threshold":
            body = condition.condition_threshold
            firing = threshold_met(body, series, at)
            values = aligned_values(body, series, at)
            shown = ", ".join(f"{_group(k)}{v:g}" for k, v in sorted(values.items(), key=str)) or "no data"
            details.append(f"condition {index} ({condition.display_name}): {shown}")
            states.append(bool(firing))
        elif kind == "condition_absent":
            firing_absent = absence_met(condition.condition_absent, series, at, created)
            details.append(f"condition {index} ({condition.display_name}): {'silent' if firing_absent else 'data'}")
            states.append(firing_absent)
        elif kind == "condition_matched_log":
            open_for = dt.timedelta(seconds=durations.seconds(rule.spec.get("notify", {}).get("autoClose", "7d")))
            matched = [when for when, entry in entries if log_matches(condition.condition_matched_log.filter, entry)]
            open_now = [when for when in matched if when <= at < when + open_for]
            details.append(f"condition {index} ({condition.display_name}): {len(open_now)} matching entries open")
            states.append(bool(open_now))
        else:
            details.append(f"condition {index} ({condition.display_name}): PromQL, not evaluated offline")
            states.append(None)
    return _combine(policy.combiner.name, states), "; ".join(details)


def _group(key: tuple) -> str:
    return "" if not key or all(k is None for k in key) else "/".join(str(k) for k in key) + ": "


def _combine(combiner: str, states: list[bool | None]) -> bool | None:
    if combiner == "OR":
        if any(s is True for s in states):
            return True
        return None if any(s is None for s in states) else False
    if any(s is False for s in states):
        return False
    return None if any(s is None for s in states) else True


def render_report(report: TestReport) -> str:
    lines = []
    for result in report.results:
        lines.append(f"{'ok  ' if result.passed else 'FAIL'} {result.file} ({result.rule})")
        for case in result.cases:
            lines.append(f"  {'✓' if case.passed else '✗'} {case.name}")
            for outcome in case.results:
                if outcome.passed:
                    continue
                evaluated = (
                    "not evaluated (a PromQL condition decides)"
                    if outcome.evaluated is None
                    else f"evaluated {_state(outcome.evaluated)}"
                )
                lines.append(f"      at {outcome.at}: expected {_state(outcome.expected)}, {evaluated}")
                lines.append(f"        {outcome.detail}")
    if report.untested:
        lines.append(f"untested rules (no alerts/tests/<rule>.yaml): {', '.join(report.untested)}")
    cases = [c for r in report.results for c in r.cases]
    failed = sum(1 for c in cases if not c.passed)
    lines.append(f"{len(cases) - failed} of {len(cases)} cases passed in {len(report.results)} test files")
    return "\n".join(lines)


def _state(firing: bool) -> str:
    return "firing" if firing else "not firing"
