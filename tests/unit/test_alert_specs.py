"""Alert specs: the shipped ones are valid API objects; the corpus must pass or fail as labelled."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phase3ops.alerts.policies import log_metric_body, policy_body, to_proto
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.alerts.validate import validate
from tests.support.repo_copy import REPO_ROOT, copy_specs

CORPUS = Path(__file__).resolve().parent.parent / "alerts_corpus"
RUNBOOK_BASE = "https://github.com/example/phase3-orchestration/blob/main/"


def expectation(case: Path) -> tuple[str, str]:
    for line in case.read_text().splitlines()[:3]:
        if line.startswith("# expect: "):
            path, _, message = line.removeprefix("# expect: ").partition(" :: ")
            return path, message
    raise AssertionError(f"{case} has no '# expect:' line")


@pytest.fixture
def repo(tmp_path) -> Path:
    return copy_specs(tmp_path)


def test_the_shipped_specs_are_valid():
    report = validate(REPO_ROOT)
    assert report.problems == []
    assert {"", "dev"} <= set(report.specs)
    assert len(report.specs[""].rules) >= 11


@pytest.mark.parametrize("case", sorted((CORPUS / "pass").glob("*.yaml")), ids=lambda p: p.stem)
def test_corpus_cases_that_must_pass(repo, case):
    shutil.copy(case, repo / "alerts" / case.name)
    report = validate(repo, stacks=[])
    assert report.problems == []
    assert case.stem in [r.name for r in report.specs[""].rules]


@pytest.mark.parametrize("case", sorted((CORPUS / "fail").glob("*.yaml")), ids=lambda p: p.stem)
def test_corpus_cases_that_must_fail(repo, case):
    shutil.copy(case, repo / "alerts" / case.name)
    path, message = expectation(case)
    problems = validate(repo, stacks=[]).problems
    assert problems, "the case must be rejected"
    # Nothing else breaks: other files are named only where they clash with this case.
    assert all(p.file.endswith(case.name) or case.stem in p.message for p in problems), [str(p) for p in problems]
    matching = [p for p in problems if p.file.endswith(case.name) and (p.path or "<document>") == path and message in p.message]
    assert matching, f"expected {path}: {message!r}; got {[str(p) for p in problems]}"
    assert matching[0].line is not None and matching[0].line > 1 or path in ("<document>", "")


def test_every_problem_of_every_file_is_reported_at_once(repo):
    for case in ("unknown-severity", "unknown-channel", "per-second-rate-under-a-count"):
        shutil.copy(CORPUS / "fail" / f"{case}.yaml", repo / "alerts")
    (repo / "alerts" / "channels.yaml").write_text((repo / "alerts" / "channels.yaml").read_text().replace("team: data-platform", "team: Data Platform", 1))
    result = subprocess.run(
        [sys.executable, "-m", "phase3ops.cli", "validate", "--repo", str(repo)], capture_output=True, text=True, cwd=repo
    )
    assert result.returncode == 2
    for fragment in ("unknown-severity.yaml:", "channels.yaml:", "'Data Platform' does not match"):
        assert fragment in result.stderr, result.stderr


def test_problems_name_the_line_of_the_value(repo):
    shutil.copy(CORPUS / "fail" / "unknown-channel.yaml", repo / "alerts")
    [problem] = validate(repo, stacks=[]).problems
    lines = (repo / "alerts" / "unknown-channel.yaml").read_text().splitlines()
    assert "phase3-pager" in lines[problem.line - 1]


def test_a_stack_override_that_breaks_a_rule_is_reported_for_that_stack(repo):
    overrides = repo / "alerts" / "stacks" / "dev.yaml"
    overrides.write_text(overrides.read_text() + "  lock-takeovers:\n    notify:\n      channels: [nobody]\n  ghost-rule:\n    enabled: false\n")
    problems = [str(p) for p in validate(repo, stacks=["dev"]).problems]
    assert any("stacks/dev.yaml" in p and "overrides 'ghost-rule', which no rule file defines" in p for p in problems), problems
    assert any("lock-takeovers.yaml" in p and "no channel named 'nobody'" in p and "[stack dev]" in p for p in problems), problems


def test_dev_overrides_apply_only_to_dev():
    base = load_alert_specs(REPO_ROOT / "alerts")
    dev = load_alert_specs(REPO_ROOT / "alerts", "dev")
    assert base.rule("orchestrator-errors").conditions[0]["threshold"]["value"] == 5
    assert dev.rule("orchestrator-errors").conditions[0]["threshold"]["value"] == 20
    assert dev.rule("orchestrator-errors").conditions[0]["threshold"]["window"] == "10m"  # the rest is kept
    assert base.rule("phase4-trigger-absent").enabled and not dev.rule("phase4-trigger-absent").enabled


SHIPPED = load_alert_specs(REPO_ROOT / "alerts")


@pytest.mark.parametrize("rule", SHIPPED.rules, ids=lambda r: r.name)
def test_each_shipped_rule_converts_to_an_alert_policy(rule):
    policy = to_proto(policy_body(rule, RUNBOOK_BASE, ["projects/p/notificationChannels/42"]))
    assert policy.display_name.startswith("phase3: ")
    assert policy.documentation.mime_type == "text/markdown"
    assert policy.documentation.links[0].url.startswith(RUNBOOK_BASE + "docs/runbook.md#")
    assert policy.user_labels["rule"] == rule.name
    assert policy.notification_channels == ["projects/p/notificationChannels/42"]
    kinds = [c._pb.WhichOneof("condition") for c in policy.conditions]
    if "condition_matched_log" in kinds:
        assert kinds == ["condition_matched_log"]
        assert policy.alert_strategy.notification_rate_limit.period.total_seconds() > 0
    else:
        assert not policy.alert_strategy.notification_rate_limit.period


def test_a_count_rule_counts_over_its_window():
    rule = SHIPPED.rule("orchestrator-errors")
    condition = to_proto(policy_body(rule, RUNBOOK_BASE)).conditions[0].condition_threshold
    aggregation = condition.aggregations[0]
    assert aggregation.alignment_period.total_seconds() == 600
    assert aggregation.per_series_aligner.name == "ALIGN_SUM"
    assert (condition.comparison.name, condition.threshold_value) == ("COMPARISON_GT", 5)
    assert 'metric.type="logging.googleapis.com/user/phase3_orchestrator_errors"' in condition.filter
    assert to_proto(policy_body(rule, RUNBOOK_BASE)).conditions[0].display_name == "Orchestrator errors: more than 5 in 10 minutes"
    metric = log_metric_body(rule)
    assert metric["metric_descriptor"] == {"metric_kind": "DELTA", "value_type": "INT64", "unit": "1"}
    assert 'resource.type="cloud_run_revision"' in metric["filter"]


def test_log_metric_labels_become_extractors(repo):
    shutil.copy(CORPUS / "pass" / "extra-threshold-explicit-aggregation.yaml", repo / "alerts")
    metric = log_metric_body(load_alert_specs(repo / "alerts").rule("extra-threshold-explicit-aggregation"))
    assert metric["label_extractors"] == {"processor": "EXTRACT(jsonPayload.processor)"}
    assert metric["metric_descriptor"]["labels"] == [{"key": "processor", "value_type": "STRING"}]


def test_the_shipped_rules_cover_what_the_on_call_needs():
    names = {r.name for r in SHIPPED.rules}
    assert {
        "orchestrator-errors",
        "analytics-service-errors",
        "analytics-service-5xx",
        "phase4-trigger-overdue",
        "phase4-trigger-absent",
        "pending-trigger-claim",
        "lock-takeovers",
        "duplicate-rows",
        "completion-accuracy-low",
        "dead-letter-not-empty",
        "scraper-first-run-late",
    } <= names
