"""The code that runs only against a real project, offline: the deployment-state check's API calls,
and the health check's custom metrics as `write_metrics` sends them.

Google's own generated clients (functions_v2, run_v2, monitoring_v3) talk gRPC, as in production,
to a local server (tests.support.google_api_stub) that plays the APIs: it records each request as
the API's message and answers with the messages a deployment in a given state returns. The tests
assert what the code asks for (resource names, request fields; for the metrics the whole request
as its JSON form: metric type, resource and its labels, point time and value type) and what the
check concludes from the answers. How the revisions are compared with the stack and git is tested
in test_deployment_state.py; here git answers a fixed commit.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from google.api_core.exceptions import NotFound
from google.cloud import functions_v2, monitoring_v3, run_v2
from google.protobuf import json_format

from phase3ops.alerts.policies import policy_body, to_proto
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.checks import deployment_state
from phase3ops.checks.context import CheckContext
from phase3ops.checks.deployed_revisions import SOURCE_COMMIT_LABEL, image_digest
from phase3ops.checks.deployment_state import CloudClients, declared_image
from phase3ops.checks.metrics import write_metrics
from phase3ops.checks.results import CheckResult, Status
from phase3ops.monitoring.custom_metrics import CUSTOM_METRICS, METRIC_PREFIX
from phase3ops.monitoring.time_series import from_api, matches
from phase3ops.spec.pipeline import PipelineSpec, load_pipeline_spec
from phase3ops.warehouse.port import Warehouse
from tests.support.google_api_stub import (
    CREATE_TIME_SERIES,
    GET_FUNCTION,
    GET_JOB,
    GET_REVISION,
    GET_SERVICE,
    LIST_ALERT_POLICIES,
    GoogleApiStub,
    empty,
    google_api_stub,
)
from tests.support.repo_copy import REPO_ROOT, with_built_image

DECLARED_IMAGE = "us-west2-docker.pkg.dev/nba-props-dev/phase3/nba-phase3-analytics-processors@sha256:" + "a" * 64
# The operator's checkout after the build set the stack's image (the committed stack files set none).
_CHECKOUT = tempfile.TemporaryDirectory(prefix="phase3ops-deployed-checkout-")
CHECKOUT = with_built_image(Path(_CHECKOUT.name), "dev", DECLARED_IMAGE)
SPEC = load_pipeline_spec(CHECKOUT / "pipeline.yaml")
PROJECT, REGION, STACK = "nba-props-dev", "us-west2", "dev"
LOCATION = f"projects/{PROJECT}/locations/{REGION}"
ORCHESTRATOR, RECEIPTS = SPEC.orchestrator.function_name, SPEC.orchestrator.receipts_function_name
SERVICE_NAME = SPEC.analytics.service_name
SERVICE = f"{LOCATION}/services/{SERVICE_NAME}"
OLD, NEW, BROKEN = (f"{SERVICE_NAME}-{suffix}" for suffix in ("00007-abc", "00012-xyz", "00013-bad"))
HEALTH_JOB = "phase3-health-check"
assert declared_image(CHECKOUT, STACK)[0] == DECLARED_IMAGE
OTHER_DIGEST = "sha256:" + "b" * 64
OTHER_IMAGE = DECLARED_IMAGE.split("@")[0] + "@" + OTHER_DIGEST
COMMIT = "3" * 40
# Reading alerts/ takes a quarter of a second; every test's check reads the same files.
alert_specs_once = functools.cache(load_alert_specs)
DEV_RULES = {rule.name: rule.enabled for rule in alert_specs_once(REPO_ROOT / "alerts", STACK).rules}
NOW = dt.datetime(2026, 11, 21, 10, 47, tzinfo=ZoneInfo(SPEC.timezone))
NOW_ON_THE_WIRE = "2026-11-21T15:47:00Z"  # NOW in UTC, as a Timestamp's JSON form
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
BY_NAME = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
POLICIES_PER_PAGE = 10


@pytest.fixture
def stub() -> Iterator[GoogleApiStub]:
    with google_api_stub() as running:
        yield running


@pytest.fixture(autouse=True)
def checkout_at_the_deployed_commit(monkeypatch):
    """Where the check runs: a checkout at the commit the revisions were built from, outside a Cloud Run job."""
    monkeypatch.setattr(deployment_state, "load_alert_specs", alert_specs_once)
    monkeypatch.setattr(deployment_state, "git_head", lambda repo: COMMIT)
    monkeypatch.setattr(deployment_state, "git_is_ancestor", lambda repo, ancestor, descendant: ancestor == descendant)
    monkeypatch.delenv("CLOUD_RUN_JOB", raising=False)


# -- the deployment the APIs describe --------------------------------------------------------


@dataclass
class Deployment:
    """What the APIs hold, each resource under the full name the API gives it."""

    functions: dict[str, functions_v2.Function]
    services: dict[str, run_v2.Service]
    revisions: dict[str, run_v2.Revision]
    alert_policies: list[monitoring_v3.AlertPolicy]
    jobs: dict[str, run_v2.Job] = field(default_factory=dict)

    def function(self, name: str) -> functions_v2.Function:
        return self.functions[f"{LOCATION}/functions/{name}"]

    @property
    def service(self) -> run_v2.Service:
        return self.services[SERVICE]

    def policy(self, rule: str) -> monitoring_v3.AlertPolicy:
        [policy] = [p for p in self.alert_policies if p.user_labels["rule"] == rule]
        return policy

    def switch(self, rule: str, enabled: bool) -> None:
        """As someone would in the console: the same policy, its `enabled` changed."""
        index = self.alert_policies.index(self.policy(rule))
        self.alert_policies[index] = alert_policy(index, rule, enabled)


def function(name: str) -> functions_v2.Function:
    return functions_v2.Function(
        name=f"{LOCATION}/functions/{name}",
        state=functions_v2.Function.State.ACTIVE,
        environment=functions_v2.Environment.GEN_2,
    )


def revision(name: str, image: str = DECLARED_IMAGE) -> run_v2.Revision:
    return run_v2.Revision(
        name=f"{SERVICE}/revisions/{name}",
        service=SERVICE,
        labels={"managed-by": "pulumi", SOURCE_COMMIT_LABEL: COMMIT},
        containers=[run_v2.Container(image=image)],
    )


def alert_policy(number: int, rule: str, enabled: bool, managed: bool = True) -> monitoring_v3.AlertPolicy:
    return monitoring_v3.AlertPolicy(
        name=f"projects/{PROJECT}/alertPolicies/{number}",
        display_name=f"phase3: {rule}",
        user_labels={"rule": rule} | ({"managed-by": "pulumi"} if managed else {}),
        enabled=enabled,
    )


def healthy() -> Deployment:
    """Both functions ACTIVE, the latest revision ready and serving all traffic from the declared
    image, every rule's policy deployed as the dev stack has it."""
    service = run_v2.Service(
        name=SERVICE,
        latest_ready_revision=f"{SERVICE}/revisions/{NEW}",
        latest_created_revision=f"{SERVICE}/revisions/{NEW}",
        traffic=[run_v2.TrafficTarget(type_=LATEST, percent=100)],
        # Cloud Run leaves `revision` empty on a LATEST status.
        traffic_statuses=[run_v2.TrafficTargetStatus(type_=LATEST, percent=100)],
        template=run_v2.RevisionTemplate(containers=[run_v2.Container(image=DECLARED_IMAGE)]),
    )
    revisions = [revision(OLD), revision(NEW)]
    return Deployment(
        functions={f.name: f for f in (function(ORCHESTRATOR), function(RECEIPTS))},
        services={SERVICE: service},
        revisions={r.name: r for r in revisions},
        alert_policies=[
            alert_policy(number, rule, enabled) for number, (rule, enabled) in enumerate(sorted(DEV_RULES.items()))
        ],
    )


