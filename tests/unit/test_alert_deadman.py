"""The monitor cannot go dark unnoticed: dead man's switches, job failures, the alerting heartbeat, Phase 4's acceptance.

Each rule is held offline against what its signal really looks like: the
TimeSeries the health check sends (through `write_metrics`), the metric
types, resources and labels Google lists for Cloud Run jobs and Pub/Sub
subscriptions (as BUILT_IN_METRICS has them), and the log entries Cloud
Scheduler and Cloud Monitoring write. The policies evaluated are the ones
the dev stack's plan hands to Pulumi.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from google.cloud import monitoring_v3

from phase3ops.alerts.policies import policy_body, to_proto
from phase3ops.alerts.schedules import RUN_ALLOWANCE_SECONDS, ScheduleError, longest_gap_seconds
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.checks.context import CheckContext
from phase3ops.checks.health import publish_metrics
from phase3ops.checks.metrics import write_metrics
from phase3ops.checks.results import CheckResult, Status
from phase3ops.monitoring.custom_metrics import CUSTOM_METRICS, custom_metric
from phase3ops.monitoring.descriptors import BUILT_IN_METRICS
from phase3ops.monitoring.time_series import Series, absence_met, from_api, threshold_violations
from phase3ops.spec.documents import SpecError, SpecProblem
from phase3ops.spec.pipeline import load_pipeline_spec
from phase3ops.validate import validate
from tests.support.log_entries import matches as log_matches
from tests.support.repo_copy import REPO_ROOT, copy_specs
from tests.support.shipped_plans import shipped_plan

PIPELINE = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
NEW_YORK = ZoneInfo(PIPELINE.timezone)
HEALTH_METRIC_PREFIX = "custom.googleapis.com/phase3/"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"


def seconds(duration: object) -> float:
    """A Duration field's length: proto-plus hands these fields over as timedelta, whatever their annotation says."""
    return cast(dt.timedelta, duration).total_seconds()


def line_index(problem: SpecProblem) -> int:
    """Where in its file's lines the problem is; every problem these tests look at has a line."""
    assert problem.line is not None, problem
    return problem.line - 1


@pytest.fixture(scope="module")
def dev_plan():
    return shipped_plan("dev")


def planned_policy(plan, rule: str) -> monitoring_v3.AlertPolicy:
    """The AlertPolicy the plan hands to Pulumi for a rule, as the API's message."""
    [resource] = [r for r in plan.resources if r.type == POLICY and r.name == rule]
    keys = ("displayName", "conditions", "combiner", "alertStrategy", "notificationChannels", "enabled")
    return monitoring_v3.AlertPolicy.from_json(
        json.dumps({k: resource.inputs[k] for k in keys if k in resource.inputs})
    )


def shipped_policy(rule: str, specs=None) -> monitoring_v3.AlertPolicy:
    specs = specs or load_alert_specs(REPO_ROOT / "alerts")
    return to_proto(policy_body(specs.rule(rule), "https://runbooks.example/", ["projects/p/notificationChannels/1"]))


# -- the health check's metrics, as the job sends them --------------------------------------------


class _RecordingClient:
    def __init__(self, sent: list):
        self.sent = sent

    def create_time_series(self, name, time_series):
        self.sent.extend(time_series)


def health_run(monkeypatch, when: dt.datetime, failed_checks: tuple[str, ...] = ()) -> list[Series]:
    """The points one cloud run of the health check writes: every check's metrics through
    `publish_metrics` and `write_metrics` (a check that could not run writes none)."""
    by_check = {
        "completion_tracking": {"completion_accuracy": 1.0, "pending_trigger_claims": 0.0},
        "game_day_triggers": {"untriggered_game_dates": 0.0},
        "data_gates": {"held_game_dates": 0.0},
        "duplicates": {"duplicate_rows": 0.0},
        "expected_work": {"missing_expected_work": 0.0},
    }
    by_check = {check: {m: v for m, v in values.items() if m in CUSTOM_METRICS} for check, values in by_check.items()}
    assert {m for values in by_check.values() for m in values} == set(CUSTOM_METRICS), (
        "a health metric this test does not write"
    )
    results = [
        CheckResult(check, check, Status.ERROR if check in failed_checks else Status.OK, "", metrics=values)
        for check, values in by_check.items()
    ]
    sent: list = []
    monkeypatch.setattr(monitoring_v3, "MetricServiceClient", lambda: _RecordingClient(sent))
    # publish_metrics reads no more of the context than these.
    context = cast(CheckContext, SimpleNamespace(target="cloud", project="nba-props-dev", now=when))
    publish_metrics(context, results, writer=write_metrics)
    return [from_api(series) for series in sent]


