"""The CrossGuard rules, called directly, and the pack evaluated offline on the planned stack."""

from __future__ import annotations

import json
import runpy
import sys
from typing import Any

import jsonschema
import pulumi_policy
import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from phase3ops.plan import policies as offline
from phase3ops.plan.plan import plan_stack
from phase3ops.spec.documents import read_yaml
from policies import rules
from tests.support.repo_copy import REPO_ROOT, copy_specs
from tests.support.shipped_plans import shipped_plan

DIGEST = "@sha256:" + "a" * 64
PACK = offline.load_pack(REPO_ROOT)
DEFAULTS = {name: properties for name, (_, properties) in offline.policy_config(PACK).items()}


def options(additional_secret_outputs=()):
    return PolicyResourceOptions(
        False, [], None, [], PolicyCustomTimeouts(0, 0, 0), list(additional_secret_outputs), None
    )


def check(rule, policy_name, resource_type, props, name="res", secret_outputs=()):
    args = ResourceValidationArgs(
        resource_type,
        props,
        f"urn:pulumi:dev::p::{resource_type}::{name}",
        name,
        options(secret_outputs),
        None,
        config=DEFAULTS[policy_name],
    )
    found = []
    rule(args, lambda message, urn=None: found.append(message))
    return found


FUNCTION_OK = {
    "location": "us-west2",
    "labels": {
        "component": "orchestrator",
        "managed-by": "pulumi",
        "team": "data-platform",
        "source-hash": "0123456789ab",
    },
    "buildConfig": {"source": {"storageSource": {"object": "fn-0123456789abcdef0123.zip"}}},
    "eventTrigger": {"eventType": rules.PUBSUB_EVENT, "retryPolicy": "RETRY_POLICY_RETRY"},
    "serviceConfig": {"maxInstanceCount": 10, "timeoutSeconds": 120},
}


