"""Values the API would refuse, caught before `pulumi up`: one wrong input of the real plan at a time.

Each case is a value a review found passing the field-and-enum check
(tests/unit/test_api_conformance.py): the name was right, the value wrong.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest

from tests.support.conformance.value_rules import check_values, predefined_roles
from tests.support.shipped_plans import shipped_plan


@pytest.fixture(scope="module", params=["dev", "prod"])
def plan(request):
    return shipped_plan(request.param)


def altered(plan, pick, change) -> list:
    resources, hits = [], 0
    for resource in plan.resources:
        if pick(resource):
            inputs = copy.deepcopy(resource.inputs)
            change(inputs)
            resource = dataclasses.replace(resource, inputs=inputs)
            hits += 1
        resources.append(resource)
    assert hits == 1  # one input of one resource
    return resources


def named(name: str):
    return lambda r: r.name == name


def of_type(type_token: str, name_contains: str = ""):
    return lambda r: r.type == type_token and name_contains in r.name


def test_the_shipped_plan_sends_only_values_the_api_takes(plan):
    assert [str(f) for f in check_values(plan.resources)] == []


CASES = [
    (
        named("nba-phase3-analytics-processors"),
        lambda i: i["template"].update(timeout="nine minutes"),
        "template.timeout: 'nine minutes' is not a duration",
    ),
    (
        named("nba-phase3-analytics-processors-push"),
        lambda i: i.update(ackDeadlineSeconds=900),
        "ackDeadlineSeconds: 900 is outside 10-600",
    ),
    (
        of_type("gcp:serviceaccount/account:Account", "phase3-reconcile"),
        lambda i: i.update(accountId="x"),
        "accountId: 'x': an account id is 6-30 characters",
    ),
    (
        named("nba-phase3-analytics-processors-push"),
        lambda i: i.pop("topic"),
        "topic: required by pulumi-gcp's Args, and missing",
    ),
    (
        named("orchestrator-errors"),
        lambda i: i["documentation"]["links"][1].update(displayName="Dashboard: " + "x" * 109),
        "documentation.links[].displayName: 120 characters, the API takes 1-63",
    ),
    (
        lambda r: (
            r.type == "gcp:bigquery/datasetIamMember:DatasetIamMember"
            and r.inputs["role"] == "roles/bigquery.dataEditor"
        ),
        lambda i: i.update(role="roles/bigquery.dataEditr"),
        "role: 'roles/bigquery.dataEditr' is neither a predefined role",
    ),
    (
        of_type("gcp:cloudscheduler/job:Job", "health"),
        lambda i: i.update(timeZone="Mars/Olympus"),
        "timeZone: 'Mars/Olympus' is not a time zone",
    ),
    (
        named("phase3-to-phase4-orchestrator"),
        lambda i: i["buildConfig"].update(runtime="python2"),
        "buildConfig.runtime: 'python2' is not a runtime Google lists",
    ),
    (
        named("orchestrator-errors"),
        lambda i: i["conditions"][0]["conditionThreshold"].update(duration="5 minutes"),
        "conditions[].conditionThreshold.duration: '5 minutes' is not a duration",
    ),
    (
        named("phase3-to-phase4-orchestrator"),
        lambda i: i["serviceConfig"].update(timeoutSeconds=3600),
        "serviceConfig.timeoutSeconds: 3600 is outside 1-540",
    ),
]


@pytest.mark.parametrize(("pick", "change", "expected"), CASES, ids=[c[2].split(":")[0] for c in CASES])
def test_a_wrong_value_is_caught(plan, pick, change, expected):
    findings = [str(f) for f in check_values(altered(plan, pick, change))]
    assert [f for f in findings if expected in f], findings


def test_the_roles_the_stack_grants_are_all_predefined(plan):
    granted = {r.inputs["role"] for r in plan.resources if "role" in r.inputs}
    assert len(granted) > 10 and granted <= predefined_roles()