def daily_runs(first: dt.date, days: int, minutes_taken) -> list[dt.datetime]:
    """When the health check's points arrive: its schedule in New York time, plus the run's duration."""
    (health,) = [c for c in PIPELINE.scheduled_checks if c.args[0] == "health"]
    minute_field, hour_field = health.schedule.split()[:2]
    runs = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        for hour in sorted(int(h) for h in hour_field.split(",")):
            for minute in sorted(int(m) for m in minute_field.split(",")):
                start = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)
                runs.append(start + dt.timedelta(minutes=minutes_taken(day)))
    return runs


def absence_conditions(policy) -> dict[str, Any]:
    found = {}
    for condition in policy.conditions:
        if condition._pb.WhichOneof("condition") == "condition_absent":
            named = re.search(r'metric\.type="([^"]+)"', condition.condition_absent.filter)
            assert named, condition.condition_absent.filter
            metric = named.group(1)
            found[metric] = condition.condition_absent
    return found


def guarded_thresholds(specs) -> set[str]:
    """The health metrics the enabled threshold rules watch: derived from the rules themselves."""
    return {
        c["threshold"]["metric"]
        for rule in specs.rules
        if rule.enabled
        for c in rule.conditions
        if "threshold" in c and custom_metric(c["threshold"]["metric"]) is not None
    }


# The US clocks go back on 2026-11-01: 25 hours between two 10:15 runs. The run before is quick,
# the run that day takes its whole timeout and retry: the longest silence a healthy job leaves.
FALL_BACK = dt.date(2026, 11, 1)


def slow_on_fall_back(day: dt.date) -> int:
    return RUN_ALLOWANCE_SECONDS // 60 - 1 if day == FALL_BACK else 1


def test_a_healthy_daily_health_check_never_trips_the_dead_mans_switch(monkeypatch, dev_plan):
    policy = planned_policy(dev_plan, "health-check-silent")
    conditions = absence_conditions(policy)
    created = dt.datetime(2026, 10, 20, 9, 0, tzinfo=NEW_YORK)
    runs = daily_runs(dt.date(2026, 10, 20), 30, slow_on_fall_back)
    series = [s for when in runs for s in health_run(monkeypatch, when)]
    # The longest silence is just before a run's points arrive: the previous day's must still count.
    for when in runs[1:]:
        for probe in (when - dt.timedelta(minutes=1), when - dt.timedelta(hours=2)):
            earlier = [s for s in series if s.points[0][0] <= probe]
            fired = [m for m, condition in conditions.items() if absence_met(condition, earlier, probe, created)]
            assert fired == [], f"{fired} reported silent at {probe:%Y-%m-%d %H:%M %Z} though the job ran every day"


def test_the_health_job_dying_fires_an_alert_rule(monkeypatch, dev_plan):
    policy = planned_policy(dev_plan, "health-check-silent")
    assert policy.enabled and policy.combiner.name == "OR"
    conditions = absence_conditions(policy)
    created = dt.datetime(2026, 10, 20, 9, 0, tzinfo=NEW_YORK)
    runs = daily_runs(dt.date(2026, 10, 20), 5, lambda day: 20)
    series = [s for when in runs for s in health_run(monkeypatch, when)]
    # The job stops (fails, is paused, exits 2) after its last run of the fifth day: the next morning's run is missed.
    missed = runs[0] + dt.timedelta(days=5)
    assert not any(absence_met(c, series, missed, created) for c in conditions.values()), (
        "fired at the very run it missed"
    )
    by_afternoon = missed.replace(hour=15, minute=0)
    fired = {m for m, c in conditions.items() if absence_met(c, series, by_afternoon, created)}
    assert fired == set(conditions), f"only {fired} fired by 15:00 the day the run was missed"
    # Every health metric a threshold rule relies on is among them.
    assert guarded_thresholds(load_alert_specs(REPO_ROOT / "alerts", "dev")) <= fired