def list_page(policies: list[monitoring_v3.AlertPolicy], request: Any) -> monitoring_v3.ListAlertPoliciesResponse:
    # The server picks the page size when the client asks none; the token is where the next page starts.
    start = int(request.page_token or 0)
    end = start + POLICIES_PER_PAGE
    return monitoring_v3.ListAlertPoliciesResponse(
        alert_policies=policies[start:end],
        next_page_token=str(end) if end < len(policies) else "",
        total_size=len(policies),
    )


def serve(stub: GoogleApiStub, deployment: Deployment) -> None:
    stub.answer(GET_FUNCTION, lambda request: deployment.functions[request.name])
    stub.answer(GET_SERVICE, lambda request: deployment.services[request.name])
    stub.answer(GET_REVISION, lambda request: deployment.revisions[request.name])
    stub.answer(GET_JOB, lambda request: deployment.jobs[request.name])
    stub.answer(LIST_ALERT_POLICIES, lambda request: list_page(deployment.alert_policies, request))


def clients_of(stub: GoogleApiStub) -> CloudClients:
    clients = CloudClients()
    clients.functions = stub.client(functions_v2.FunctionServiceClient)
    clients.services = stub.client(run_v2.ServicesClient)
    clients.revisions = stub.client(run_v2.RevisionsClient)
    clients.jobs = stub.client(run_v2.JobsClient)
    clients.alert_policies = stub.client(monitoring_v3.AlertPolicyServiceClient)
    return clients