@pytest.mark.parametrize(
    "rule, policy, resource_type, good, bad, message",
    [
        (
            rules.allowed_regions,
            "allowed-regions",
            "gcp:storage/bucket:Bucket",
            {"location": "US-WEST2"},
            {"location": "EU"},
            "res is in EU; allowed regions: us-west2",
        ),
        (
            rules.allowed_regions,
            "allowed-regions",
            "gcp:cloudscheduler/job:Job",
            {"region": "us-west2"},
            {"region": "us-central1"},
            "res is in us-central1; allowed regions: us-west2",
        ),
        (
            rules.no_public_or_primitive_grants,
            "no-public-or-primitive-grants",
            "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
            {"role": "roles/run.invoker", "member": "serviceAccount:a@b"},
            {"role": "roles/run.invoker", "member": "allUsers"},
            "res grants roles/run.invoker to allUsers",
        ),
        (
            rules.no_public_or_primitive_grants,
            "no-public-or-primitive-grants",
            "gcp:projects/iAMMember:IAMMember",
            {"role": "roles/datastore.user", "member": "serviceAccount:a@b"},
            {"role": "roles/editor", "member": "serviceAccount:a@b"},
            "res grants the primitive role roles/editor; grant a predefined role instead",
        ),
        (
            rules.cloud_run_internal_ingress,
            "cloud-run-internal-ingress",
            rules.RUN_SERVICE,
            {"ingress": "INGRESS_TRAFFIC_INTERNAL_ONLY"},
            {"ingress": "INGRESS_TRAFFIC_ALL"},
            "res has ingress INGRESS_TRAFFIC_ALL; allowed: INGRESS_TRAFFIC_INTERNAL_ONLY, INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
        ),
        (
            rules.images_pinned_by_digest,
            "images-pinned-by-digest",
            rules.RUN_SERVICE,
            {"template": {"containers": [{"image": "r/x" + DIGEST}]}},
            {"template": {"containers": [{"image": "r/x:v1.2"}]}},
            "res runs r/x:v1.2, a tag; pin the image by digest (@sha256:...)",
        ),
        (
            rules.images_pinned_by_digest,
            "images-pinned-by-digest",
            rules.RUN_JOB,
            {"template": {"template": {"containers": [{"image": "r/x" + DIGEST}]}}},
            {"template": {"template": {"containers": [{"image": "r/x:latest"}]}}},
            "res runs r/x:latest: never deploy 'latest'",
        ),
        (
            rules.pubsub_functions_retry_and_are_bounded,
            "pubsub-functions-retry-and-are-bounded",
            rules.FUNCTION,
            FUNCTION_OK,
            {
                **FUNCTION_OK,
                "eventTrigger": {"eventType": rules.PUBSUB_EVENT, "retryPolicy": "RETRY_POLICY_DO_NOT_RETRY"},
            },
            "res does not retry failed events (retryPolicy RETRY_POLICY_DO_NOT_RETRY); set RETRY_POLICY_RETRY",
        ),
        (
            rules.pubsub_functions_retry_and_are_bounded,
            "pubsub-functions-retry-and-are-bounded",
            rules.FUNCTION,
            FUNCTION_OK,
            {**FUNCTION_OK, "serviceConfig": {"timeoutSeconds": 60}},
            "res needs serviceConfig.maxInstanceCount between 1 and 100, got None",
        ),
        (
            rules.push_subscriptions_authenticated,
            "push-subscriptions-authenticated",
            rules.SUBSCRIPTION,
            {
                "pushConfig": {"pushEndpoint": "https://x", "oidcToken": {"serviceAccountEmail": "a@b"}},
                "deadLetterPolicy": {"deadLetterTopic": "t"},
            },
            {"pushConfig": {"pushEndpoint": "https://x"}, "deadLetterPolicy": {"deadLetterTopic": "t"}},
            "res pushes without an OIDC token; set pushConfig.oidcToken",
        ),
        (
            rules.push_subscriptions_authenticated,
            "push-subscriptions-authenticated",
            rules.SUBSCRIPTION,
            {"topic": "t"},
            {"pushConfig": {"pushEndpoint": "https://x", "oidcToken": {"serviceAccountEmail": "a@b"}}},
            "res has no dead-letter policy; undeliverable messages would be retried until they expire",
        ),
        (
            rules.alert_policies_well_formed,
            "alert-policies-well-formed",
            rules.ALERT_POLICY,
            {
                "notificationChannels": ["c"],
                "conditions": [{"conditionMatchedLog": {"filter": "x"}}],
                "alertStrategy": {"notificationRateLimit": {"period": "300s"}},
                "documentation": {"links": [{"url": "https://runbook"}]},
            },
            {
                "notificationChannels": ["c"],
                "conditions": [{"conditionMatchedLog": {"filter": "x"}}],
                "documentation": {"links": [{"url": "https://runbook"}]},
            },
            "res has a log-match condition without alertStrategy.notificationRateLimit",
        ),
        (
            rules.alert_policies_well_formed,
            "alert-policies-well-formed",
            rules.ALERT_POLICY,
            {
                "notificationChannels": ["c"],
                "conditions": [{"conditionThreshold": {"filter": "x"}}],
                "documentation": {"content": "see https://runbook"},
            },
            {
                "notificationChannels": [],
                "conditions": [{"conditionThreshold": {"filter": "x"}}],
                "documentation": {"content": "see https://runbook"},
            },
            "res notifies no channel",
        ),
        (
            rules.alert_policies_well_formed,
            "alert-policies-well-formed",
            rules.ALERT_POLICY,
            {
                "notificationChannels": ["c"],
                "conditions": [{"conditionThreshold": {}}],
                "documentation": {"content": "https://r"},
            },
            {
                "notificationChannels": ["c"],
                "conditions": [{"conditionThreshold": {}}],
                "documentation": {"content": "ask around"},
            },
            "res has no runbook link in its documentation",
        ),
        (
            rules.required_labels,
            "required-labels",
            rules.RUN_SERVICE,
            {"labels": {"component": "x", "managed-by": "pulumi", "team": "data-platform"}},
            {"labels": {"component": "x", "team": "data-platform"}},
            "res lacks the labels managed-by",
        ),
        (
            rules.function_source_content_addressed,
            "function-source-content-addressed",
            rules.FUNCTION,
            FUNCTION_OK,
            {**FUNCTION_OK, "buildConfig": {"source": {"storageSource": {"object": "function-source.zip"}}}},
            "res deploys from 'function-source.zip', a name that does not change with the content",
        ),
    ],
)
def test_each_rule_passes_and_fails(rule, policy, resource_type, good, bad, message):
    assert check(rule, policy, resource_type, good) == []
    assert check(rule, policy, resource_type, bad) == [message]