def test_one_check_that_cannot_run_fires_the_condition_of_its_metrics_only(monkeypatch, dev_plan):
    conditions = absence_conditions(planned_policy(dev_plan, "health-check-silent"))
    created = dt.datetime(2026, 10, 20, 9, 0, tzinfo=NEW_YORK)
    runs = daily_runs(dt.date(2026, 10, 20), 6, lambda day: 5)
    series = [s for when in runs[:3] for s in health_run(monkeypatch, when)]
    series += [s for when in runs[3:] for s in health_run(monkeypatch, when, failed_checks=("completion_tracking",))]
    at = runs[4] + dt.timedelta(hours=5)
    fired = {m for m, c in conditions.items() if absence_met(c, series, at, created)}
    assert fired == {HEALTH_METRIC_PREFIX + "completion_accuracy", HEALTH_METRIC_PREFIX + "pending_trigger_claims"}


def test_a_health_check_that_never_ran_since_the_policy_was_created_is_not_yet_watched(monkeypatch, dev_plan):
    """Cloud Monitoring arms an absence condition only after a point arrives (the runbook says so)."""
    conditions = absence_conditions(planned_policy(dev_plan, "health-check-silent"))
    series = health_run(monkeypatch, dt.datetime(2026, 10, 20, 10, 20, tzinfo=NEW_YORK))
    created = dt.datetime(2026, 10, 21, 9, 0, tzinfo=NEW_YORK)
    assert not any(absence_met(c, series, created + dt.timedelta(days=3), created) for c in conditions.values())


@pytest.mark.parametrize("stack", [None, "dev", "prod"])
def test_every_threshold_on_a_health_metric_has_an_enabled_absence_guard_within_the_apis_limits(stack):
    specs = load_alert_specs(REPO_ROOT / "alerts", stack)
    needed = guarded_thresholds(specs)
    assert {
        HEALTH_METRIC_PREFIX + m
        for m in ("untriggered_game_dates", "pending_trigger_claims", "completion_accuracy", "duplicate_rows")
    } <= needed
    guards = {}
    for rule in specs.rules:
        if rule.enabled:
            guards.update(absence_conditions(shipped_policy(rule.name, specs)))
    assert needed <= set(guards)
    gap = longest_gap_seconds(
        tuple(c.schedule for c in PIPELINE.scheduled_checks if c.args[0] == "health"), PIPELINE.timezone
    )
    for metric in needed:
        condition = guards[metric]
        assert 'resource.type="global"' in condition.filter  # the API wants the metric and the resource type
        duration = condition.duration.total_seconds()
        (aggregation,) = condition.aggregations
        period = aggregation.alignment_period.total_seconds()
        assert 120 <= duration <= 23.5 * 3600 and duration % 60 == 0  # MetricAbsence.duration: 2m .. 23.5h
        assert 60 <= period <= 25 * 3600  # Aggregation.alignment_period in an alerting policy: at most 25h
        assert duration + period > gap + RUN_ALLOWANCE_SECONDS


