"""The infra program under Pulumi's mocks: the graph it would deploy, offline."""

from __future__ import annotations

import ast
import json
import shutil

import jsonschema
import pytest
from ruamel.yaml import YAML

from infra.function_source import collect_function_source
from phase3ops.plan.plan import PlanError, plan_stack
from phase3ops.plan.render import as_json, as_text, lookup
from tests.support.cli_process import run_in_process
from tests.support.repo_copy import REPO_ROOT, copy_specs
from tests.support.shipped_plans import shipped_plan

FUNCTION = "gcp:cloudfunctionsv2/function:Function"
SERVICE = "gcp:cloudrunv2/service:Service"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
METRIC = "gcp:logging/metric:Metric"


@pytest.fixture(scope="module")
def dev():
    return shipped_plan("dev")


def one(result, type_token, name):
    [resource] = [r for r in result.of_type(type_token) if r.name == name]
    return resource


def test_the_orchestrator_function(dev):
    function = one(dev, FUNCTION, "phase3-to-phase4-orchestrator")
    inputs = function.inputs
    assert inputs["eventTrigger"]["retryPolicy"] == "RETRY_POLICY_RETRY"
    assert inputs["eventTrigger"]["eventType"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert inputs["eventTrigger"]["pubsubTopic"] == "projects/nba-props-dev/topics/nba-phase3-analytics-complete"
    assert inputs["serviceConfig"]["maxInstanceCount"] == 5  # Pulumi.dev.yaml
    assert inputs["serviceConfig"]["timeoutSeconds"] == 120
    assert inputs["serviceConfig"]["environmentVariables"]["PHASE3OPS_PIPELINE"] == "pipeline.yaml"
    assert inputs["buildConfig"]["entryPoint"] == "handle_phase3_completion"
    source = collect_function_source(REPO_ROOT)
    assert inputs["buildConfig"]["source"]["storageSource"]["object"] == source.object_name
    assert inputs["labels"]["source-hash"] == source.short_hash
    assert {"component", "managed-by", "team"} <= set(inputs["labels"])
    main = ast.parse((REPO_ROOT / "functions/orchestrator/main.py").read_text())
    exported = {
        alias.asname or alias.name
        for node in ast.walk(main)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert inputs["buildConfig"]["entryPoint"] in exported


def test_the_analytics_service_is_internal_from_a_digest_and_only_the_push_identity_invokes_it(dev):
    service = one(dev, SERVICE, "nba-phase3-analytics-processors")
    assert service.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert "@sha256:" in service.inputs["template"]["containers"][0]["image"]
    invokers = [
        r for r in dev.resources if r.type.endswith("IamMember") and r.inputs.get("role") == "roles/run.invoker"
    ]
    members = {r.inputs["name"]: r.inputs["member"] for r in invokers}
    assert (
        members["nba-phase3-analytics-processors"]
        == "serviceAccount:phase3-analytics-push@nba-props-dev.iam.gserviceaccount.com"
    )
    assert not [r for r in dev.resources if r.inputs.get("member") in ("allUsers", "allAuthenticatedUsers")]


def test_push_subscription_authenticates_and_dead_letters(dev):
    push = one(dev, SUBSCRIPTION, "nba-phase3-analytics-processors-push")
    assert push.inputs["pushConfig"]["oidcToken"]["serviceAccountEmail"].startswith("phase3-analytics-push@")
    assert push.inputs["pushConfig"]["pushEndpoint"].startswith("https://")
    assert (
        push.inputs["deadLetterPolicy"]["deadLetterTopic"]
        == "projects/nba-props-dev/topics/nba-phase3-trigger-dead-letter"
    )
    agent = "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"
    grants = {
        (r.type.rsplit(":", 1)[-1], r.inputs.get("topic") or r.inputs.get("subscription"), r.inputs["role"])
        for r in dev.resources
        if r.inputs.get("member") == agent
    }
    assert grants == {
        ("TopicIAMMember", "nba-phase3-trigger-dead-letter", "roles/pubsub.publisher"),
        ("SubscriptionIAMMember", "nba-phase3-analytics-processors-push", "roles/pubsub.subscriber"),
        ("IAMMember", None, "roles/iam.serviceAccountTokenCreator"),  # signs the push OIDC token (older projects)
    }
    assert one(dev, SUBSCRIPTION, "nba-phase3-trigger-dead-letter-sub")


def test_the_receipts_function_runs_the_same_bundle_on_the_phase4_topic(dev):
    orchestrator = one(dev, FUNCTION, "phase3-to-phase4-orchestrator").inputs
    receipts = one(dev, FUNCTION, "phase4-trigger-receipts").inputs
    assert receipts["eventTrigger"]["pubsubTopic"] == "projects/nba-props-dev/topics/nba-phase4-trigger"
    assert receipts["eventTrigger"]["retryPolicy"] == "RETRY_POLICY_RETRY"
    assert receipts["buildConfig"]["entryPoint"] == "record_phase4_trigger_receipt"
    assert receipts["buildConfig"]["source"] == orchestrator["buildConfig"]["source"]  # one bundle, one contract
    main = ast.parse((REPO_ROOT / "functions/orchestrator/main.py").read_text())
    exported = {
        alias.asname or alias.name
        for node in ast.walk(main)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert receipts["buildConfig"]["entryPoint"] in exported
    invokers = {
        r.inputs["name"]
        for r in dev.resources
        if r.type.endswith("ServiceIamMember") and r.inputs.get("role") == "roles/run.invoker"
    }
    assert {"phase3-to-phase4-orchestrator", "phase4-trigger-receipts"} <= invokers


def test_topics_ttl_and_scheduled_checks(dev):
    topics = {r.inputs["name"] for r in dev.of_type("gcp:pubsub/topic:Topic")}
    assert topics == {
        "nba-phase3-trigger",
        "nba-phase3-analytics-complete",
        "nba-phase4-trigger",
        "nba-phase3-trigger-dead-letter",
    }
    ttl = one(dev, "gcp:firestore/field:Field", "phase3_processor_locks-expires_at-ttl")
    assert (ttl.inputs["collection"], ttl.inputs["field"], ttl.inputs["ttlConfig"]) == (
        "phase3_processor_locks",
        "expires_at",
        {},
    )
    jobs = {
        r.name: r.inputs["template"]["template"]["containers"][0]["args"] for r in dev.of_type("gcp:cloudrunv2/job:Job")
    }
    # A finding exits 0 in a job: it pages through its metric; only a run that could not run fails the execution.
    assert jobs == {
        "phase3-health-check": ["health", "--days", "3", "--findings-exit-zero"],
        "phase3-reconcile": ["reconcile", "--days", "3", "--fix", "--findings-exit-zero"],
        "phase3-hold-recheck": ["holds", "--days", "3", "--recheck", "--findings-exit-zero"],
    }
    schedules = dev.of_type("gcp:cloudscheduler/job:Job")
    assert {s.inputs["timeZone"] for s in schedules} == {"America/New_York"}
    assert all(
        s.inputs["httpTarget"]["uri"].endswith(":run") and "oauthToken" in s.inputs["httpTarget"] for s in schedules
    )


def test_least_privilege(dev):
    roles = [r.inputs["role"] for r in dev.resources if "role" in r.inputs]
    assert roles and not [role for role in roles if role in ("roles/owner", "roles/editor", "roles/viewer")]
    accounts = {r.inputs["accountId"] for r in dev.of_type("gcp:serviceaccount/account:Account")}
    assert len(accounts) == 9  # one per workload


def test_monitoring_one_policy_per_rule_wired_to_its_channels_and_metrics(dev):
    from phase3ops.alerts.specs import load_alert_specs

    specs = load_alert_specs(REPO_ROOT / "alerts", "dev")
    channel_ids = {c.name: dev.outputs["notification_channels"][c.name] for c in specs.channels}
    policies = {p.name: p for p in dev.of_type(POLICY) if "rule" in p.inputs["userLabels"]}
    metrics = {m.inputs["name"]: m for m in dev.of_type(METRIC)}
    assert set(policies) == {r.name for r in specs.rules}
    waits = {w.name: w for w in dev.of_type("time:index/sleep:Sleep")}
    for rule in specs.rules:
        policy = policies[rule.name]
        assert policy.inputs["notificationChannels"] == [channel_ids[name] for name in rule.spec["notify"]["channels"]]
        if rule.log_metric:
            wait = waits[f"{rule.log_metric['name']}-queryable"]
            assert wait.urn in policy.dependencies and metrics[rule.log_metric["name"]].urn in wait.dependencies
    assert not policies["phase4-trigger-absent"].inputs["enabled"]  # dev's override
    assert policies["orchestrator-errors"].inputs["conditions"][0]["conditionThreshold"]["thresholdValue"] == 20


def test_slack_tokens_stay_secret(dev, tmp_path):
    for channel in dev.of_type(CHANNEL):
        assert channel.secret_paths == ["sensitiveLabels.authToken"]
    repo = copy_specs(tmp_path)
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(
        stack.read_text() + "  phase3-orchestration:slackOncallToken:\n    secure: v1:bm90LWEtcmVhbC1jaXBoZXJ0ZXh0\n"
    )
    result = plan_stack(repo, "dev").result
    rendered = as_json(result, []) + as_text(result, [])
    assert "bm90LWEtcmVhbC1jaXBoZXJ0ZXh0" not in rendered
    oncall = one(result, CHANNEL, "phase3-oncall")
    assert oncall.secret_paths == ["sensitiveLabels.authToken"]
    assert (
        lookup(
            json.loads(as_json(result, []))["resources"][
                [r["name"] for r in json.loads(as_json(result, []))["resources"]].index("phase3-oncall")
            ]["inputs"],
            "sensitiveLabels.authToken",
        )
        == "[secret]"
    )


def test_names_are_deterministic_across_runs(dev):
    again = plan_stack(REPO_ROOT, "dev").result
    assert sorted(r.urn for r in again.resources) == sorted(r.urn for r in dev.resources)
    first = {r.urn: r.inputs for r in dev.resources}
    assert all(first[r.urn] == r.inputs for r in again.resources)


def test_adding_a_rule_file_adds_one_policy_and_nothing_else_changes(dev, tmp_path):
    repo = copy_specs(tmp_path)
    shutil.copy(REPO_ROOT / "tests/alerts_corpus/pass/extra-log-match.yaml", repo / "alerts")
    result = plan_stack(repo, "dev").result
    before = {r.urn for r in dev.resources}
    added = [r for r in result.resources if r.urn not in before]
    assert [(r.type, r.name) for r in added] == [(POLICY, "extra-log-match")]


def test_the_function_source_name_changes_with_bundled_files_only(tmp_path):
    repo = copy_specs(tmp_path)
    original = collect_function_source(repo)
    (repo / "README.md").write_text("unrelated")
    runner = repo / "src/phase3ops/analytics/runner.py"
    runner.write_text(runner.read_text() + "\n# not bundled\n")
    assert collect_function_source(repo).object_name == original.object_name
    readiness = repo / "src/phase3ops/orchestrator/readiness.py"
    readiness.write_text(readiness.read_text() + "\n# bundled\n")
    changed = collect_function_source(repo)
    assert changed.object_name != original.object_name
    assert "phase3ops/orchestrator/readiness.py" in changed.files
    assert not [path for path in changed.files if path.startswith("phase3ops/analytics/")]
    # A bundled module that starts importing another brings it into the bundle, in the same process too
    # (the imports of a text already read are remembered: the edited text must be read again).
    readiness.write_text(readiness.read_text() + "\nimport phase3ops.analytics.runner  # noqa: E402\n")
    assert "phase3ops/analytics/runner.py" in collect_function_source(repo).files


def test_pulumi_yaml_matches_pulumis_own_project_schema():
    schema = json.loads((REPO_ROOT / "tests/fixtures/pulumi-reference/pulumi-project.schema.json").read_text())
    project = YAML(typ="safe").load((REPO_ROOT / "Pulumi.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(project)
    assert project["main"] == "infra/" and project["runtime"]["name"] == "python"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_have_every_required_key(stack):
    from phase3ops.plan.stack_config import load_stack_config

    config = load_stack_config(REPO_ROOT, stack)
    assert config.values["gcp:region"] == "us-west2"
    assert config.values["gcp:project"]
    # Set by the build, never committed: the plan runs with a stand-in it names.
    assert "phase3-orchestration:analyticsImage" not in (REPO_ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert set(config.stand_ins) == {"phase3-orchestration:analyticsImage"}
    assert config.secrets_not_in_stack_file == [
        "phase3-orchestration:slackDataQualityToken",
        "phase3-orchestration:slackOncallToken",
    ]


def test_the_image_commit_is_declared_optional():
    # A declared key without a default is one every stack must set (the Pulumi CLI and the plan refuse it).
    declaration = YAML(typ="safe").load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]["analyticsImageCommit"]
    assert (declaration["type"], declaration["default"]) == ("string", "")
    assert "git rev-parse HEAD" in declaration["description"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: s + "  phase3-orchestration:analyticsImage: us-west2-docker.pkg.dev/p/phase3/a:latest\n",
            "analyticsImage must be pinned by digest",
        ),
        (
            lambda s: "\n".join(line for line in s.splitlines() if "runbookBaseUrl" not in line) + "\n",
            "runbookBaseUrl is declared in Pulumi.yaml without a default and not set for stack dev",
        ),
        (
            lambda s: s.replace('functionMaxInstances: "5"', 'functionMaxInstances: "500"'),
            "functionMaxInstances must be between 1 and 100",
        ),
        (
            lambda s: s.replace('functionMaxInstances: "5"', 'functionMaxInstances: "many"'),
            "functionMaxInstances must be integer",
        ),
        (
            lambda s: "\n".join(line for line in s.splitlines() if "gcp:project" not in line) + "\n",
            "gcp:project is not set",
        ),
        (
            lambda s: s + "  phase3-orchestration:analyticsImageCommit: 4f1d3c2\n",
            "analyticsImageCommit in Pulumi.dev.yaml must be the full commit the image was built from",
        ),
    ],
)
def test_missing_or_invalid_config_names_the_key(tmp_path, edit, message):
    repo = copy_specs(tmp_path)
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(edit(stack.read_text()))
    # The command's own handling, in-process (no exception escapes it); the installed entry point is
    # exercised as a subprocess in test_cli.py.
    result = run_in_process("plan", "--stack", "dev", "--repo", str(repo))
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unmocked_invoke_fails_the_plan_instead_of_returning_none(tmp_path):
    repo = copy_specs(tmp_path)
    program = repo / "infra" / "program.py"
    program.write_text(
        program.read_text().replace(
            "    settings = load_settings()\n",
            "    settings = load_settings()\n    import pulumi_gcp\n    pulumi_gcp.organizations.get_client_config()\n",
        )
    )
    with pytest.raises(PlanError, match="gcp:organizations/getClientConfig:getClientConfig"):
        plan_stack(repo, "dev")


def test_the_text_plan_shows_the_graph(dev):
    text = as_text(dev, ["phase3-orchestration:slackOncallToken"])
    assert "Secrets to set before `pulumi up`: phase3-orchestration:slackOncallToken" in text
    assert "├─ phase3:infra:Monitoring  monitoring" in text
    assert "eventTrigger.retryPolicy=RETRY_POLICY_RETRY" in text
    assert "orchestrator-errors (AlertPolicy) -> phase3_orchestrator_errors-queryable (Sleep)" in text
    assert "phase3_orchestrator_errors-queryable (Sleep) -> phase3_orchestrator_errors (Metric)" in text
    assert "nba-phase3-trigger (Topic) -> apis (ProjectApis)" in text  # one edge for all thirteen APIs


# The function bundle is installed by Cloud Build from its own requirements.txt, not from pyproject:
# a package a bundled module imports and the file lacks fails the first deploy, or the first ready date.
LOCAL_ONLY = {
    "duckdb": "the embedded warehouse: the deployed function runs PHASE3OPS_WAREHOUSE=bigquery",
    "pyarrow": "loads batches into DuckDB; never on the function's path",
}


def test_the_function_requirements_cover_every_package_its_bundle_imports():
    import importlib.metadata
    import re
    import sys

    from infra.function_source import collect_function_source
    from phase3ops.python_imports import imported_modules

    source = collect_function_source(REPO_ROOT)
    imported: set[str] = set()
    for path in source.files.values():
        if path.suffix == ".py":
            imported |= imported_modules(path.read_text(), str(path))  # `from google.cloud import bigquery` too
    distributions = importlib.metadata.packages_distributions()
    needed: set[str] = set()
    for module in imported:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "phase3ops" or top == "__future__":
            continue
        # google is a namespace shared by many distributions: resolve the subpackage.
        candidates = distributions.get(top, []) if top != "google" else _google_distribution(module)
        needed.update(re.sub(r"[-_.]+", "-", d).lower() for d in candidates)
    requirements = (REPO_ROOT / "functions" / "orchestrator" / "requirements.txt").read_text()
    declared = {
        re.sub(r"[-_.]+", "-", re.split(r"[<>=!\[ ]", line.strip())[0]).lower()
        for line in requirements.splitlines()
        if line.strip() and not line.startswith("#")
    }
    missing = needed - declared - set(LOCAL_ONLY)
    assert not missing, f"functions/orchestrator/requirements.txt lacks {sorted(missing)}"
    assert {"google-cloud-bigquery", "sqlglot", "google-cloud-firestore"} <= needed


def _google_distribution(module: str) -> list[str]:
    parts = module.split(".")
    known = {
        ("google", "cloud", "firestore"): "google-cloud-firestore",
        ("google", "cloud", "bigquery"): "google-cloud-bigquery",
        ("google", "cloud", "pubsub_v1"): "google-cloud-pubsub",
        ("google", "pubsub_v1"): "google-cloud-pubsub",
        ("google", "cloud", "pubsub"): "google-cloud-pubsub",
        ("google", "api_core"): "google-api-core",
    }
    for length in (3, 2):
        if tuple(parts[:length]) in known:
            return [known[tuple(parts[:length])]]
    if len(parts) <= 2 or parts[:3] in (["google", "cloud", "exceptions"],):
        return []  # the namespace itself; what is imported from it is resolved on its own
    raise AssertionError(f"which distribution provides {module}? add it to the table")


def test_service_levels_one_slo_per_file_and_a_burn_rate_policy_per_alert_policy(dev):
    from phase3ops.slos.cloud_monitoring import slo_name
    from phase3ops.slos.event_metrics import event_metric
    from phase3ops.slos.specs import SERVICE_ID, load_slo_specs

    specs = load_slo_specs(REPO_ROOT / "slos", "dev")
    [service] = dev.of_type("gcp:monitoring/customService:CustomService")
    assert service.inputs["serviceId"] == SERVICE_ID
    slos = {s.inputs["sloId"]: s for s in dev.of_type("gcp:monitoring/slo:Slo")}
    assert set(slos) == {slo.name for slo in specs.slos}
    waits = {w.name: w for w in dev.of_type("time:index/sleep:Sleep")}
    metrics = {m.inputs["name"]: m for m in dev.of_type(METRIC)}
    policies = {p.name: p for p in dev.of_type(POLICY) if "slo" in p.inputs["userLabels"]}
    channels = dev.outputs["notification_channels"]
    for slo in specs.slos:
        deployed = slos[slo.name]
        assert (deployed.inputs["goal"], deployed.inputs["rollingPeriodDays"]) == (slo.target, slo.window_days)
        assert service.urn in deployed.dependencies
        for _, selector in slo.selectors():  # an SLO waits until its metrics can be queried
            metric = event_metric(selector["metric"])
            assert metric is not None
            wait = waits[f"slo-{metric.name}-queryable"]
            assert wait.urn in deployed.dependencies and metrics[metric.name].urn in wait.dependencies
            assert metrics[metric.name].inputs["filter"] == metric.filter
        for name in slo.alert_policy_names:
            policy = policies[f"slo-{slo.name}-{name}"]
            assert deployed.urn in policy.dependencies
            filters = [c["conditionThreshold"]["filter"] for c in policy.inputs["conditions"]]
            assert all(f.startswith(f'select_slo_burn_rate("{slo_name("nba-props-dev", slo)}"') for f in filters)
            targets = specs.alert_policies[name].targets
            assert policy.inputs["notificationChannels"] == [channels[t] for t in targets]
    assert len(policies) == sum(len(slo.alert_policy_names) for slo in specs.slos)
    assert "fast-burn" not in {p.inputs["userLabels"]["alert-policy"] for p in policies.values()}  # dev pages nobody
