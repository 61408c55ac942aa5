"""What a Cloud Run user writes on day one: percentiles, ratios, PromQL, and rule tests that say whether a rule fires."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from phase3ops.alerts.policies import policy_body, to_proto
from phase3ops.alerts.rule_tests import expand_values, load_test_files, run_rule_tests
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.dashboards.render import dashboard_body
from phase3ops.dashboards.specs import load_dashboard_specs
from phase3ops.monitoring.aggregation_rules import aligned, aligner_problem, reducer_problem
from phase3ops.monitoring.descriptors import kind_and_value_type
from tests.support.cli_process import run_in_process
from tests.support.repo_copy import REPO_ROOT, copy_specs

RUNBOOKS = "https://runbooks.invalid/"
_METRIC_TYPE = re.compile(r'metric\.type="([^"]+)"')


def shipped_rules():
    return load_alert_specs(REPO_ROOT / "alerts")


def test_a_p99_renders_the_merged_distributions_percentile():
    rule = shipped_rules().rule("analytics-service-latency-p99")
    condition = to_proto(policy_body(rule, RUNBOOKS)).conditions[0].condition_threshold
    (aggregation,) = condition.aggregations
    assert (aggregation.per_series_aligner.name, aggregation.cross_series_reducer.name) == (
        "ALIGN_DELTA",
        "REDUCE_PERCENTILE_99",
    )
    assert condition.duration.total_seconds() == 15 * 60


def test_a_ratio_renders_the_apis_denominator_fields():
    rule = shipped_rules().rule("analytics-service-5xx")
    ratio = to_proto(policy_body(rule, RUNBOOKS)).conditions[0].condition_threshold
    assert 'metric.labels.response_code_class="5xx"' in ratio.filter
    assert "5xx" not in ratio.denominator_filter
    assert 'resource.type="cloud_run_revision"' in ratio.denominator_filter  # inherited from the numerator
    assert [a.per_series_aligner.name for a in ratio.denominator_aggregations] == ["ALIGN_SUM"]
    assert ratio.threshold_value == pytest.approx(0.1)


def test_a_promql_condition_renders_as_the_api_takes_it(tmp_path):
    repo = copy_specs(tmp_path)
    shutil.copy(REPO_ROOT / "tests/alerts_corpus/pass/extra-promql.yaml", repo / "alerts")
    rule = load_alert_specs(repo / "alerts").rule("extra-promql")
    condition = to_proto(policy_body(rule, RUNBOOKS)).conditions[0].condition_prometheus_query_language
    assert condition.query.startswith("histogram_quantile(0.99")
    assert condition.duration.total_seconds() == 15 * 60
    assert condition.evaluation_interval.total_seconds() == 60
    assert dict(condition.labels) == {"team": "data-platform"}


def aggregations_of(body):
    """Every (filter, aggregation) pair in a rendered policy or dashboard body, whatever its shape."""
    if isinstance(body, dict):
        filters = [body.get("filter"), body.get("denominator_filter")]
        lists = [body.get("aggregations") or [], body.get("denominator_aggregations") or []]
        for text, aggregations in zip(filters, lists):
            for aggregation in aggregations:
                yield text, aggregation
        if "filter" in body and "aggregation" in body:
            yield body["filter"], body["aggregation"]
        for value in body.values():
            yield from aggregations_of(value)
    elif isinstance(body, list):
        for value in body:
            yield from aggregations_of(value)


def rendered_bodies():
    for rule in shipped_rules().rules:
        yield f"alert rule {rule.name}", policy_body(rule, RUNBOOKS), frozenset()
    for dashboard in load_dashboard_specs(REPO_ROOT / "dashboards").dashboards:
        distributions = frozenset(m["name"] for m in dashboard.log_metrics if m.get("distribution"))
        yield f"dashboard {dashboard.name}", json.loads(json.dumps(dashboard_body(dashboard))), distributions


def test_every_shipped_aggregation_is_one_the_api_allows_for_its_metric():
    """The dashboard charted a distribution log metric with ALIGN_MEAN, which the API documents for numbers only."""
    checked = 0
    for where, body, distributions in rendered_bodies():
        for text, aggregation in aggregations_of(body):
            (metric,) = _METRIC_TYPE.findall(text)
            kind, value_type = kind_and_value_type(metric, distributions)
            if kind is None or value_type is None:
                continue
            aligner = aggregation.get("perSeriesAligner") or aggregation.get("per_series_aligner")
            reducer = aggregation.get("crossSeriesReducer") or aggregation.get("cross_series_reducer")
            assert aligner_problem(aligner, kind, value_type) is None, (where, metric)
            assert reducer_problem(reducer, *aligned(aligner, kind, value_type)) is None, (where, metric)
            checked += 1
    assert checked >= 30


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("1 2 3", [1, 2, 3]),
        ("0+10x3", [0, 10, 20, 30]),
        ("5-1x2", [5, 4, 3]),
        ("7x2 _ 1", [7, 7, 7, None, 1]),
        ("_x2", [None, None, None]),
    ],
)
def test_values_take_promtools_expanding_notation(text, values):
    assert expand_values(text) == values


def test_every_shipped_rule_has_tests_and_they_pass():
    specs = shipped_rules()
    report = run_rule_tests(REPO_ROOT / "alerts", specs)
    assert report.untested == ()
    assert report.passed, [
        (r.rule, c.name, [o for o in c.results if not o.passed]) for r in report.results for c in r.cases
    ]
    documents, problems = load_test_files(REPO_ROOT / "alerts")
    assert problems == []
    # Each rule's tests show it firing and staying quiet.
    for document in documents:
        states = {e["firing"] for case in document.data["spec"]["cases"] for e in case["expect"]}
        assert states == {True, False}, document.file


def test_a_wrong_expectation_fails_with_what_was_expected_and_what_was_evaluated(tmp_path):
    repo = copy_specs(tmp_path)
    test_file = repo / "alerts/tests/analytics-service-5xx.yaml"
    text = test_file.read_text()
    test_file.write_text(text.replace("- {at: 20m, firing: true}", "- {at: 20m, firing: false}", 1))
    result = run_in_process("alerts", "test", "--repo", str(repo), "--rule", "analytics-service-5xx", cwd=repo)
    assert result.returncode == 1, result.stderr
    assert "✗ the warehouse refuses writes for twenty minutes" in result.stdout
    assert "at 20m: expected not firing, evaluated firing" in result.stdout
    # ... and what each condition evaluated to, so the author sees how far off the rule is.
    assert re.search(r"condition 0 \(.*share more than 10 % .*\): 0\.4", result.stdout), result.stdout


def test_a_test_of_no_rule_is_a_problem_at_its_name(tmp_path):
    repo = copy_specs(tmp_path)
    misnamed = repo / "alerts/tests/analytics-service-6xx.yaml"
    shutil.copy(repo / "alerts/tests/analytics-service-5xx.yaml", misnamed)
    misnamed.write_text(misnamed.read_text().replace("name: analytics-service-5xx", "name: analytics-service-6xx"))
    result = run_in_process("alerts", "test", "--repo", str(repo), cwd=repo)
    assert result.returncode == 2
    assert re.search(r"alerts/tests/analytics-service-6xx\.yaml:\d+: metadata\.name: no alert rule", result.stderr)


def test_a_promql_rule_is_reported_not_evaluated_never_passed(tmp_path):
    repo = copy_specs(tmp_path)
    shutil.copy(REPO_ROOT / "tests/alerts_corpus/pass/extra-promql.yaml", repo / "alerts")
    test_file = repo / "alerts/tests/extra-promql.yaml"
    test_file.write_text(
        Path(repo / "alerts/tests/analytics-service-latency-p99.yaml")
        .read_text()
        .replace("name: analytics-service-latency-p99", "name: extra-promql")
    )
    result = run_in_process("alerts", "test", "--repo", str(repo), "--rule", "extra-promql", cwd=repo)
    assert result.returncode == 1
    assert "evaluated not evaluated" not in result.stdout
    assert "PromQL, not evaluated offline" in result.stdout


def test_every_shipped_expectation_fails_when_inverted(tmp_path):
    """A rule test that passes whatever it expects tests nothing: inverted, each expectation must fail."""
    repo = copy_specs(tmp_path)
    for path in (repo / "alerts/tests").glob("*.yaml"):
        text = path.read_text()
        swapped = text.replace("firing: true", "firing: SWAP").replace("firing: false", "firing: true")
        path.write_text(swapped.replace("firing: SWAP", "firing: false"))
    report = run_rule_tests(repo / "alerts", load_alert_specs(repo / "alerts"))
    outcomes = [o for r in report.results for c in r.cases for o in c.results]
    assert len(outcomes) >= 60
    assert [o for o in outcomes if o.passed] == []


def test_the_refresh_writes_the_apis_descriptors_as_the_table_reads_them(tmp_path):
    from google.api import label_pb2, metric_pb2

    from phase3ops.monitoring.descriptors import _load_built_in
    from phase3ops.monitoring.refresh_descriptors import table

    descriptor = metric_pb2.MetricDescriptor(
        type="run.googleapis.com/request_latencies",
        metric_kind=metric_pb2.MetricDescriptor.DELTA,
        value_type=metric_pb2.MetricDescriptor.DISTRIBUTION,
        unit="ms",
        labels=[label_pb2.LabelDescriptor(key="response_code_class"), label_pb2.LabelDescriptor(key="route")],
        monitored_resource_types=["cloud_run_revision"],
    )

    import datetime as dt

    written = tmp_path / "descriptors.json"
    written.write_text(json.dumps(table([descriptor], dt.date(2026, 12, 7))))
    (facts,) = _load_built_in(written).values()
    assert (facts.kind, facts.value_type, facts.unit) == ("DELTA", "DISTRIBUTION", "ms")
    assert facts.labels == {"response_code_class", "route"}
    assert facts.resource_types == {"cloud_run_revision"}