def test_the_dead_mans_switch_is_a_valid_api_object_for_the_sdk_and_pulumi():
    """Held against the Cloud SDK's MetricAbsence/Aggregation messages and pulumi-gcp's condition_absent arguments."""
    body = policy_body(load_alert_specs(REPO_ROOT / "alerts").rule("health-check-silent"), "https://runbooks.example/")
    absent = [c["condition_absent"] for c in body["conditions"]]
    assert absent and all(set(c) == {"filter", "duration", "aggregations"} for c in absent)
    import pulumi_gcp

    accepted = set(inspect.signature(pulumi_gcp.monitoring.AlertPolicyConditionConditionAbsentArgs.__init__).parameters)
    aggregation_accepted = set(
        inspect.signature(pulumi_gcp.monitoring.AlertPolicyConditionConditionAbsentAggregationArgs.__init__).parameters
    )
    for condition in absent:
        assert set(condition) <= accepted
        assert set(condition["aggregations"][0]) <= aggregation_accepted
    from tests.support.conformance.sdk import SdkUnavailable, json_fields, messages

    try:
        api = messages("monitoring", "v3")
    except SdkUnavailable as exc:
        pytest.skip(f"no Google Cloud SDK to read MetricAbsence from: {exc}")
    camel = lambda name: re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)  # noqa: E731
    assert {camel(k) for k in absent[0]} <= set(json_fields(api.MetricAbsence))
    assert {camel(k) for k in absent[0]["aggregations"][0]} <= set(json_fields(api.Aggregation))
    assert absent[0]["aggregations"][0]["per_series_aligner"] in {
        v.name for v in api.Aggregation.PerSeriesAlignerValueValuesEnum
    }


# -- the lints that keep it so ----------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path) -> Path:
    return copy_specs(tmp_path)


UNGUARDED = """# yaml-language-server: $schema=schema/alert-rule.schema.json
apiVersion: phase3ops/v1
kind: AlertRule
metadata:
  name: held-dates
  labels: {component: checks, severity: warning}
spec:
  conditions:
    - threshold:
        metric: custom.googleapis.com/phase3/held_game_dates
        resourceType: global
        statistic: max
        comparison: greater_than
        value: 0
        window: 30m
  documentation: {summary: Held dates, runbook: docs/runbook.md#phase4-trigger-held}
"""


def test_a_new_threshold_on_a_health_metric_without_an_absence_guard_fails_validate(repo):
    (repo / "alerts" / "held-dates.yaml").write_text(UNGUARDED)
    problems = validate(repo, stacks=[]).problems
    [problem] = problems
    assert problem.file.endswith("held-dates.yaml") and problem.line == 10
    assert problem.path == "spec.conditions[0].threshold.metric"
    assert (
        "custom.googleapis.com/phase3/held_game_dates is written only by the scheduled health check (phase3-health-check)"
        in problem.message
    )
    assert "no enabled rule watches it for absence" in problem.message
    # Guarding it in the dead man's switch settles it.
    silent = repo / "alerts" / "health-check-silent.yaml"
    silent.write_text(
        silent.read_text().replace(
            "  notify:\n",
            "    - absence:\n        metric: custom.googleapis.com/phase3/held_game_dates\n        resourceType: global\n"
            "        lookback: 25h\n        window: 2h\n  notify:\n",
            1,
        )
    )
    assert validate(repo, stacks=[]).problems == []


def test_disabling_the_dead_mans_switch_in_a_stack_is_refused_for_that_stack(repo):
    overrides = repo / "alerts" / "stacks" / "dev.yaml"
    overrides.write_text(overrides.read_text() + "  health-check-silent:\n    enabled: false\n")
    problems = [str(p) for p in validate(repo, stacks=["dev"]).problems]
    assert problems and all("[stack dev]" in p and "no enabled rule watches it for absence" in p for p in problems), (
        problems
    )
    assert any("completion-accuracy-low.yaml" in p for p in problems)
    assert not any("phase4-trigger-absent.yaml" in p for p in problems)  # disabled in dev itself


def test_an_absence_guard_shorter_than_the_time_between_two_health_checks_is_refused(repo):
    silent = repo / "alerts" / "health-check-silent.yaml"
    silent.write_text(silent.read_text().replace("lookback: 18h", "lookback: 15h", 1))
    problems = validate(repo, stacks=[]).problems
    assert [p.path for p in problems] == ["spec.conditions[0].absence.window"]
    message = problems[0].message
    # 17:45 to 10:45 the next morning, an hour more when the clocks go back.
    assert "fires after 17 hours without data" in message and "phase3-health-check (45 10,13,17 * * *)" in message
    assert "up to 18 hours apart in America/New_York" in message and "longer than 19 hours" in message