def test_slack_tokens_must_be_secret_outputs():
    props = {"type": "slack", "labels": {"channel_name": "#x"}, "sensitiveLabels": {"authToken": "xoxb"}}
    assert (
        check(
            rules.slack_tokens_are_secret,
            "slack-tokens-are-secret",
            rules.CHANNEL,
            props,
            secret_outputs=["sensitiveLabels"],
        )
        == []
    )
    assert check(rules.slack_tokens_are_secret, "slack-tokens-are-secret", rules.CHANNEL, props) == [
        "res does not mark sensitiveLabels as a secret output (additional_secret_outputs)"
    ]
    plain = {"type": "slack", "labels": {"channel_name": "#x", "auth_token": "xoxb"}}
    assert check(
        rules.slack_tokens_are_secret,
        "slack-tokens-are-secret",
        rules.CHANNEL,
        plain,
        secret_outputs=["sensitiveLabels"],
    ) == [
        "res has its Slack token in plain labels; use sensitiveLabels.authToken",
        "res has no sensitiveLabels.authToken",
    ]


def stack_resource(resource_type, name, props, dependencies=()):
    return PolicyResource(
        resource_type,
        props,
        f"urn:pulumi:dev::p::{resource_type}::{name}",
        name,
        options(),
        None,
        None,
        list(dependencies),
        {},
    )


def run_stack_rule(rule, resources):
    found = []
    rule(StackValidationArgs(resources, config={}), lambda message, urn=None: found.append(message))
    return found


def test_workloads_must_be_covered_by_an_alert_policy():
    service = stack_resource(rules.RUN_SERVICE, "svc", {"name": "svc"})
    function = stack_resource(rules.FUNCTION, "fn", {"name": "fn"})
    metric = stack_resource(rules.LOG_METRIC, "m", {"filter": 'resource.labels.service_name="fn" AND severity>=ERROR'})
    on_service = stack_resource(
        rules.ALERT_POLICY,
        "p1",
        {"conditions": [{"conditionMatchedLog": {"filter": 'resource.labels.service_name="svc"'}}]},
    )
    on_metric = stack_resource(
        rules.ALERT_POLICY, "p2", {"conditions": [{"conditionThreshold": {"filter": "metric.type=x"}}]}, [metric]
    )
    assert run_stack_rule(rules.workloads_covered_by_alerts, [service, function, metric, on_service, on_metric]) == []
    assert run_stack_rule(rules.workloads_covered_by_alerts, [service, function, metric, on_service]) == [
        "Function fn is watched by no alert policy"
    ]


