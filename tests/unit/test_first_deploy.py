"""What the first `pulumi up` on a fresh project, and the weekly drift preview, need: held against the plan.

Each test guards a defect found by holding the planned resources against
Google's API definitions and the providers' known behaviour (the mocks
accept anything, so these are checked explicitly).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from typing import TYPE_CHECKING, cast

import pytest
from ruamel.yaml import YAML

from phase3ops.monitoring.custom_metrics import CUSTOM_METRICS
from phase3ops.plan.plan import plan_stack
from phase3ops.spec.pipeline import PUSH_ACK_DEADLINE_SECONDS, load_pipeline_spec
from tests.support.repo_copy import REPO_ROOT
from tests.support.shipped_plans import shipped_plan

if TYPE_CHECKING:
    from phase3ops.warehouse.port import Warehouse

POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
DESCRIPTOR = "gcp:monitoring/metricDescriptor:MetricDescriptor"
LOG_METRIC = "gcp:logging/metric:Metric"
SLEEP = "time:index/sleep:Sleep"
SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")


@pytest.fixture(scope="module")
def dev():
    return shipped_plan("dev")


def one(result, type_token, name):
    [resource] = [r for r in result.of_type(type_token) if r.name == name]
    return resource


def condition_filters(policy) -> list[str]:
    """Every metric filter of a policy's conditions: a threshold's (and its ratio's denominator), an absence's."""
    return [
        body[field]
        for condition in policy.inputs["conditions"]
        for key, body in condition.items()
        if key.startswith("condition")
        for field in ("filter", "denominatorFilter")
        if body.get(field)
    ]


# 1. A policy on a custom metric fails with 404 until the metric exists.


def test_a_ratio_over_a_custom_metric_waits_for_its_descriptor_too(tmp_path):
    from tests.support.repo_copy import copy_specs

    repo = copy_specs(tmp_path)
    rule = repo / "alerts/duplicate-rows.yaml"
    text = rule.read_text()
    ratio = """    - ratio:
        numerator:
          metric: custom.googleapis.com/phase3/duplicate_rows
          resourceType: global
        denominator:
          metric: custom.googleapis.com/phase3/untriggered_game_dates
          filter: resource.type="global"
        comparison: greater_than
        value: 0.5
        window: 1h
"""
    start = text.index("  conditions:\n") + len("  conditions:\n")
    end = text.index("  notify:")
    rule.write_text(text[:start] + ratio + text[end:])
    plan = plan_stack(repo, "dev").result
    descriptors = {d.inputs["type"]: d for d in plan.of_type(DESCRIPTOR)}
    (policy,) = [p for p in plan.of_type(POLICY) if p.inputs["userLabels"].get("rule") == "duplicate-rows"]
    for metric in ("duplicate_rows", "untriggered_game_dates"):
        assert descriptors[f"custom.googleapis.com/phase3/{metric}"].urn in policy.dependencies, metric


def test_every_policy_on_a_custom_metric_waits_for_its_declared_descriptor(dev):
    descriptors = {d.inputs["type"]: d for d in dev.of_type(DESCRIPTOR)}
    assert set(descriptors) == {m.type for m in CUSTOM_METRICS.values()}
    for metric in CUSTOM_METRICS.values():  # what the health check writes, declared as it writes it
        inputs = descriptors[metric.type].inputs
        assert (inputs["metricKind"], inputs["valueType"], inputs["unit"]) == ("GAUGE", metric.value_type, "1")
    watched = []
    for policy in dev.of_type(POLICY):
        for metric_type in {
            t
            for f in condition_filters(policy)
            for t in re.findall(r'metric\.type="(custom\.googleapis\.com/[^"]+)"', f)
        }:
            assert descriptors[metric_type].urn in policy.dependencies, (policy.name, metric_type)
            watched.append(policy.name)
    assert {"completion-accuracy-low", "duplicate-rows", "pending-trigger-claim", "phase4-trigger-absent"} <= set(
        watched
    )


# 2. A policy on a new log-based metric can 404 for minutes even with depends_on.


def test_every_policy_on_a_log_metric_waits_until_the_metric_is_queryable(dev):
    metrics = {m.inputs["name"]: m for m in dev.of_type(LOG_METRIC)}
    waits = {w.name: w for w in dev.of_type(SLEEP)}
    policies_on_log_metrics = 0
    for policy in dev.of_type(POLICY):
        for name in {
            n
            for f in condition_filters(policy)
            for n in re.findall(r'metric\.type="logging\.googleapis\.com/user/([^"]+)"', f)
        }:
            wait = waits[f"{name}-queryable"]
            assert wait.urn in policy.dependencies
            assert metrics[name].urn in wait.dependencies
            assert wait.inputs["createDuration"] == "600s"  # the API's own "up to 10 minutes"
            assert metrics[name].urn in wait.property_dependencies["triggers"]  # a replaced metric waits again
            policies_on_log_metrics += 1
    assert policies_on_log_metrics >= 1


# 3. The weekly drift preview stopped at "missing configuration value" for the secrets.


def test_the_drift_workflow_gives_the_preview_every_declared_secret():
    declared = YAML(typ="safe").load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    secrets = sorted(key for key, value in declared.items() if isinstance(value, dict) and value.get("secret"))
    assert secrets, "Pulumi.yaml declares no secret: nothing below would be checked"
    workflow = YAML(typ="safe").load((REPO_ROOT / ".github/workflows/drift.yml").read_text())
    steps = workflow["jobs"]["drift"]["steps"]
    [preview] = [i for i, step in enumerate(steps) if "pulumi preview" in step.get("run", "")]
    before = steps[:preview]
    setting = [step for step in before if "pulumi config set --secret" in step.get("run", "")]
    assert setting, "no step sets the stack's secrets before the preview"
    script = "\n".join(step["run"] for step in setting)
    env = {k: v for step in setting for k, v in (step.get("env") or {}).items()}
    for key in secrets:
        [line] = [
            line
            for line in script.splitlines()
            if f"pulumi config set --secret {key} " in line or line.rstrip().endswith(f"--secret {key}")
        ]
        found = re.search(r'"\$([A-Z_]+)"', line)
        assert found, f"the secret {key} is not set from a variable: {line}"
        variable = found.group(1)
        assert env[variable].startswith("${{ secrets"), (key, env.get(variable))  # from the repository's secrets
        assert '--stack "${{ matrix.stack }}"' in line


# 4. A push request outlived the push subscription's ack deadline.


def test_no_push_request_can_outlive_its_ack_deadline(dev):
    push = one(dev, "gcp:pubsub/subscription:Subscription", "nba-phase3-analytics-processors-push")
    service = one(dev, "gcp:cloudrunv2/service:Service", "nba-phase3-analytics-processors")
    timeout = int(service.inputs["template"]["timeout"].removesuffix("s"))
    assert push.inputs["ackDeadlineSeconds"] == PUSH_ACK_DEADLINE_SECONDS == 600  # the API's maximum
    assert timeout + 30 <= push.inputs["ackDeadlineSeconds"]
    assert SPEC.analytics.lock.max_wait_seconds < timeout  # the lock wait alone fits in a request


# 5. The daily health check failed in dev: it ignored the stack's overrides.


def test_the_check_jobs_know_their_stack(dev):
    stacks = {}
    for job in dev.of_type("gcp:cloudrunv2/job:Job"):
        env = {e["name"]: e["value"] for e in job.inputs["template"]["template"]["containers"][0]["envs"]}
        stacks[job.name] = env["PHASE3OPS_STACK"]
    assert stacks == dict.fromkeys(["phase3-health-check", "phase3-reconcile", "phase3-hold-recheck"], "dev")


def test_the_deployment_state_check_expects_what_the_stack_deployed(dev):
    from phase3ops.checks.context import CheckContext
    from phase3ops.checks.deployment_state import alert_policy_findings, expected_alert_states
    from phase3ops.cloud import SettingError

    deployed = {
        p.inputs["userLabels"]["rule"]: p.inputs["enabled"]
        for p in dev.of_type(POLICY)
        if "rule" in p.inputs["userLabels"]
    }
    assert deployed["phase4-trigger-absent"] is False  # dev's override

    def context(stack):
        return CheckContext(
            SPEC,
            dt.date(2026, 11, 28),
            dt.date(2026, 11, 28),
            dt.datetime.now(dt.UTC),
            {},
            cast("Warehouse", None),  # the alert states never read the warehouse
            target="cloud",
            alerts_dir=REPO_ROOT / "alerts",
            stack=stack,
        )

    assert alert_policy_findings(expected_alert_states(context("dev")), deployed) == []
    enabled_everywhere = {**deployed, "phase4-trigger-absent": True}
    assert alert_policy_findings(expected_alert_states(context("dev")), enabled_everywhere) == [
        "alert policy phase4-trigger-absent is enabled in Cloud Monitoring; the stack deploys it disabled"
    ]
    with pytest.raises(SettingError, match="PHASE3OPS_STACK"):
        expected_alert_states(context(None))


# 6. IAM broader than needed.


def test_bigquery_access_is_granted_per_dataset_never_project_wide(dev):
    project_roles = {(r.inputs["member"], r.inputs["role"]) for r in dev.of_type("gcp:projects/iAMMember:IAMMember")}
    assert not [role for _, role in project_roles if role.startswith("roles/bigquery.data")]
    grants = {
        (r.inputs["datasetId"], r.inputs["role"], r.inputs["member"].split(":")[1].split("@")[0])
        for r in dev.of_type("gcp:bigquery/datasetIamMember:DatasetIamMember")
    }
    assert grants == {
        ("nba_analytics", "roles/bigquery.dataEditor", "phase3-analytics"),
        ("nba_analytics", "roles/bigquery.dataViewer", "phase3-health-check"),
        ("nba_analytics", "roles/bigquery.dataViewer", "phase3-reconcile"),
        ("nba_analytics", "roles/bigquery.dataViewer", "phase3-orchestrator"),  # the data gates read the tables ...
        ("nba_raw", "roles/bigquery.dataViewer", "phase3-analytics"),
        ("nba_raw", "roles/bigquery.dataViewer", "phase3-health-check"),
        ("nba_raw", "roles/bigquery.dataViewer", "phase3-orchestrator"),  # ... and the schedule
        (
            "nba_raw",
            "roles/bigquery.dataViewer",
            "phase3-reconcile",
        ),  # the schedule, for reconcile and the hold recheck
    }
    [dataset] = dev.of_type("gcp:bigquery/dataset:Dataset")
    assert (
        dataset.inputs["datasetId"] == "nba_analytics" and dataset.protect
    )  # created here; Phase 2's is only looked up
    assert "gcp:bigquery/getDataset:getDataset" in dev.invokes


def test_the_trigger_identity_only_invokes_and_the_checks_have_identities_of_their_own(dev):
    roles: dict[str, set[str]] = {}
    for grant in dev.of_type("gcp:projects/iAMMember:IAMMember"):
        roles.setdefault(grant.inputs["member"].split(":")[1].split("@")[0], set()).add(grant.inputs["role"])
    assert not [who for who, granted in roles.items() if "roles/eventarc.eventReceiver" in granted]
    assert "phase3-orchestrator-trigger" not in roles
    assert (
        "roles/datastore.viewer" in roles["phase3-health-check"]
        and "roles/datastore.user" not in roles["phase3-health-check"]
    )
    assert (
        "roles/datastore.user" in roles["phase3-reconcile"]
        and "roles/monitoring.metricWriter" not in roles["phase3-reconcile"]
    )
    jobs = {
        j.name: j.inputs["template"]["template"]["serviceAccount"].split("@")[0]
        for j in dev.of_type("gcp:cloudrunv2/job:Job")
    }
    assert jobs == {
        "phase3-health-check": "phase3-health-check",
        "phase3-reconcile": "phase3-reconcile",
        "phase3-hold-recheck": "phase3-reconcile",
    }
    publishers = {
        (r.inputs["topic"], r.inputs["member"].split(":")[1].split("@")[0])
        for r in dev.of_type("gcp:pubsub/topicIAMMember:TopicIAMMember")
        if r.inputs["role"] == "roles/pubsub.publisher"
    }
    assert ("nba-phase4-trigger", "phase3-reconcile") in publishers
    assert not [topic for topic, who in publishers if who == "phase3-health-check"]


# Also: probes, APIs, preconditions.


def test_the_service_answers_probes_on_healthz(dev):
    container = one(dev, "gcp:cloudrunv2/service:Service", "nba-phase3-analytics-processors").inputs["template"][
        "containers"
    ][0]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": container["ports"]["containerPort"]}
        assert container[probe]["timeoutSeconds"] < container[probe]["periodSeconds"]


def test_every_resource_waits_for_the_apis_it_needs(dev):
    apis = {r.urn for r in dev.of_type("gcp:projects/service:Service")}
    assert {r.inputs["service"] for r in dev.of_type("gcp:projects/service:Service")} >= {
        "pubsub.googleapis.com",
        "cloudfunctions.googleapis.com",
        "run.googleapis.com",
        "eventarc.googleapis.com",
        "firestore.googleapis.com",
        "bigquery.googleapis.com",
        "cloudscheduler.googleapis.com",
        "monitoring.googleapis.com",
    }
    waiting = [
        resource
        for resource in dev.resources
        if resource.custom and resource.urn not in apis and not resource.type.startswith("pulumi:providers:")
    ]
    assert len(waiting) > 50  # the whole plan, not a filter that lets everything through
    for resource in waiting:
        assert apis <= set(resource.dependencies), f"{resource.name} ({resource.type}) does not wait for the APIs"


def test_the_plan_lists_the_preconditions_it_cannot_create():
    result = subprocess.run(
        [sys.executable, "-m", "phase3ops.cli", "plan", "--stack", "prod", "--repo", str(REPO_ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("Preconditions this program cannot create (a first deploy, in this order):", 1)[1]
    for expected in (
        "serviceusage.googleapis.com",
        "gcloud firestore databases create --location=us-west2 --type=firestore-native --project nba-props-prod",
        "--format='value(type)' 2>/dev/null)\" = FIRESTORE_NATIVE",  # a Datastore-mode database does not pass
        "bq show --dataset nba-props-prod:nba_raw",
        "phase3ops plan --stack prod --adopt | sh",
        "pulumi config set --secret slackOncallToken",
        "pulumi plugin install resource time",
    ):
        assert expected in section, expected


# 12. Recovery gave up on receipts that Eventarc was still retrying, and sent their messages again.


def test_the_receipt_grace_outlasts_the_receipts_functions_retries(tmp_path):
    from phase3ops.plan.plan import PlanError
    from phase3ops.spec.pipeline import EVENTARC_MAX_RETRY_BACKOFF_SECONDS
    from tests.support.repo_copy import copy_specs

    timeout = 120  # functionTimeoutSeconds, the default both stacks use
    assert SPEC.orchestrator.receipt_grace_seconds >= timeout + EVENTARC_MAX_RETRY_BACKOFF_SECONDS
    repo = copy_specs(tmp_path / "repo")
    text = (repo / "pipeline.yaml").read_text()
    (repo / "pipeline.yaml").write_text(text.replace("receipt_grace_seconds: 900", "receipt_grace_seconds: 700"))
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "receipt_grace_seconds:" in row)
    with pytest.raises(
        PlanError,
        match=rf"pipeline.yaml:{line}: spec.orchestrator.receipt_grace_seconds: 700 s is shorter than "
        r"the deployed receipts function's retry horizon: .* = 720 s",
    ):
        plan_stack(repo, "dev")


@pytest.mark.parametrize(("database_type", "ok"), [("FIRESTORE_NATIVE", True), ("DATASTORE_MODE", False)])
def test_the_firestore_precondition_fails_on_a_datastore_mode_database(tmp_path, database_type, ok):
    """Datastore mode cannot hold the completions and claims: describe succeeds there, so its
    success alone proved nothing; the type is checked, and the create (refused: it exists) stops."""
    from phase3ops.plan.plan import plan_stack

    [firestore] = [p for p in plan_stack(REPO_ROOT, "dev").preconditions if "Firestore" in p.what]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gcloud").write_text(
        f'#!/bin/sh\ncase "$*" in *describe*) echo {database_type};; *create*) echo "already exists" >&2; exit 1;; esac\n'
    )
    (bin_dir / "gcloud").chmod(0o755)
    run = subprocess.run(["sh", "-c", firestore.command], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, check=False)
    assert (run.returncode == 0) is ok