def test_the_guard_follows_the_health_checks_schedule_in_pipeline_yaml(repo):
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(
        pipeline.read_text().replace('schedule: "45 10,13,17 * * *"', 'schedule: "15 10 * * 1"', 1)
    )  # weekly
    problems = validate(repo, stacks=[]).problems
    assert problems and all("up to 169 hours apart" in p.message for p in problems), [
        str(p) for p in problems
    ]  # a week, and the clock change


@pytest.mark.parametrize(
    "schedule, hours",
    [
        ("15 10 * * *", 25),
        ("*/15 * * * *", 1.25),
        ("0 9 * * MON-FRI", 73),
        ("30 9 1,15 * *", 17 * 24),
        ("0 */6 * * *", 7),
    ],
)
def test_the_longest_gap_between_runs_counts_the_clock_change(schedule, hours):
    assert longest_gap_seconds((schedule,), "America/New_York") == hours * 3600


@pytest.mark.parametrize("schedule", ["15 10 * *", "61 10 * * *", "15 10 * * FUNDAY", "*/0 * * * *"])
def test_a_schedule_that_is_not_cron_is_reported(schedule):
    with pytest.raises(ScheduleError):
        longest_gap_seconds((schedule,), "UTC")


# -- every scheduled job: its executions, its scheduler ---------------------------------------------


def test_a_failed_execution_of_any_scheduled_check_fires_naming_the_job(dev_plan):
    policy = planned_policy(dev_plan, "scheduled-check-failed")
    (condition,) = [c.condition_threshold for c in policy.conditions]
    jobs = sorted(r.inputs["name"] for r in dev_plan.resources if r.type == "gcp:cloudrunv2/job:Job")
    assert jobs == sorted(c.name for c in PIPELINE.scheduled_checks)
    facts = BUILT_IN_METRICS["run.googleapis.com/job/completed_execution_count"]
    assert facts.kind == "DELTA" and facts.resource_types == {"cloud_run_job"} and "result" in facts.labels
    at = dt.datetime(2026, 10, 21, 10, 40, tzinfo=NEW_YORK)

    def execution(job: str, result: str) -> Series:
        return Series(
            "run.googleapis.com/job/completed_execution_count",
            "cloud_run_job",
            {"project_id": "nba-props-dev", "job_name": job, "location": "us-west2"},
            {"result": result},
            ((at - dt.timedelta(minutes=2), 1.0),),
        )

    for job in jobs:
        assert threshold_violations(condition, [execution(job, "failed")], at) == {(job,): 1.0}
        assert threshold_violations(condition, [execution(job, "succeeded")], at) == {}
    assert threshold_violations(condition, [execution("someone-elses-job", "failed")], at) == {}
    # A failure is a count that stops: the incident closes within the day, so tomorrow's failure notifies again.
    assert seconds(policy.alert_strategy.auto_close) <= 12 * 3600


def scheduler_attempt(job_id: str, *, failed: bool, started: bool = False) -> dict:
    """A Cloud Scheduler execution log entry (log cloudscheduler.googleapis.com/executions)."""
    payload = {
        "@type": "type.googleapis.com/google.cloud.scheduler.logging."
        + ("AttemptStarted" if started else "AttemptFinished"),
        "jobName": f"projects/nba-props-dev/locations/us-west2/jobs/{job_id}",
        "targetType": "HTTP",
        "url": f"https://us-west2-run.googleapis.com/apis/run.googleapis.com/v1/namespaces/nba-props-dev/jobs/{job_id.removesuffix('-schedule')}:run",
    }
    if failed and not started:
        payload |= {
            "status": "PERMISSION_DENIED",
            "debugInfo": "URL_ERROR-ERROR_AUTHENTICATION. Original HTTP response code number = 403",
        }
    return {
        "logName": "projects/nba-props-dev/logs/cloudscheduler.googleapis.com%2Fexecutions",
        "resource": {
            "type": "cloud_scheduler_job",
            "labels": {"job_id": job_id, "location": "us-west2", "project_id": "nba-props-dev"},
        },
        "severity": "ERROR" if failed and not started else "INFO",
        "httpRequest": {"status": 403 if failed else 200},
        "jsonPayload": payload,
    }


