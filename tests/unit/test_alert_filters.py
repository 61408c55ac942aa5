"""Alert filters: the Logging and Monitoring parsers, the names they check, and the lint that reports both."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

import pytest

from phase3ops.alerts.lints import LintContext, filters_parse_and_name_real_things
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.filters.language import (
    Comparison,
    FieldPath,
    FilterSyntaxError,
    Global,
    Or,
    logging_filter_problems,
    monitoring_filter_problems,
    parse_logging_filter,
    parse_monitoring_filter,
)
from tests.support.repo_copy import REPO_ROOT, copy_specs

CORPUS = Path(__file__).resolve().parent.parent / "alerts_corpus"
NO_CONTEXT = cast(LintContext, None)  # the filter lint reads nothing but the rule


def shipped_filters():
    """(rule, language, filter, resource type) for every filter of every rule, as each stack deploys it."""
    for stack in (None, "dev", "prod"):
        for rule in load_alert_specs(REPO_ROOT / "alerts", stack).rules:
            if rule.log_metric:
                yield rule, "logging", rule.log_metric["filter"], None
            for condition in rule.conditions:
                for kind, body in condition.items():
                    if body.get("filter"):
                        language = "logging" if kind == "logMatch" else "monitoring"
                        yield rule, language, body["filter"], body.get("resourceType")


SHIPPED = list(shipped_filters())


def test_the_shipped_rules_have_filters_of_both_languages():
    assert {language for _, language, _, _ in SHIPPED} == {"logging", "monitoring"}


@pytest.mark.parametrize(("rule", "language", "text", "resource_type"), SHIPPED, ids=lambda v: getattr(v, "name", None))
def test_every_shipped_filter_parses_and_names_real_things(rule, language, text, resource_type):
    if language == "logging":
        parse_logging_filter(text)
        assert logging_filter_problems(text) == []
    else:
        parse_monitoring_filter(text)
        assert monitoring_filter_problems(text, resource_type) == []
    assert filters_parse_and_name_real_things(rule, NO_CONTEXT) == []


@pytest.mark.parametrize("case", sorted((CORPUS / "pass").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_corpus_rules_that_must_pass_have_good_filters(tmp_path, case):
    repo = copy_specs(tmp_path)
    shutil.copy(case, repo / "alerts")
    rule = load_alert_specs(repo / "alerts").rule(case.stem)
    assert filters_parse_and_name_real_things(rule, NO_CONTEXT) == []


# --- Logging: precedence -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        # The docs' own example: NOT, then OR, then AND.
        ('"a" OR NOT "b" AND NOT "c" OR "d"', '(("a" OR NOT "b") AND (NOT "c" OR "d"))'),
        (
            'severity>=ERROR AND jsonPayload.a="x" OR jsonPayload.b="y"',
            '(severity>=ERROR AND (jsonPayload.a="x" OR jsonPayload.b="y"))',
        ),
        (
            'jsonPayload.a="x" OR jsonPayload.b="y" AND severity>=ERROR',
            '((jsonPayload.a="x" OR jsonPayload.b="y") AND severity>=ERROR)',
        ),
        ("NOT textPayload:a OR textPayload:b", "(NOT textPayload:a OR textPayload:b)"),
        # Juxtaposition is AND, and OR still binds tighter than it.
        ("unicorn phoenix OR dragon", "(unicorn AND (phoenix OR dragon))"),
        (
            '(jsonPayload.a="x" AND jsonPayload.b="y") OR severity=ERROR',
            '((jsonPayload.a="x" AND jsonPayload.b="y") OR severity=ERROR)',
        ),
    ],
)
def test_logging_or_binds_tighter_than_and(text, tree):
    assert str(parse_logging_filter(text)) == tree


# --- Logging: what parses --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ('labels."compute.googleapis.com/resource_id"="123"', 'labels."compute.googleapis.com/resource_id"="123"'),
        ('jsonPayload."foo.bar".baz:"x"', 'jsonPayload."foo.bar".baz:"x"'),
        (
            'resource.type=("cloud_run_revision" OR "cloud_run_job")',
            'resource.type=("cloud_run_revision" OR "cloud_run_job")',
        ),
        ('jsonPayload.animal:("nice" AND "pet")', 'jsonPayload.animal:("nice" AND "pet")'),
        ('log_id("cloudaudit.googleapis.com/activity")', 'log_id("cloudaudit.googleapis.com/activity")'),
        ("sample(insertId, 0.25)", "sample(insertId, 0.25)"),
        ('SEARCH("timeout")', 'SEARCH("timeout")'),
        ('SEARCH(textPayload, "hello world")', 'SEARCH(textPayload, "hello world")'),
        ('ip_in_net(httpRequest.remoteIp, "10.0.0.0/8")', 'ip_in_net(httpRequest.remoteIp, "10.0.0.0/8")'),
        ('cast(timestamp, STRING, TIMEZONE("UTC")):"2024-01"', 'cast(timestamp, STRING, TIMEZONE("UTC")):"2024-01"'),
        ('REGEXP_EXTRACT(jsonPayload.msg, "id=(\\\\d+)")="42"', 'REGEXP_EXTRACT(jsonPayload.msg, "id=(\\\\d+)")="42"'),
        (
            'severity>=ERROR -- errors only\nAND resource.type="global" -- and the rest',
            '(severity>=ERROR AND resource.type="global")',
        ),
        ('NOT jsonPayload.a="x"', 'NOT jsonPayload.a="x"'),
        ('-jsonPayload.a="x"', 'NOT jsonPayload.a="x"'),
        (
            'severity>=WARNING jsonPayload.a="x" -jsonPayload.b="y"',
            '(severity>=WARNING AND jsonPayload.a="x" AND NOT jsonPayload.b="y")',
        ),
        (
            'jsonPayload.msg=~"^lock (taken|lost)$" AND jsonPayload.owner!~"test"',
            '(jsonPayload.msg=~"^lock (taken|lost)$" AND jsonPayload.owner!~"test")',
        ),
        ("labels.env:*", "labels.env:*"),
        ('jsonPayload.text="say \\"hi\\""', 'jsonPayload.text="say \\"hi\\""'),
        ("jsonPayload.delta > -5", "jsonPayload.delta>-5"),
        ('"The cat" unicorn', '("The cat" AND unicorn)'),
        ("severity = error", "severity=error"),  # enum names compare without case
        ("severity >= 500", "severity>=500"),
        (
            'timestamp>="2024-01-01T00:00:00Z" httpRequest.status>=500',
            '(timestamp>="2024-01-01T00:00:00Z" AND httpRequest.status>=500)',
        ),
    ],
)
def test_logging_constructs_parse_with_no_problems(text, tree):
    assert str(parse_logging_filter(text)) == tree
    assert logging_filter_problems(text) == []


def test_a_value_list_keeps_its_values():
    comparison = parse_logging_filter('resource.type = ("cloud_run_revision" OR "cloud_run_job")')
    assert isinstance(comparison, Comparison) and isinstance(comparison.field, FieldPath)
    assert comparison.field.parts == ("resource", "type")
    assert isinstance(comparison.value, Or)
    values = [item.value.value if isinstance(item, Global) else item for item in comparison.value.items]
    assert values == ["cloud_run_revision", "cloud_run_job"]


def test_a_quoted_path_component_is_one_part():
    comparison = parse_logging_filter('labels."compute.googleapis.com/resource_id"="1"')
    assert isinstance(comparison, Comparison) and isinstance(comparison.field, FieldPath)
    assert comparison.field.parts == ("labels", "compute.googleapis.com/resource_id")


# --- Logging: the typos this exists for -------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'resource.type="cloud_run_revison"',
            'at character 15: resource.type "cloud_run_revison" is not a known monitored resource type (did you mean "cloud_run_revision"?)',
        ),
        ("severty>=ERROR", 'at character 1: unknown field "severty" (LogEntry fields: logName, resource, timestamp,'),
        ("severty>=ERROR", 'did you mean "severity"?)'),
        (
            "severity>=ERRROR",
            'at character 11: "ERRROR" is not a severity (DEFAULT, DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL, ALERT, EMERGENCY; did you mean "ERROR"?)',
        ),
        (
            '(severity>=ERROR AND resource.type="cloud_run_revision"',
            'at character 1: unbalanced parenthesis: "(" is never closed',
        ),
        (
            'resource.type="cloud_run_revision" AND (severity>=ERROR OR jsonPayload.a="x"',
            'at character 40: unbalanced parenthesis: "(" is never closed',
        ),
        ("severity>=ERROR)", 'at character 16: unbalanced parenthesis: this ")" closes nothing'),
        (
            'resource.type=("cloud_run_revision" OR "cloud_run_jb")',
            'at character 40: resource.type "cloud_run_jb" is not a known monitored resource type (did you mean "cloud_run_job"?)',
        ),
        ("severity=(ERROR OR WARNNG)", '"WARNNG" is not a severity'),
        (
            'resource.typ="global"',
            'unknown field "resource.typ" (resource fields: type, labels; did you mean "resource.type"?)',
        ),
        ("httpRequest.stauts>=500", 'did you mean "httpRequest.status"?'),
        ('textPayload.thud="x"', 'unknown field "textPayload.thud" (textPayload has no fields)'),
        (
            'jsonPayload.a="x" and severity>=ERROR',
            "at character 19: \"and\" is a search for the word 'and', not an operator: write AND",
        ),
        (
            'resource.type="cloud_run_revision" AND resource.labels.service_nme="x"',
            '"service_nme" is not a label of cloud_run_revision (its labels: configuration_name, location, project_id, revision_name, service_name; did you mean "service_name"?)',
        ),
        (
            'resource.type="cloud_run_revision" AND resource.label.service_name="x"',
            'did you mean "resource.labels.service_name"?',
        ),
        (
            'resource.type="cloud_run_revision" AND starts_with("x")',
            "starts_with() is a Cloud Monitoring filter function, not a Logging one",
        ),
        ("sampel(insertId, 0.1)", 'unknown function "sampel()" (Logging functions:'),
        ("sample(insertId)", "sample() takes 2 arguments, got 1"),
        ("sample(insertid, 0.1)", 'unknown field "insertid"'),
    ],
)
def test_logging_typos_are_caught(text, message):
    problems = logging_filter_problems(text)
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at character 1: the filter is empty"),
        ("-- nothing but a comment", "the filter is empty"),
        (
            'jsonPayload.a="unterminated',
            "at character 15: unbalanced quote: the string '\"unterminated' is never closed",
        ),
        ("((severity>=ERROR)", 'at character 1: unbalanced parenthesis: "(" is never closed'),
        ('log_id("x"', 'at character 7: unbalanced parenthesis: "(" is never closed'),
        ("()", "empty parentheses"),
        ("severity>=", 'at character 9: expected a value after ">=", found end of filter'),
        ("severity>= AND jsonPayload.a=1", 'at character 12: expected a value after ">=", found "AND"'),
        ("severity>=ERROR AND", 'at character 17: "AND" has nothing on its right'),
        ("severity>=ERROR OR", '"OR" has nothing on its right'),
        ("AND severity>=ERROR", 'at character 1: "AND" has nothing on its left'),
        ("severity>=ERROR AND AND jsonPayload.a=1", '"AND AND": "AND" needs a restriction on each side'),
        ("NOT", '"NOT" has nothing on its right'),
        ("severity==ERROR", 'expected a value after "=", found "="'),
        ('= "x"', '"=" has no field on its left'),
        ('"jsonPayload"="x"', 'the left of "=" must be a field, not the string "jsonPayload"'),
        ("jsonPayload.a=-x", 'a value that starts with "-" must be quoted'),
        ('jsonPayload.a=(jsonPayload.b="x")', 'a value list after "=" holds values, not comparisons'),
        ("resource.type=\u201ccloud_run_revision\u201d", "is a typographic quote"),
        ("jsonPayload.a. = 1", 'unexpected character "."'),
    ],
)
def test_logging_syntax_errors_are_caught(text, message):
    with pytest.raises(FilterSyntaxError) as raised:
        parse_logging_filter(text)
    assert message in str(raised.value)
    assert logging_filter_problems(text) == [str(raised.value)]


# --- Monitoring ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        (
            'resource.labels.subscription_id=ends_with("-dead-letter-sub")',
            'resource.labels.subscription_id=ends_with("-dead-letter-sub")',
        ),
        ('resource.labels.zone = starts_with("europe-")', 'resource.labels.zone=starts_with("europe-")'),
        (
            'resource.type = one_of("cloud_run_revision", "cloud_run_job")',
            'resource.type=one_of("cloud_run_revision", "cloud_run_job")',
        ),
        ('metric.labels.path = has_substring("/api", true)', 'metric.labels.path=has_substring("/api", true)'),
        (
            'resource.labels.instance_id = monitoring.regex.full_match("gke-(a|b).*")',
            'resource.labels.instance_id=monitoring.regex.full_match("gke-(a|b).*")',
        ),
        (
            'metric.type="run.googleapis.com/request_count" resource.type="cloud_run_revision"',
            '(metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision")',
        ),
        ("metric.label.response_code >= 500", "metric.label.response_code>=500"),
        (
            '(metric.labels.a="x" OR metric.labels.a="y") AND NOT metric.labels.b:"z"',
            '((metric.labels.a="x" OR metric.labels.a="y") AND NOT metric.labels.b:"z")',
        ),
        (
            'project="my-project" AND group.id="1234" AND metadata.user_labels.team="data"',
            '(project="my-project" AND group.id="1234" AND metadata.user_labels.team="data")',
        ),
        ('metadata.system_labels."name"="vm-1"', 'metadata.system_labels."name"="vm-1"'),
    ],
)
def test_monitoring_constructs_parse_with_no_problems(text, tree):
    assert str(parse_monitoring_filter(text)) == tree
    assert monitoring_filter_problems(text) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'resource.type="cloud_run_revison"',
            'at character 15: resource.type "cloud_run_revison" is not a known monitored resource type (did you mean "cloud_run_revision"?)',
        ),
        (
            'resource.type=one_of("cloud_run_revision", "pubsub_topc")',
            'resource.type "pubsub_topc" is not a known monitored resource type (did you mean "pubsub_topic"?)',
        ),
        (
            'resource.lables.subscription_id="x"',
            'unknown selector "resource.lables.subscription_id" (selectors: metric.type,',
        ),
        ('resource.lables.subscription_id="x"', 'did you mean "resource.labels.subscription_id"?'),
        ("severity>=ERROR", 'unknown selector "severity"'),
        ('resource.type>"global"', 'resource.type takes = or !=, not ">"'),
        (
            'metric.labels.a=~"x.*"',
            '"=~" is a Logging operator; a Monitoring filter writes metric.labels.a = monitoring.regex.full_match("...")',
        ),
        ('metric.labels.a=startswith("x")', 'unknown function "startswith()" (Monitoring functions:'),
        ('metric.labels.a=starts_with("x", "y")', "starts_with() takes 1 argument, got 2"),
        ('metric.labels.a>starts_with("x")', 'starts_with() is compared with = or !=, not ">"'),
        (
            'metric.labels.a="x" OR metric.labels.b="y" AND metric.labels.c="z"',
            "OR and AND are mixed without parentheses",
        ),
    ],
)
def test_monitoring_mistakes_are_caught(text, message):
    problems = monitoring_filter_problems(text)
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('metric.labels.a="x" and metric.labels.b="y"', '"and" is not an operator: write AND'),
        ('metric.labels.a="x" OR', '"OR" has nothing on its right'),
        ('(metric.labels.a="x" OR metric.labels.b="y"', 'at character 1: unbalanced parenthesis: "(" is never closed'),
        ('metric.labels.a=ends_with("x"', 'unbalanced parenthesis: "(" is never closed'),
        ('"cloud_run_revision"', "is not a comparison: a Monitoring filter compares selectors"),
        ('-metric.labels.a="x"', '"-" negates only in Logging queries: write NOT'),
        ('metric.labels.a="x" -- note', '"--" comments are for Logging queries; a Monitoring filter has none'),
        ("metric.labels.a=", 'expected a value after "=", found end of filter'),
    ],
)
def test_monitoring_syntax_errors_are_caught(text, message):
    with pytest.raises(FilterSyntaxError) as raised:
        parse_monitoring_filter(text)
    assert message in str(raised.value)


def test_monitoring_labels_are_checked_against_the_rules_resource_type():
    text = 'resource.labels.subscripton_id=ends_with("-dead-letter-sub")'
    assert monitoring_filter_problems(text) == []  # no resource type: nothing to check the label against
    [problem] = monitoring_filter_problems(text, "pubsub_subscription")
    assert '"subscripton_id" is not a label of pubsub_subscription' in problem
    assert 'did you mean "subscription_id"?' in problem


# --- The lint ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "path", "fragment"),
    [
        ("misspelled-resource-type", "spec.conditions[0].logMatch.filter", 'resource.type="cloud_run_revison"'),
        ("misspelled-log-field", "spec.logMetric.filter", "AND severty>=ERROR"),
        ("misspelled-severity", "spec.conditions[0].logMatch.filter", "AND severity>=ERRROR"),
        (
            "filter-parenthesis-never-closed",
            "spec.conditions[0].threshold.filter",
            'AND (metric.labels.response_code_class="5xx"',
        ),
        (
            "misspelled-resource-type-field",
            "spec.conditions[0].threshold.resourceType",
            "resourceType: pubsub_subscripton",
        ),
    ],
)
def test_the_lint_names_the_file_path_and_line_of_the_typo(tmp_path, case, path, fragment):
    repo = copy_specs(tmp_path)
    shutil.copy(CORPUS / "fail" / f"{case}.yaml", repo / "alerts")
    rule = load_alert_specs(repo / "alerts", strict=False).rule(case)
    [problem] = filters_parse_and_name_real_things(rule, NO_CONTEXT)
    assert problem.file.endswith(f"{case}.yaml")
    assert problem.path == path
    lines = (repo / "alerts" / f"{case}.yaml").read_text().splitlines()
    assert problem.line is not None
    assert fragment in lines[problem.line - 1]


def test_a_filter_on_one_line_is_located_at_its_key(tmp_path):
    repo = copy_specs(tmp_path)
    text = (
        (CORPUS / "pass" / "extra-log-match.yaml").read_text().replace('jsonPayload.outcome="late"', "severty>=ERROR")
    )
    (repo / "alerts" / "extra-log-match.yaml").write_text(text)
    rule = load_alert_specs(repo / "alerts").rule("extra-log-match")
    [problem] = filters_parse_and_name_real_things(rule, NO_CONTEXT)
    assert 'unknown field "severty"' in problem.message
    assert problem.line is not None
    assert "filter:" in text.splitlines()[problem.line - 1]