def check(stub: GoogleApiStub, deployment: Deployment, spec: PipelineSpec = SPEC) -> CheckResult:
    serve(stub, deployment)
    context = CheckContext(
        spec,
        NOW.date(),
        NOW.date(),
        NOW,
        {},
        cast(Warehouse, None),  # the check reads no table
        target="cloud",
        project=PROJECT,
        alerts_dir=Path(spec.source).resolve().parent / "alerts",  # as `phase3ops health` sets it
        stack=STACK,
        region=REGION,
    )
    return deployment_state.run(context, clients_of(stub))


def names(stub: GoogleApiStub, method: str) -> list[str]:
    return [request.name for request in stub.requests(method)]


# -- the deployment-state check ----------------------------------------------------------------


def test_a_healthy_deployment_passes_and_each_request_names_the_resource_it_means(stub):
    result = check(stub, healthy())

    assert (result.status, result.findings) == (Status.OK, [])
    # Whole requests: the name and nothing else set (no revision, filter, order or page size).
    assert stub.requests(GET_FUNCTION) == [
        functions_v2.GetFunctionRequest(name=f"{LOCATION}/functions/{ORCHESTRATOR}"),
        functions_v2.GetFunctionRequest(name=f"{LOCATION}/functions/{RECEIPTS}"),
    ]
    assert stub.requests(GET_SERVICE) == [run_v2.GetServiceRequest(name=SERVICE)]
    # The revision that serves, not every revision the service has.
    assert stub.requests(GET_REVISION) == [run_v2.GetRevisionRequest(name=f"{SERVICE}/revisions/{NEW}")]
    assert stub.requests(GET_JOB) == []  # the stack file declares the image: no job to ask
    # Every policy of the project, page after page: the all-OK verdict needs the last page too.
    tokens = ["", *(str(start) for start in range(POLICIES_PER_PAGE, len(DEV_RULES), POLICIES_PER_PAGE))]
    assert len(tokens) >= 3
    assert stub.requests(LIST_ALERT_POLICIES) == [
        monitoring_v3.ListAlertPoliciesRequest(name=f"projects/{PROJECT}", page_token=token) for token in tokens
    ]
    assert f"function {ORCHESTRATOR}: ACTIVE" in result.details
    assert f"function {RECEIPTS}: ACTIVE" in result.details
    assert f"revision {NEW} runs commit {COMMIT[:12]}, git HEAD" in result.details
    assert f"{len(DEV_RULES)} alert policies deployed, stack {STACK}" in result.details


@pytest.mark.parametrize("state", ["DEPLOYING", "FAILED", "DELETING", "UNKNOWN"])
def test_a_function_that_is_not_active_is_a_finding(stub, state):
    deployment = healthy()
    deployment.function(RECEIPTS).state = getattr(functions_v2.Function.State, state)

    result = check(stub, deployment)

    assert result.status is Status.FAILED
    assert result.findings == [f"function {RECEIPTS} is {state}, not ACTIVE"]
    assert f"function {RECEIPTS}: {state}" in result.details