def test_a_failed_scheduler_attempt_of_any_scheduled_check_fires(dev_plan):
    policy = planned_policy(dev_plan, "scheduled-check-not-started")
    (condition,) = [c.condition_matched_log for c in policy.conditions]
    scheduler_jobs = sorted(r.inputs["name"] for r in dev_plan.resources if r.type == "gcp:cloudscheduler/job:Job")
    assert len(scheduler_jobs) == len(PIPELINE.scheduled_checks)
    for job_id in scheduler_jobs:
        assert log_matches(condition.filter, scheduler_attempt(job_id, failed=True))
        assert not log_matches(condition.filter, scheduler_attempt(job_id, failed=False))
        assert not log_matches(condition.filter, scheduler_attempt(job_id, failed=False, started=True))
    assert not log_matches(condition.filter, scheduler_attempt("someone-elses-schedule", failed=True))
    assert dict(condition.label_extractors) == {
        "job_id": "EXTRACT(resource.labels.job_id)",
        "status": "EXTRACT(jsonPayload.status)",
    }
    assert seconds(policy.alert_strategy.notification_rate_limit.period) > 0


def test_a_scheduled_check_added_to_pipeline_yaml_is_covered_without_touching_the_rules(repo):
    pipeline = repo / "pipeline.yaml"
    text = pipeline.read_text()
    anchor = "    - name: phase3-hold-recheck\n"
    pipeline.write_text(
        text.replace(
            anchor,
            '    - name: phase3-weekly-audit\n      args: [health, --days, "7"]\n      schedule: "0 6 * * 1"\n'
            + anchor,
            1,
        )
    )
    specs = load_alert_specs(repo / "alerts")
    failed = shipped_policy("scheduled-check-failed", specs).conditions[0].condition_threshold
    execution = Series(
        "run.googleapis.com/job/completed_execution_count",
        "cloud_run_job",
        {"job_name": "phase3-weekly-audit"},
        {"result": "failed"},
        ((dt.datetime(2026, 10, 26, 6, 5, tzinfo=NEW_YORK), 1.0),),
    )
    assert threshold_violations(failed, [execution], dt.datetime(2026, 10, 26, 6, 6, tzinfo=NEW_YORK))
    not_started = shipped_policy("scheduled-check-not-started", specs).conditions[0].condition_matched_log
    assert log_matches(not_started.filter, scheduler_attempt("phase3-weekly-audit-schedule", failed=True))
    assert validate(repo, stacks=[]).problems == []


# -- the path to Slack -------------------------------------------------------------------------------


def test_the_heartbeat_fires_once_for_every_health_check_run_even_on_a_quiet_day(monkeypatch, dev_plan):
    policy = planned_policy(dev_plan, "alerting-heartbeat")
    (condition,) = [c.condition_threshold for c in policy.conditions]
    channels = {
        r.name: r for r in dev_plan.resources if r.type == "gcp:monitoring/notificationChannel:NotificationChannel"
    }
    assert len(policy.notification_channels) == len(channels) == 2  # both Slack channels prove they deliver
    run = dt.datetime(2026, 7, 15, 10, 20, tzinfo=NEW_YORK)  # the off-season: nothing to report
    series = health_run(monkeypatch, run)
    assert threshold_violations(condition, series, run + dt.timedelta(minutes=1))
    assert not threshold_violations(
        condition, series, run + dt.timedelta(minutes=10)
    )  # the incident stops being met ...
    close = seconds(policy.alert_strategy.auto_close)
    assert 30 * 60 <= close <= 12 * 3600  # ... and closes within the day, so the next run notifies again
    assert not threshold_violations(condition, series, run + dt.timedelta(days=1))  # no run, no heartbeat
    assert "heartbeat" in policy.display_name.lower()


