"""Dashboards as YAML: the shipped one answers the on-call's questions and is a valid API object; the corpus
passes or fails as labelled; overrides are located where they are written; the plan deploys what was checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from phase3ops.alerts.specs import load_alert_specs
from phase3ops.dashboards.render import console_url, dashboard_body, dashboard_json, log_metric_body, to_proto
from phase3ops.dashboards.specs import load_dashboard_specs
from phase3ops.filters.language import LOGGING, MONITORING, label_restrictions
from phase3ops.slos.specs import load_slo_specs
from phase3ops.spec.documents import SpecError
from phase3ops.spec.pipeline import load_pipeline_spec
from phase3ops.validate import validate
from tests.support.cli_process import run_in_process
from tests.support.repo_copy import REPO_ROOT, copy_specs
from tests.support.shipped_plans import shipped_plan

CORPUS = Path(__file__).resolve().parent.parent / "dashboards_corpus"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
SHIPPED = load_dashboard_specs(REPO_ROOT / "dashboards").dashboard("phase3-handoff")


def expectation(case: Path) -> tuple[str, str]:
    for line in case.read_text().splitlines()[:3]:
        if line.startswith("# expect: "):
            path, _, message = line.removeprefix("# expect: ").partition(" :: ")
            return path, message
    raise AssertionError(f"{case} has no '# expect:' line")


@pytest.fixture
def repo(tmp_path) -> Path:
    return copy_specs(tmp_path)


@pytest.fixture(scope="module")
def dev():
    return shipped_plan("dev")


# -- the shipped dashboard -----------------------------------------------------------


def test_the_shipped_dashboards_are_valid_on_every_stack():
    report = validate(REPO_ROOT)
    assert report.problems == []
    assert {"", "dev", "prod"} <= set(report.dashboards)
    assert [d.name for d in report.dashboards[""].dashboards] == ["phase3-handoff"]


def series_of(dashboard, metric: str) -> list[dict]:
    found = []
    for tile in dashboard.tiles:
        bodies = tile.body["series"] if tile.kind == "xyChart" else [tile.body] if tile.kind == "scorecard" else []
        found += [dict(body, tile=tile) for body in bodies if body["metric"] == metric]
    return found


def test_the_shipped_dashboard_answers_the_on_call_questions():
    # Per game date, when Phase 4 was triggered against the deadline.
    [deadline] = series_of(SHIPPED, "log:phase4_trigger_minutes_before_deadline")
    assert deadline["groupBy"] == ["metric.label.game_date"]
    assert [t["value"] for t in deadline["tile"].body["thresholds"]] == [0]
    # When each processor completed; and every decision, per date, in the log panel.
    by_metric = series_of(SHIPPED, "log:phase3_orchestrator_decisions")
    assert {tuple(s["groupBy"]) for s in by_metric} == {("metric.label.processor",), ("metric.label.outcome",)}
    [panel] = [t for t in SHIPPED.tiles if t.kind == "logsPanel"]
    assert 'jsonPayload.event="phase3_completion"' in panel.body["filter"]
    # The health check's numbers, dead letters, lock takeovers, analytics errors and latency.
    for metric in ("duplicate_rows", "completion_accuracy", "pending_trigger_claims", "untriggered_game_dates"):
        assert series_of(SHIPPED, f"custom.googleapis.com/phase3/{metric}")[0]["tile"].kind == "scorecard"
    [dead] = series_of(SHIPPED, "pubsub.googleapis.com/subscription/num_undelivered_messages")
    assert "nba-phase3-trigger-dead-letter-sub" in dead["filter"]
    assert series_of(SHIPPED, "log:phase3_lock_takeovers") and series_of(SHIPPED, "log:phase3_processor_failures")
    [five_xx] = series_of(SHIPPED, "run.googleapis.com/request_count")
    assert 'response_code_class="5xx"' in five_xx["filter"]
    assert {s["statistic"] for s in series_of(SHIPPED, "run.googleapis.com/request_latencies")} == {"p50", "p99"}


def test_the_decision_metrics_extract_what_the_orchestrator_logs():
    metrics = {m["name"]: log_metric_body(m) for m in SHIPPED.log_metrics}
    decisions = metrics["phase3_orchestrator_decisions"]
    assert decisions["label_extractors"] == {
        "outcome": "EXTRACT(jsonPayload.outcome)",
        "processor": "EXTRACT(jsonPayload.processor)",
        "game_date": "EXTRACT(jsonPayload.game_date)",
    }
    assert 'resource.labels.service_name="phase3-to-phase4-orchestrator"' in decisions["filter"]
    deadline = metrics["phase4_trigger_minutes_before_deadline"]
    assert deadline["value_extractor"] == "EXTRACT(jsonPayload.minutes_before_deadline)"
    assert (
        deadline["metric_descriptor"]["value_type"] == "DISTRIBUTION" and deadline["metric_descriptor"]["unit"] == "min"
    )
    bounds = deadline["bucket_options"]["explicit_buckets"]["bounds"]
    assert 0 in bounds and bounds == sorted(bounds)


def test_the_shipped_dashboard_is_a_mosaic_of_tiles_that_neither_overlap_nor_overflow():
    dashboard = to_proto(dashboard_body(SHIPPED))
    layout = dashboard.mosaic_layout
    assert layout.columns == 12 and len(layout.tiles) == len(SHIPPED.tiles)
    cells: set[tuple[int, int]] = set()
    for tile in layout.tiles:
        assert tile.x_pos + tile.width <= layout.columns
        covered = {
            (x, y)
            for x in range(tile.x_pos, tile.x_pos + tile.width)
            for y in range(tile.y_pos, tile.y_pos + tile.height)
        }
        assert not cells & covered, tile.widget.title
        cells |= covered
    chart = next(t.widget.xy_chart for t in layout.tiles if t.widget.id == "decision-outcomes")
    aggregation = chart.data_sets[0].time_series_query.time_series_filter.aggregation
    assert (aggregation.per_series_aligner.name, aggregation.cross_series_reducer.name) == ("ALIGN_SUM", "REDUCE_SUM")
    assert aggregation.alignment_period.total_seconds() == 600 and list(aggregation.group_by_fields) == [
        "metric.label.outcome"
    ]


def test_the_deployed_json_is_the_checked_message_with_enums_by_name():
    text = dashboard_json(SHIPPED, {"managed-by": "pulumi", "team": "data-platform"})
    body = json.loads(text)
    assert body["labels"] == {"managed-by": "pulumi", "team": "data-platform", "pipeline": "nba-phase3-to-phase4"}
    assert '"plotType": "STACKED_BAR"' in text and '"perSeriesAligner": 9' not in text
    assert to_proto(body) == to_proto(dashboard_body(SHIPPED, {"managed-by": "pulumi", "team": "data-platform"}))


def test_a_percentile_keeps_the_distribution_and_reduces_across_series():
    latency = next(
        t for t in to_proto(dashboard_body(SHIPPED)).mosaic_layout.tiles if t.widget.id == "analytics-latency"
    )
    aggregations = [d.time_series_query.time_series_filter.aggregation for d in latency.widget.xy_chart.data_sets]
    assert [(a.per_series_aligner.name, a.cross_series_reducer.name) for a in aggregations] == [
        ("ALIGN_DELTA", "REDUCE_PERCENTILE_50"),
        ("ALIGN_DELTA", "REDUCE_PERCENTILE_99"),
    ]


def test_console_url_takes_the_provider_id_or_the_bare_id():
    expected = "https://console.cloud.google.com/monitoring/dashboards/builder/abc-123?project=p"
    assert console_url("projects/p/dashboards/abc-123", "p") == expected
    assert console_url("abc-123", "p") == expected


# -- the corpus ----------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted((CORPUS / "pass").glob("*.yaml")), ids=lambda p: p.stem)
def test_corpus_cases_that_must_pass(repo, case):
    shutil.copy(case, repo / "dashboards" / case.name)
    report = validate(repo, stacks=[])
    assert report.problems == []
    assert case.stem in [d.name for d in report.dashboards[""].dashboards]


@pytest.mark.parametrize("case", sorted((CORPUS / "fail").glob("*.yaml")), ids=lambda p: p.stem)
def test_corpus_cases_that_must_fail(repo, case):
    shutil.copy(case, repo / "dashboards" / case.name)
    path, message = expectation(case)
    problems = validate(repo, stacks=[]).problems
    assert problems, "the case must be rejected"
    assert all(p.file.endswith(case.name) for p in problems), [str(p) for p in problems]
    matching = [p for p in problems if (p.path or "<document>") == path and message in p.message]
    assert matching, f"expected {path}: {message!r}; got {[str(p) for p in problems]}"
    assert matching[0].line is not None and (matching[0].line > 1 or path == "<document>")


def test_a_widget_naming_an_undeployed_metric_fails_validate_with_file_and_line(repo):
    case = CORPUS / "fail" / "undeclared-custom-metric.yaml"
    shutil.copy(case, repo / "dashboards")
    result = run_in_process("validate", "--repo", str(repo), cwd=repo)
    assert result.returncode == 2
    line = 1 + case.read_text().splitlines().index("            metric: custom.googleapis.com/phase3/late_triggers")
    assert (
        f"dashboards/undeclared-custom-metric.yaml:{line}: spec.rows[0].tiles[0].scorecard.metric: " in result.stderr
    ), result.stderr


@pytest.mark.parametrize(
    "cases, alert_edit, expected",
    [
        (  # schema problems, in every file: the lints wait for them to be fixed
            ("misspelled-widget-field", "misspelled-statistic"),
            ("severity: error", "severity: urgent"),
            ("misspelled-widget-field.yaml:13:", "misspelled-statistic.yaml:16:", "duplicate-rows.yaml:8:"),
        ),
        (  # the lints' findings, in every file
            ("service-not-deployed", "unused-log-metric", "undeclared-custom-metric"),
            ("channels: [phase3-data-quality, phase3-oncall]", "channels: [phase3-pager]"),
            (
                "service-not-deployed.yaml:19:",
                "unused-log-metric.yaml:10:",
                "undeclared-custom-metric.yaml:14:",
                "duplicate-rows.yaml:19:",
            ),
        ),
    ],
    ids=["schema", "lints"],
)
def test_every_problem_of_every_file_is_reported_at_once(repo, cases, alert_edit, expected):
    for case in cases:
        shutil.copy(CORPUS / "fail" / f"{case}.yaml", repo / "dashboards")
    rule = repo / "alerts" / "duplicate-rows.yaml"
    assert alert_edit[0] in rule.read_text()
    rule.write_text(rule.read_text().replace(*alert_edit))
    result = run_in_process("validate", "--repo", str(repo), cwd=repo)
    assert result.returncode == 2
    for fragment in expected:
        assert fragment in result.stderr, result.stderr


def test_every_alert_policy_has_room_for_the_dashboard_links(repo):
    for number in (1, 2):
        text = (
            (CORPUS / "pass" / "extra-scheduled-checks.yaml")
            .read_text()
            .replace("extra-scheduled-checks", f"extra-{number}")
        )
        text = text.replace("phase3_processor_run_rows", f"phase3_processor_run_rows_{number}")
        (repo / "dashboards" / f"extra-{number}.yaml").write_text(text)
    [problem] = validate(repo, stacks=[]).problems
    assert problem.file.endswith("dashboards/phase3-handoff.yaml")  # the third, in file order
    assert "an alert policy keeps at most 3 links (its runbook and 2 dashboards)" in problem.message


# -- stack overrides ------------------------------------------------------------------


HEADER = "# yaml-language-server: $schema=../schema/stack-overrides.schema.json\napiVersion: phase3ops/v1\nkind: DashboardOverrides\nstack: dev\ndashboards:\n"


def write_dev_overrides(repo: Path, body: str) -> Path:
    """dashboards/stacks/dev.yaml with `body` under `dashboards:` (it starts at line 6)."""
    overrides = repo / "dashboards" / "stacks" / "dev.yaml"
    overrides.write_text(HEADER + body)
    return overrides


def test_dev_overrides_apply_only_to_dev():
    base = load_dashboard_specs(REPO_ROOT / "dashboards").dashboard("phase3-handoff")
    dev = load_dashboard_specs(REPO_ROOT / "dashboards", "dev").dashboard("phase3-handoff")
    windows = lambda d: {t.id: t.body["series"][0]["window"] for t in d.tiles if t.kind == "xyChart"}  # noqa: E731
    assert windows(base)["decision-outcomes"] == "10m" and windows(dev)["decision-outcomes"] == "1m"
    assert windows(dev)["trigger-vs-deadline"] == windows(base)["trigger-vs-deadline"]  # the rest is kept
    assert dev.display_name.endswith("(dev)") and not base.display_name.endswith("(dev)")


def test_an_override_that_breaks_a_widget_is_reported_in_the_overrides_file(repo):
    overrides = write_dev_overrides(
        repo,
        '  phase3-handoff:\n    tiles:\n      dead-letters:\n        xyChart:\n          series:\n            "0":\n'
        '              filter: resource.labels.subscription_id="nba-phase3-trigger-dlq"\n',
    )
    problems = validate(repo, stacks=["dev"]).problems
    assert [(p.file.endswith("dashboards/stacks/dev.yaml"), p.line) for p in problems] == [(True, 12)], [
        str(p) for p in problems
    ]
    assert 'subscription_id="nba-phase3-trigger-dlq"' in overrides.read_text().splitlines()[11]
    assert "names nothing the infra deploys" in problems[0].message and problems[0].message.endswith("[stack dev]")


def test_an_override_that_breaks_the_schema_is_reported_at_its_key(repo):
    write_dev_overrides(
        repo, "  phase3-handoff:\n    tiles:\n      duplicate-rows:\n        scorecard:\n          statistic: average\n"
    )
    with pytest.raises(SpecError) as raised:
        load_dashboard_specs(repo / "dashboards", "dev")
    [problem] = raised.value.problems
    assert (problem.file.endswith("dashboards/stacks/dev.yaml"), problem.line) == (True, 10)
    assert problem.path == "dashboards.phase3-handoff.tiles.duplicate-rows.scorecard.statistic"
    assert (
        "overrides spec.rows[5].tiles[0].scorecard.statistic of dashboard phase3-handoff: 'average' is not one of"
        in problem.message
    )


def test_overrides_for_a_tile_or_dashboard_that_does_not_exist_are_errors(repo):
    write_dev_overrides(
        repo, "  phase3-handoff:\n    tiles:\n      no-such-tile:\n        title: x\n  ghost:\n    displayName: x\n"
    )
    problems = {(p.line, p.path): p.message for p in validate(repo, stacks=["dev"]).problems}
    assert (
        "overrides tile 'no-such-tile', which dashboard phase3-handoff does not have"
        in problems[(8, "dashboards.phase3-handoff.tiles.no-such-tile")]
    )
    assert "overrides 'ghost', which no dashboard file defines" in problems[(10, "dashboards.ghost")]


# -- the filters the lints read --------------------------------------------------------


@pytest.mark.parametrize(
    "text, language, name, admitted",
    [
        ('resource.labels.service_name="a"', MONITORING, "a", True),
        ('resource.labels.service_name=one_of("a", "b")', MONITORING, "b", True),
        ('resource.labels.subscription_id=ends_with("-sub")', MONITORING, "x-dead-letter-sub", True),
        ('resource.labels.subscription_id=starts_with("nba-")', MONITORING, "phase3", False),
        ('resource.labels.service_name=("a" OR "b")', LOGGING, "b", True),
        ('resource.labels.job_name:"health"', LOGGING, "phase3-health-check", True),
    ],
)
def test_label_restrictions_say_which_names_they_admit(text, language, name, admitted):
    [restriction] = label_restrictions(text, language)
    assert restriction.admits(name) is admitted


def test_a_negated_restriction_names_nothing():
    assert (
        label_restrictions('NOT resource.labels.service_name="a" AND resource.labels.service_name!="b"', MONITORING)
        == []
    )


# -- the plan ----------------------------------------------------------------------------


def test_the_plan_deploys_the_checked_dashboard_and_its_log_metrics(dev):
    spec = load_dashboard_specs(REPO_ROOT / "dashboards", "dev").dashboard("phase3-handoff")
    [dashboard] = [d for d in dev.of_type(DASHBOARD) if d.name == "phase3-handoff"]
    labels = {"managed-by": "pulumi", "team": "data-platform", "stack": "dev", "component": "monitoring"}
    assert dashboard.inputs["dashboardJson"] == dashboard_json(spec, labels)
    assert dashboard.inputs["project"] == "nba-props-dev"
    metrics = {m.inputs["name"]: m for m in dev.of_type("gcp:logging/metric:Metric")}
    for declared in spec.log_metrics:
        assert metrics[declared["name"]].urn in dashboard.dependencies
    assert (
        metrics["phase4_trigger_minutes_before_deadline"].inputs["bucketOptions"]["explicitBuckets"]["bounds"][4] == 0
    )
    assert dev.outputs["dashboards"]["phase3-handoff"] == console_url(dashboard.outputs["id"], "nba-props-dev")


def test_every_alert_policy_links_the_dashboard(dev):
    [dashboard] = [d for d in dev.of_type(DASHBOARD) if d.name == "phase3-handoff"]
    url = dev.outputs["dashboards"]["phase3-handoff"]
    policies = dev.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    slos = load_slo_specs(REPO_ROOT / "slos", "dev").slos
    # The rules' policies and the SLOs' burn-rate policies alike.
    assert len(policies) == len(load_alert_specs(REPO_ROOT / "alerts", "dev").rules) + sum(
        len(slo.alert_policy_names) for slo in slos
    )
    handoff = {"displayName": "Dashboard: Phase 3 -> Phase 4 hand-off (dev)", "url": url}
    # A burn-rate policy opens on the SLO dashboard first.
    slo_board = {"displayName": "Dashboard: Phase 3 -> Phase 4 SLOs", "url": dev.outputs["dashboards"]["phase3-slos"]}
    for policy in policies:
        links = policy.inputs["documentation"]["links"]
        assert links[0]["displayName"] == "Runbook"
        slo = "slo" in policy.inputs["userLabels"]
        assert links[1:] == ([slo_board, handoff] if slo else [handoff]), policy.name
        assert dashboard.urn in policy.dependencies


def test_the_plan_names_the_pubsub_resources_the_lint_knows(dev):
    spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
    assert {
        s.inputs["name"] for s in dev.of_type("gcp:pubsub/subscription:Subscription")
    } == spec.deployed_subscriptions
    assert {t.inputs["name"] for t in dev.of_type("gcp:pubsub/topic:Topic")} == spec.deployed_topics


def test_the_text_plan_shows_the_dashboard(dev):
    from phase3ops.plan.render import as_text

    text = as_text(dev, [])
    assert "├─ phase3:infra:Dashboards  dashboards" in text
    assert (
        f"gcp:monitoring/dashboard:Dashboard  phase3-handoff   displayName=Phase 3 -> Phase 4 hand-off (dev)  tiles={len(SHIPPED.tiles)}"
        in text
    )
    assert "phase3-handoff (Dashboard) -> phase3_orchestrator_decisions (Metric)" in text
    assert "orchestrator-errors (AlertPolicy) -> phase3-handoff (Dashboard)" in text
