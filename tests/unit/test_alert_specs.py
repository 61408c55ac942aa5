"""Alert specs: the shipped ones are valid API objects; the corpus must pass or fail as labelled."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from phase3ops.alerts.policies import log_metric_body, policy_body, to_proto
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.spec.documents import SpecError
from phase3ops.validate import validate
from tests.support.cli_process import run_in_process
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
    matching = [
        p for p in problems if p.file.endswith(case.name) and (p.path or "<document>") == path and message in p.message
    ]
    assert matching, f"expected {path}: {message!r}; got {[str(p) for p in problems]}"
    assert (matching[0].line is not None and matching[0].line > 1) or path in ("<document>", "")


def test_every_problem_of_every_file_is_reported_at_once(repo):
    for case in ("unknown-severity", "unknown-channel", "per-second-rate-under-a-count"):
        shutil.copy(CORPUS / "fail" / f"{case}.yaml", repo / "alerts")
    (repo / "alerts" / "channels.yaml").write_text(
        (repo / "alerts" / "channels.yaml").read_text().replace("team: data-platform", "team: Data Platform", 1)
    )
    result = run_in_process("validate", "--repo", str(repo), cwd=repo)
    assert result.returncode == 2
    for fragment in ("unknown-severity.yaml:", "channels.yaml:", "'Data Platform' does not match"):
        assert fragment in result.stderr, result.stderr


def test_problems_name_the_line_of_the_value(repo):
    shutil.copy(CORPUS / "fail" / "unknown-channel.yaml", repo / "alerts")
    [problem] = validate(repo, stacks=[]).problems
    lines = (repo / "alerts" / "unknown-channel.yaml").read_text().splitlines()
    assert problem.line is not None
    assert "phase3-pager" in lines[problem.line - 1]


def test_a_file_edited_between_two_checks_in_one_process_is_checked_again(repo):
    """What a spec's schema check found is remembered (a plan reads every file each time), by the file's text."""
    rule = repo / "alerts" / "duplicate-rows.yaml"
    assert validate(repo, stacks=[]).problems == []
    rule.write_text(rule.read_text().replace("severity: error", "severity: urgent", 1))
    [problem] = validate(repo, stacks=[]).problems
    assert problem.file.endswith("duplicate-rows.yaml") and "'urgent' is not one of" in problem.message
    rule.write_text(rule.read_text().replace("severity: urgent", "severity: error", 1))
    assert validate(repo, stacks=[]).problems == []
    schema = repo / "alerts" / "schema" / "alert-rule.schema.json"  # ... and by the schema's text
    schema.write_text(schema.read_text().replace('"error",', "", 1))
    problems = [p for p in validate(repo, stacks=[]).problems if p.file.endswith("duplicate-rows.yaml")]
    assert [p.message for p in problems] == ["'error' is not one of 'critical', 'warning'"]


def test_a_stack_override_that_breaks_a_rule_is_reported_for_that_stack(repo):
    overrides = repo / "alerts" / "stacks" / "dev.yaml"
    overrides.write_text(
        overrides.read_text()
        + "  lock-takeovers:\n    notify:\n      channels: [nobody]\n  ghost-rule:\n    enabled: false\n"
    )
    problems = [str(p) for p in validate(repo, stacks=["dev"]).problems]
    assert any(
        "stacks/dev.yaml" in p and "overrides 'ghost-rule', which no rule file defines" in p for p in problems
    ), problems
    assert any(
        "lock-takeovers.yaml" in p and "no channel named 'nobody'" in p and "[stack dev]" in p for p in problems
    ), problems


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
    assert (
        to_proto(policy_body(rule, RUNBOOK_BASE)).conditions[0].display_name
        == "Orchestrator errors: more than 5 in 10 minutes"
    )
    metric = log_metric_body(rule)
    assert metric is not None
    assert metric["metric_descriptor"] == {"metric_kind": "DELTA", "value_type": "INT64", "unit": "1"}
    assert 'resource.type="cloud_run_revision"' in metric["filter"]


def test_log_metric_labels_become_extractors(repo):
    shutil.copy(CORPUS / "pass" / "extra-threshold-explicit-aggregation.yaml", repo / "alerts")
    metric = log_metric_body(load_alert_specs(repo / "alerts").rule("extra-threshold-explicit-aggregation"))
    assert metric is not None
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


DEV_HEADER = "# yaml-language-server: $schema=../schema/stack-overrides.schema.json\napiVersion: phase3ops/v1\nkind: AlertOverrides\nstack: dev\nrules:\n"


def write_dev_overrides(repo: Path, rules: str) -> Path:
    """alerts/stacks/dev.yaml with these rules (the YAML under `rules:`, indented by two); they start at line 6."""
    overrides = repo / "alerts" / "stacks" / "dev.yaml"
    overrides.write_text(DEV_HEADER + rules)
    return overrides


def dev_problems(repo: Path) -> list:
    report = validate(repo, stacks=["dev"])
    assert "dev" not in report.specs, "a broken override must leave the stack unusable"
    return report.problems


@pytest.mark.parametrize(
    "rules, line, path, fragment",
    [
        (  # a condition past the end of the rule's list
            '  orchestrator-errors:\n    conditions:\n      "3":\n        threshold:\n          value: 1\n',
            8,
            "rules.orchestrator-errors.conditions.3",
            "there is no spec.conditions[3]: rule orchestrator-errors has 1 condition (index 0)",
        ),
        (  # one index exists, the other does not
            '  orchestrator-errors:\n    conditions:\n      "0":\n        threshold:\n          value: 1\n      "1":\n        threshold:\n          value: 2\n',
            11,
            "rules.orchestrator-errors.conditions.1",
            "there is no spec.conditions[1]: rule orchestrator-errors has 1 condition (index 0)",
        ),
        (  # patching by index a list the rule does not have at all
            '  orchestrator-errors:\n    conditions:\n      "0":\n        threshold:\n          groupBy:\n            "0": resource.label.service_name\n',
            10,
            "rules.orchestrator-errors.conditions.0.threshold.groupBy",
            "patches spec.conditions[0].threshold.groupBy by index, but rule orchestrator-errors has no spec.conditions[0].threshold.groupBy",
        ),
        (  # patching by index a mapping
            '  orchestrator-errors:\n    documentation:\n      "0":\n        summary: x\n',
            7,
            "rules.orchestrator-errors.documentation",
            "patches spec.documentation by index, but in rule orchestrator-errors it is a mapping, not a list",
        ),
        (  # patching by index a number
            '  orchestrator-errors:\n    conditions:\n      "0":\n        threshold:\n          value:\n            "0": 1\n',
            10,
            "rules.orchestrator-errors.conditions.0.threshold.value",
            "patches spec.conditions[0].threshold.value by index, but in rule orchestrator-errors it is a number, not a list",
        ),
    ],
    ids=["index-past-the-end", "second-index-past-the-end", "no-such-list", "mapping", "number"],
)
def test_an_override_by_index_of_nothing_is_an_error_at_the_override(repo, rules, line, path, fragment):
    write_dev_overrides(repo, rules)
    problems = dev_problems(repo)
    assert [(p.file.endswith("alerts/stacks/dev.yaml"), p.line, p.path) for p in problems] == [(True, line, path)], [
        str(p) for p in problems
    ]
    assert fragment in problems[0].message
    assert problems[0].message.endswith("[stack dev]")
    with pytest.raises(SpecError) as raised:
        load_alert_specs(repo / "alerts", "dev", strict=False)
    assert [(p.line, p.path) for p in raised.value.problems] == [(line, path)]


def test_an_index_past_the_end_counts_the_conditions_the_rule_has(repo):
    write_dev_overrides(
        repo, '  orchestrator-errors:\n    conditions:\n      "3":\n        threshold:\n          value: 1\n'
    )
    [problem] = dev_problems(repo)
    assert str(problem).startswith(f"{problem.file}:8: rules.orchestrator-errors.conditions.3: ")
    assert "has 1 condition" in problem.message and "orchestrator-errors" in problem.message


def test_an_overrides_type_error_is_reported_at_the_override(repo):
    overrides = write_dev_overrides(
        repo,
        '  orchestrator-errors:\n    conditions:\n      "0":\n        threshold:\n          value: "twenty"\n'
        "  lock-takeovers:\n    notify:\n      rateLimit: soon\n",
    )
    problems = dev_problems(repo)
    assert all(p.file.endswith("alerts/stacks/dev.yaml") for p in problems), [str(p) for p in problems]
    by_path = {p.path: p for p in problems}
    assert set(by_path) == {
        "rules.orchestrator-errors.conditions.0.threshold.value",
        "rules.lock-takeovers.notify.rateLimit",
    }
    value = by_path["rules.orchestrator-errors.conditions.0.threshold.value"]
    assert value.line == 10 and 'value: "twenty"' in overrides.read_text().splitlines()[value.line - 1]
    assert "overrides spec.conditions[0].threshold.value of rule orchestrator-errors" in value.message
    assert "'twenty' is not of type 'number'" in value.message
    rate_limit = by_path["rules.lock-takeovers.notify.rateLimit"]
    assert rate_limit.line == 13
    assert (
        "overrides spec.notify.rateLimit of rule lock-takeovers" in rate_limit.message
        and "'soon' does not match" in rate_limit.message
    )


def test_an_override_that_adds_a_key_the_schema_forbids_is_reported_at_that_key(repo):
    write_dev_overrides(
        repo,
        '  orchestrator-errors:\n    conditions:\n      "0":\n        threshold:\n          for: 5m\n          valu: 1\n'
        '  analytics-service-5xx:\n    conditions:\n      "0":\n        absence:\n          metric: log:x\n          window: 5m\n',
    )
    problems = {(p.line, p.path): p.message for p in dev_problems(repo)}
    assert set(problems) == {
        (11, "rules.orchestrator-errors.conditions.0.threshold.valu"),
        (15, "rules.analytics-service-5xx.conditions.0.absence"),
    }, problems
    assert "'valu' was unexpected" in problems[(11, "rules.orchestrator-errors.conditions.0.threshold.valu")]
    assert "of rule analytics-service-5xx" in problems[(15, "rules.analytics-service-5xx.conditions.0.absence")]
    assert "too many properties" in problems[(15, "rules.analytics-service-5xx.conditions.0.absence")]


def test_an_override_that_replaces_a_list_is_located_in_the_override(repo):
    write_dev_overrides(
        repo,
        "  orchestrator-errors:\n    conditions:\n      - threshold:\n          metric: log:phase3_orchestrator_errors\n",
    )
    problems = dev_problems(repo)
    assert problems and all(p.file.endswith("alerts/stacks/dev.yaml") for p in problems), [str(p) for p in problems]
    assert {(p.line, p.path) for p in problems} == {(8, "rules.orchestrator-errors.conditions[0].threshold")}
    assert "'value' is a required property" in " ".join(p.message for p in problems)


def test_an_override_for_a_rule_no_file_defines_stays_an_error(repo):
    write_dev_overrides(repo, "  ghost-rule:\n    enabled: false\n")
    [problem] = validate(repo, stacks=["dev"]).problems
    assert (problem.file.endswith("alerts/stacks/dev.yaml"), problem.line, problem.path) == (
        True,
        6,
        "rules.ghost-rule",
    )
    assert "overrides 'ghost-rule', which no rule file defines" in problem.message
    with pytest.raises(SpecError, match="ghost-rule"):
        load_alert_specs(repo / "alerts", "dev")


def test_merged_values_are_located_where_they_were_written(repo):
    from phase3ops.alerts.specs import _Layer, _Origins
    from phase3ops.spec.documents import read_yaml

    alerts = repo / "alerts"
    write_dev_overrides(
        repo, '  orchestrator-errors:\n    conditions:\n      "0":\n        threshold:\n          value: 20\n'
    )
    defaults, rule, overrides = (
        read_yaml(alerts / name) for name in ("defaults.yaml", "orchestrator-errors.yaml", "stacks/dev.yaml")
    )
    origins = _Origins(_Layer(defaults, ("spec",), "orchestrator-errors"))
    spec = origins.merge(defaults.data["spec"], rule.data["spec"], _Layer(rule, ("spec",), "orchestrator-errors"))
    origins.merge(
        spec,
        overrides.data["rules"]["orchestrator-errors"],
        _Layer(overrides, ("rules", "orchestrator-errors"), "orchestrator-errors", True),
    )

    def where(*path):
        layer, at = origins.origin(path)
        problem = layer.problem(at, "")
        return Path(problem.file).name, problem.line, problem.path

    assert where("conditions", 0, "threshold", "value") == (
        "dev.yaml",
        10,
        "rules.orchestrator-errors.conditions.0.threshold.value",
    )
    rule_lines = (alerts / "orchestrator-errors.yaml").read_text().splitlines()
    window = 1 + next(n for n, text in enumerate(rule_lines) if text.strip() == "window: 10m")
    second_command = 1 + next(
        n for n, text in enumerate(rule_lines) if text.strip() == "- scripts/reconcile_phase3_completion.py --days 3"
    )
    assert where("conditions", 0, "threshold", "window") == (
        "orchestrator-errors.yaml",
        window,
        "spec.conditions[0].threshold.window",
    )
    assert where("documentation", "commands", 1) == (
        "orchestrator-errors.yaml",
        second_command,
        "spec.documentation.commands[1]",
    )
    assert where("notify", "channels", 0) == ("defaults.yaml", 12, "spec.notify.channels[0]")
    assert where("combiner") == ("defaults.yaml", 8, "spec.combiner")
    assert origins.problems == []