def notification_event(severity: str) -> dict:
    """An entry of Cloud Monitoring's notification-channel log (monitoring.googleapis.com/notification_channel_events)."""
    return {
        "logName": "projects/nba-props-dev/logs/monitoring.googleapis.com%2Fnotification_channel_events",
        "resource": {"type": "stackdriver_notification_channel", "labels": {"project_id": "nba-props-dev"}},
        "severity": severity,
        "jsonPayload": {
            "message": "Notification to Slack channel #phase3-oncall failed with 403 Forbidden: invalid_auth"
        },
    }


def test_a_notification_cloud_monitoring_could_not_deliver_fires_on_both_channels(dev_plan):
    policy = planned_policy(dev_plan, "alert-delivery-failed")
    (condition,) = [c.condition_matched_log for c in policy.conditions]
    assert log_matches(condition.filter, notification_event("ERROR"))
    assert not log_matches(condition.filter, notification_event("INFO"))
    assert not log_matches(
        condition.filter,
        {**notification_event("ERROR"), "logName": "projects/nba-props-dev/logs/run.googleapis.com%2Fstderr"},
    )
    assert len(policy.notification_channels) == 2
    assert seconds(policy.alert_strategy.notification_rate_limit.period) > 0


# -- Phase 4's acceptance, named by pipeline.yaml ----------------------------------------------------


def subscription_series(metric: str, subscription: str, value: float, at: dt.datetime) -> Series:
    return Series(
        metric,
        "pubsub_subscription",
        {"project_id": "nba-props-dev", "subscription_id": subscription},
        {},
        ((at, value),),
    )


def test_phase4_not_taking_its_triggers_fires(dev_plan):
    consumer = PIPELINE.phase4_consumer
    assert consumer is not None
    at = dt.datetime(2026, 10, 21, 10, 30, tzinfo=NEW_YORK)
    backlog = planned_policy(dev_plan, "phase4-consumer-backlog").conditions[0].condition_threshold
    age = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
    assert BUILT_IN_METRICS[age].resource_types == {"pubsub_subscription"}
    limit = consumer.max_unacked_age_minutes * 60  # the metric is in seconds
    assert threshold_violations(backlog, [subscription_series(age, consumer.subscription, limit + 1, at)], at)
    assert not threshold_violations(backlog, [subscription_series(age, consumer.subscription, limit - 1, at)], at)
    assert not threshold_violations(
        backlog, [subscription_series(age, "nba-phase3-analytics-processors-push", limit * 10, at)], at
    )
    dead = planned_policy(dev_plan, "phase4-consumer-dead-letters").conditions[0].condition_threshold
    forwarded = "pubsub.googleapis.com/subscription/dead_letter_message_count"
    assert BUILT_IN_METRICS[forwarded].kind == "DELTA"
    assert threshold_violations(dead, [subscription_series(forwarded, consumer.subscription, 1, at)], at)
    assert not threshold_violations(dead, [subscription_series(forwarded, "nba-phase3-trigger-sub", 3, at)], at)


def test_the_phase4_rules_take_the_subscription_and_the_age_from_pipeline_yaml(repo):
    pipeline = repo / "pipeline.yaml"
    text = pipeline.read_text()
    assert "subscription: nba-phase4-trigger-sub" in text and "max_unacked_age_minutes: 30" in text
    pipeline.write_text(
        text.replace("subscription: nba-phase4-trigger-sub", "subscription: phase4-v2-push").replace(
            "max_unacked_age_minutes: 30", "max_unacked_age_minutes: 45"
        )
    )
    specs = load_alert_specs(repo / "alerts")
    backlog = shipped_policy("phase4-consumer-backlog", specs)
    condition = backlog.conditions[0].condition_threshold
    assert 'resource.labels.subscription_id="phase4-v2-push"' in condition.filter
    assert condition.threshold_value == 45 * 60
    assert backlog.conditions[0].display_name.endswith("max more than 45 minutes over 5 minutes")
    assert "phase4-v2-push" in backlog.display_name
    dead = shipped_policy("phase4-consumer-dead-letters", specs).conditions[0].condition_threshold
    assert 'resource.labels.subscription_id="phase4-v2-push"' in dead.filter
    # The dashboard names the subscription itself: validate points at its two tiles until it is renamed there too.
    problems = validate(repo, stacks=[]).problems
    assert [p.file.rsplit("/", 1)[1] for p in problems] == ["phase3-handoff.yaml"] * 2
    assert all('"nba-phase4-trigger-sub" names nothing' in p.message for p in problems)
    dashboard = repo / "dashboards" / "phase3-handoff.yaml"
    dashboard.write_text(dashboard.read_text().replace("nba-phase4-trigger-sub", "phase4-v2-push"))
    assert validate(repo, stacks=[]).problems == []