def test_workloads_must_appear_on_a_dashboard():
    service = stack_resource(rules.RUN_SERVICE, "svc", {"name": "svc"})
    function = stack_resource(rules.FUNCTION, "fn", {"name": "fn"})
    receipts = stack_resource(rules.FUNCTION, "rcpt", {"name": "rcpt"})
    metric = stack_resource(
        rules.LOG_METRIC, "m", {"name": "m", "filter": 'resource.labels.service_name="rcpt" AND jsonPayload.event="x"'}
    )
    widgets = {
        "mosaicLayout": {
            "tiles": [
                {
                    "widget": {
                        "xyChart": {
                            "dataSets": [
                                {
                                    "timeSeriesQuery": {
                                        "timeSeriesFilter": {
                                            "filter": 'metric.type="run.googleapis.com/request_count" AND resource.labels.service_name=one_of("svc", "other")'
                                        }
                                    }
                                }
                            ]
                        }
                    }
                },
                {"widget": {"logsPanel": {"filter": 'resource.labels.service_name="fn"'}}},
                {
                    "widget": {
                        "scorecard": {
                            "timeSeriesQuery": {
                                "timeSeriesFilter": {"filter": 'metric.type="logging.googleapis.com/user/m"'}
                            }
                        }
                    }
                },
            ]
        }
    }
    dashboard = stack_resource(rules.DASHBOARD, "d", {"dashboardJson": json.dumps(widgets)})
    assert run_stack_rule(rules.workloads_on_a_dashboard, [service, function, receipts, metric, dashboard]) == []
    # The receipts function is named only by the log metric's filter: without the metric, it is on no dashboard.
    assert run_stack_rule(rules.workloads_on_a_dashboard, [service, function, receipts, dashboard]) == [
        "Function rcpt appears on no dashboard"
    ]
    without_panel = json.dumps({"mosaicLayout": {"tiles": widgets["mosaicLayout"]["tiles"][:1]}})
    found = run_stack_rule(
        rules.workloads_on_a_dashboard,
        [service, function, stack_resource(rules.DASHBOARD, "d", {"dashboardJson": without_panel})],
    )
    assert found == ["Function fn appears on no dashboard"]
    assert run_stack_rule(rules.workloads_on_a_dashboard, [service]) == ["Service svc appears on no dashboard"]


def test_every_channel_must_be_used():
    used = stack_resource(rules.CHANNEL, "a", {"name": "projects/p/notificationChannels/1"})
    unused = stack_resource(rules.CHANNEL, "b", {"name": "projects/p/notificationChannels/2"})
    policy = stack_resource(rules.ALERT_POLICY, "p", {"notificationChannels": ["projects/p/notificationChannels/1"]})
    assert run_stack_rule(rules.channels_are_used, [used, policy]) == []
    assert run_stack_rule(rules.channels_are_used, [used, unused, policy]) == [
        "notification channel b is used by no alert policy"
    ]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_shipped_stacks_pass_every_policy(stack):
    violations = offline.evaluate(PACK, shipped_plan(stack))
    assert violations == []


def test_a_deliberately_broken_stack_fails_with_the_expected_violations(tmp_path):
    repo = copy_specs(tmp_path)
    service = repo / "infra/components/analytics_service.py"
    service.write_text(service.read_text().replace("member=args.push_member,", 'member="allUsers",'))
    settings = repo / "infra/settings.py"
    settings.write_text(settings.read_text().replace("if image and not DIGEST_IMAGE.match(image):", "if False:"))
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(
        stack.read_text()
        + "  phase3-orchestration:analyticsImage: us-west2-docker.pkg.dev/p/phase3/nba-phase3-analytics-processors:v7\n"
    )
    for rule_file in (
        "analytics-service-errors",
        "analytics-service-5xx",
        "analytics-service-latency-p99",
        "lock-takeovers",
    ):
        (repo / "alerts" / f"{rule_file}.yaml").unlink()
    overrides = repo / "alerts/stacks/dev.yaml"
    overrides.write_text(
        overrides.read_text().replace(
            '  analytics-service-5xx:\n    conditions:\n      "0":\n        ratio:\n          value: 0.3\n'
            '      "1":\n        threshold:\n          value: 20\n',
            "",
        )
    )

    violations = offline.evaluate(offline.load_pack(repo), plan_stack(repo, "dev").result)
    found = {(v.policy, v.level, v.message.split(" ")[0]) for v in violations}
    assert ("no-public-or-primitive-grants", "mandatory", "nba-phase3-analytics-processors-invoker-push") in found
    assert ("images-pinned-by-digest", "mandatory", "nba-phase3-analytics-processors") in found
    assert ("images-pinned-by-digest", "mandatory", "phase3-health-check") in found
    messages = [v.message for v in violations if v.policy == "workloads-covered-by-alerts"]
    assert messages == ["Service nba-phase3-analytics-processors is watched by no alert policy"]
    assert (
        offline.render(offline.load_pack(repo), violations)
        .splitlines()[1]
        .startswith("    ❌ phase3-guardrails@v1.0.0")
    )