def test_a_function_that_does_not_exist_stops_the_check_instead_of_passing(stub):
    deployment = healthy()
    del deployment.functions[f"{LOCATION}/functions/{RECEIPTS}"]

    with pytest.raises(NotFound, match=RECEIPTS):
        check(stub, deployment)


def test_a_latest_revision_that_is_not_ready_is_a_finding(stub):
    deployment = healthy()
    # A deploy whose new revision fails its startup probe: Cloud Run keeps routing LATEST to the last ready one.
    deployment.service.latest_created_revision = f"{SERVICE}/revisions/{BROKEN}"

    result = check(stub, deployment)

    assert result.findings == [
        f"service {SERVICE_NAME}: latest revision {SERVICE}/revisions/{BROKEN} is not ready "
        f"(serving {SERVICE}/revisions/{NEW})"
    ]
    assert names(stub, GET_REVISION) == [f"{SERVICE}/revisions/{NEW}"]


def test_traffic_on_an_old_revision_is_a_finding_and_every_serving_revision_is_fetched(stub):
    deployment = healthy()
    deployment.service.traffic_statuses = [
        run_v2.TrafficTargetStatus(type_=LATEST, percent=90),
        run_v2.TrafficTargetStatus(type_=BY_NAME, revision=OLD, percent=10),
        run_v2.TrafficTargetStatus(type_=BY_NAME, revision=f"{SERVICE_NAME}-00003-zzz", percent=0, tag="rollback"),
    ]

    result = check(stub, deployment)

    assert result.findings == [f"traffic pinned to old revision {OLD} (10%) while latest is {NEW}"]
    assert sorted(names(stub, GET_REVISION)) == [f"{SERVICE}/revisions/{OLD}", f"{SERVICE}/revisions/{NEW}"]


def test_a_serving_revision_running_another_image_than_the_stack_declares_is_a_finding(stub):
    deployment = healthy()
    deployment.revisions[f"{SERVICE}/revisions/{NEW}"].containers[0].image = OTHER_IMAGE

    result = check(stub, deployment)

    assert result.findings == [
        f"serving image digest differs from the stack's declared digest: revision {NEW} runs {OTHER_IMAGE}, "
        f"Pulumi.{STACK}.yaml declares {image_digest(DECLARED_IMAGE)}"
    ]


def test_alert_policies_missing_or_enabled_unlike_the_stack_are_findings(stub):
    assert (DEV_RULES["duplicate-rows"], DEV_RULES["phase4-trigger-absent"]) == (True, False)
    deployment = healthy()
    deployment.switch("duplicate-rows", enabled=False)
    deployment.switch("phase4-trigger-absent", enabled=True)
    deployment.alert_policies.remove(deployment.policy("lock-takeovers"))
    # A copy made in the console carries the rule label but not managed-by: it stands in for nothing.
    deployment.alert_policies.append(alert_policy(99, "lock-takeovers", True, managed=False))

    result = check(stub, deployment)

    assert result.findings == [
        "alert policy duplicate-rows is disabled in Cloud Monitoring; the stack deploys it enabled",
        "alert policy lock-takeovers from alerts/lock-takeovers.yaml is not deployed",
        "alert policy phase4-trigger-absent is enabled in Cloud Monitoring; the stack deploys it disabled",
    ]
    assert f"{len(DEV_RULES) - 1} alert policies deployed, stack {STACK}" in result.details