def test_no_phase4_consumer_in_pipeline_yaml_is_a_problem_at_the_rules_line(repo):
    pipeline = repo / "pipeline.yaml"
    text = pipeline.read_text()
    start = text.index("  phase4_consumer:\n")
    end = text.index("\n\n", start)
    pipeline.write_text(text[:start] + text[end + 2 :])
    assert load_pipeline_spec(pipeline).phase4_consumer is None  # pipeline.yaml itself stays valid
    problems = validate(repo, stacks=[]).problems
    assert {Path(p.file).name for p in problems} == {
        "phase4-consumer-backlog.yaml",
        "phase4-consumer-dead-letters.yaml",
    }
    lines = (repo / "alerts" / "phase4-consumer-backlog.yaml").read_text().splitlines()
    located = {
        (p.path, lines[line_index(p)].strip().split(":")[0])
        for p in problems
        if p.file.endswith("phase4-consumer-backlog.yaml")
    }
    assert ("spec.conditions[0].threshold.filter", "filter") in located and (
        "spec.conditions[0].threshold.value",
        "value",
    ) in located
    assert all("pipeline.yaml declares no spec.phase4_consumer, which this rule watches" in p.message for p in problems)
    with pytest.raises(SpecError):
        load_alert_specs(repo / "alerts")  # the infra program cannot deploy it either


@pytest.mark.parametrize(
    "reference, fragment",
    [
        (
            "{{pipeline.phase4_consumer.subscripton}}",
            "has no field 'subscripton' in spec.phase4_consumer (fields: subscription, max_unacked_age_minutes); did you mean 'subscription'?",
        ),
        (
            "{{pipeline.scheduled_checks.name}}",
            "spec.scheduled_checks.name is a list of 3 values; join it with |one_of",
        ),
        ("{{pipeline.phase4_consumer}}", "spec.phase4_consumer is a section, not a value"),
        ("{{pipeline.phase4_consumer.subscription|upper}}", "unknown step 'upper'"),
        ("{{phase4_consumer.subscription}}", "a reference names a field of pipeline.yaml"),
        ("{{pipeline.phase4_consumer.subscription", "a '{{' without its '}}'"),
    ],
)
def test_a_reference_pipeline_yaml_cannot_answer_is_reported_at_its_line(repo, reference, fragment):
    rule = repo / "alerts" / "phase4-consumer-dead-letters.yaml"
    text = rule.read_text().replace('"{{pipeline.phase4_consumer.subscription}}"', json.dumps(reference), 1)
    rule.write_text(text)
    problems = validate(repo, stacks=[]).problems
    assert problems and all(p.file.endswith("phase4-consumer-dead-letters.yaml") for p in problems), [
        str(p) for p in problems
    ]
    [problem] = [p for p in problems if fragment in p.message]
    assert problem.path == "spec.conditions[0].threshold.filter"
    assert "filter:" in text.splitlines()[line_index(problem)]


def test_a_duration_threshold_only_on_a_metric_in_seconds(repo):
    rule = repo / "alerts" / "phase4-consumer-dead-letters.yaml"
    rule.write_text(
        rule.read_text().replace("value: 0", 'value: "{{pipeline.phase4_consumer.max_unacked_age_minutes}}m"', 1)
    )
    [problem] = validate(repo, stacks=[]).problems
    assert problem.path == "spec.conditions[0].threshold.value" and "30m is a duration" in problem.message