def test_the_cli_exits_non_zero_on_a_mandatory_violation(tmp_path):
    import subprocess

    repo = copy_specs(tmp_path)
    service = repo / "infra/components/analytics_service.py"
    service.write_text(service.read_text().replace('"INGRESS_TRAFFIC_INTERNAL_ONLY"', '"INGRESS_TRAFFIC_ALL"'))
    result = subprocess.run(
        [sys.executable, "-m", "phase3ops.cli", "plan", "--stack", "dev", "--repo", str(repo), "--policies"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert (
        "- [mandatory]  cloud-run-internal-ingress  (gcp:cloudrunv2/service:Service: nba-phase3-analytics-processors)"
        in result.stdout
    )


def test_pack_metadata_config_schema_and_example_config_are_valid():
    metadata = read_yaml(REPO_ROOT / "policies/PulumiPolicy.yaml").data
    assert metadata["runtime"]["name"] == "python" and metadata["version"]
    for policy in PACK.policies:
        if policy.config_schema:
            jsonschema.Draft7Validator.check_schema({"type": "object", "properties": policy.config_schema.properties})
    import json

    offline.policy_config(PACK, json.loads((REPO_ROOT / "policies/config.example.json").read_text()))
    with pytest.raises(offline.PolicyConfigError, match="unknown policies: no-such-policy"):
        offline.policy_config(PACK, {"no-such-policy": "mandatory"})
    with pytest.raises(offline.PolicyConfigError, match="allowed-regions"):
        offline.policy_config(PACK, {"allowed-regions": {"allowedRegions": "us-west2"}})


def test_main_only_builds_the_pack(monkeypatch):
    built: dict[str, Any] = {}

    def capture(name, policies, enforcement_level=None, **rest):
        built.update(name=name, policies=policies, level=enforcement_level)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", capture)
    monkeypatch.syspath_prepend(str(REPO_ROOT / "policies"))
    runpy.run_path(str(REPO_ROOT / "policies/__main__.py"), run_name="__main__")
    assert built["name"] == "phase3-guardrails"
    assert {p.name for p in built["policies"]} == {p.name for p in PACK.policies}


def test_a_promql_or_ratio_condition_names_the_workload_it_watches():
    promql = {
        "conditionPrometheusQueryLanguage": {
            "query": 'rate(run_googleapis_com:request_count{service_name="svc"}[5m]) > 1'
        }
    }
    ratio = {
        "conditionThreshold": {"filter": 'metric.type="x"', "denominatorFilter": 'resource.labels.service_name="other"'}
    }
    texts = rules._filters({"conditions": [promql, ratio]})
    assert rules._names_workload(texts, "svc")
    assert rules._names_workload(texts, "other")


def test_every_slo_needs_an_alert_on_its_burn_rate():
    slo = stack_resource(rules.SLO, "slo-a", {"sloId": "trigger-on-time", "service": "phase3-handoff"})
    burn = 'select_slo_burn_rate("projects/p/services/phase3-handoff/serviceLevelObjectives/trigger-on-time", "3600s")'
    on_burn = stack_resource(rules.ALERT_POLICY, "p1", {"conditions": [{"conditionThreshold": {"filter": burn}}]})
    # A policy on another SLO, or on the SLO's budget rather than its burn rate, does not count.
    other = burn.replace("trigger-on-time", "trigger-on-complete-data")
    on_other = stack_resource(rules.ALERT_POLICY, "p2", {"conditions": [{"conditionThreshold": {"filter": other}}]})
    budget = 'select_slo_budget_fraction("projects/p/services/phase3-handoff/serviceLevelObjectives/trigger-on-time")'
    on_budget = stack_resource(rules.ALERT_POLICY, "p3", {"conditions": [{"conditionThreshold": {"filter": budget}}]})
    assert run_stack_rule(rules.slos_have_burn_rate_alerts, [slo, on_burn]) == []
    assert run_stack_rule(rules.slos_have_burn_rate_alerts, [slo, on_other, on_budget]) == [
        "SLO trigger-on-time has no burn-rate alert policy"
    ]