def test_in_the_scheduled_job_the_image_declared_is_the_jobs_own(stub, tmp_path, monkeypatch):
    # The job's image: pipeline.yaml and alerts/ under /app, no stack file, no git.
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy2(REPO_ROOT / "pipeline.yaml", app / "pipeline.yaml")
    shutil.copytree(REPO_ROOT / "alerts", app / "alerts")
    monkeypatch.setattr(deployment_state, "git_head", lambda repo: None)
    monkeypatch.setenv("CLOUD_RUN_JOB", HEALTH_JOB)
    deployment = healthy()
    deployment.jobs[f"{LOCATION}/jobs/{HEALTH_JOB}"] = run_v2.Job(
        name=f"{LOCATION}/jobs/{HEALTH_JOB}",
        labels={"managed-by": "pulumi", SOURCE_COMMIT_LABEL: COMMIT},
        template=run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(containers=[run_v2.Container(image=OTHER_IMAGE)])
        ),
    )

    result = check(stub, deployment, spec=load_pipeline_spec(app / "pipeline.yaml"))

    assert names(stub, GET_JOB) == [f"{LOCATION}/jobs/{HEALTH_JOB}"]
    assert result.findings == [
        f"serving image digest differs from the stack's declared digest: revision {NEW} runs {DECLARED_IMAGE}, "
        f"job {HEALTH_JOB} (deployed by the same stack) declares {OTHER_DIGEST}"
    ]
    assert f"job {HEALTH_JOB}: image built from commit {COMMIT[:12]}" in result.details


# -- the health check's custom metrics ----------------------------------------------------------

PROBLEMS = {name: 0.5 if metric.value_type == "DOUBLE" else 3.0 for name, metric in CUSTOM_METRICS.items()}
ALL_CLEAR = {name: 1.0 if metric.value_type == "DOUBLE" else 0.0 for name, metric in CUSTOM_METRICS.items()}


def sent_metrics(stub: GoogleApiStub, values: dict[str, float]) -> monitoring_v3.CreateTimeSeriesRequest:
    stub.answer(CREATE_TIME_SERIES, empty)
    write_metrics(PROJECT, values, NOW, client=stub.client(monitoring_v3.MetricServiceClient))
    [request] = stub.requests(CREATE_TIME_SERIES)
    return request


def series_json(name: str, value: float) -> dict[str, Any]:
    """One series as the API documents it: a point of the descriptor's value type (an INT64 in JSON is
    a string) on the `global` resource, whose only label is the project."""
    typed = {"int64Value": str(int(value))} if CUSTOM_METRICS[name].value_type == "INT64" else {"doubleValue": value}
    return {
        "metric": {"type": f"custom.googleapis.com/phase3/{name}"},
        "resource": {"type": "global", "labels": {"project_id": PROJECT}},
        "points": [{"interval": {"endTime": NOW_ON_THE_WIRE}, "value": typed}],
    }


@pytest.mark.parametrize("values", [PROBLEMS, ALL_CLEAR], ids=["problems", "all-clear"])
def test_each_health_metric_is_one_point_of_its_declared_type_on_the_global_resource(stub, values):
    assert {metric.value_type for metric in CUSTOM_METRICS.values()} == {"INT64", "DOUBLE"}  # both are exercised
    request = sent_metrics(stub, values)

    # All clear sends zeros: each still as its type's member of the value oneof, never an empty TypedValue.
    assert json_format.MessageToDict(request._pb) == {
        "name": f"projects/{PROJECT}",
        "timeSeries": [series_json(name, value) for name, value in sorted(values.items())],
    }


def test_every_alert_condition_on_a_health_metric_selects_exactly_the_series_sent_for_it(stub):
    sent = [from_api(series) for series in sent_metrics(stub, PROBLEMS).time_series]
    watched = set()
    for rule in alert_specs_once(REPO_ROOT / "alerts").rules:
        for condition in to_proto(policy_body(rule, "https://runbooks.example/")).conditions:
            kind = condition._pb.WhichOneof("condition")
            selector = getattr(condition, kind).filter if kind in ("condition_threshold", "condition_absent") else ""
            if METRIC_PREFIX not in selector:
                continue
            selected = [series.metric_type for series in sent if matches(selector, series)]
            assert len(selected) == 1 and f'metric.type="{selected[0]}"' in selector, (rule.name, selector, selected)
            watched.add(selected[0])
    # Not vacuous: the threshold rules on completion, duplicates, trigger claims and expected work at least.
    assert len(watched) >= 4, watched
