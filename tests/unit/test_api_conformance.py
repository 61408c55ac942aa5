"""The plan against Google's own API definitions (the Google Cloud SDK's generated messages).

Pulumi's mocks accept any value; these tests hold every field name and enum
value the plan sends for a Google API resource against the API message it
becomes, so a typo fails CI instead of `pulumi up`.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest

from tests.support.conformance.plan_conformance import NOT_GOOGLE_APIS, RESOURCES, check_plan
from tests.support.conformance.sdk import SdkUnavailable, sdk_root
from tests.support.shipped_plans import shipped_plan


@pytest.fixture(scope="module")
def sdk():
    try:
        return sdk_root()
    except SdkUnavailable as exc:
        pytest.skip(f"no Google Cloud SDK to read the API definitions from: {exc}")


@pytest.fixture(scope="module", params=["dev", "prod"])
def plan(request):
    return shipped_plan(request.param)


def test_every_field_and_enum_value_the_plan_sends_is_in_the_api(sdk, plan):
    coverage = check_plan(plan.resources)
    assert [str(f) for f in coverage.findings] == []
    assert coverage.fields_checked > 500 and coverage.enums_checked > 50


def test_every_resource_type_in_the_plan_is_covered(sdk, plan):
    planned = {r.type for r in plan.resources if r.custom and not r.type.startswith("pulumi:")}
    assert planned - set(NOT_GOOGLE_APIS) == check_plan(plan.resources).types
    assert planned <= set(RESOURCES) | set(NOT_GOOGLE_APIS)


def altered(plan, name: str, change) -> list:
    resources = []
    for resource in plan.resources:
        if resource.name == name:
            inputs = copy.deepcopy(resource.inputs)
            change(inputs)
            resource = dataclasses.replace(resource, inputs=inputs)
        resources.append(resource)
    return resources


@pytest.mark.parametrize(
    "name, change, expected",
    [
        (
            "orchestrator-errors",
            lambda i: i["conditions"][0]["conditionThreshold"]["aggregations"][0].update(perSeriesAligner="ALIGN_SUMM"),
            "orchestrator-errors: conditions[].conditionThreshold.aggregations[].perSeriesAligner: 'ALIGN_SUMM' is not one of",
        ),
        (
            "orchestrator-errors",
            lambda i: i.update(combiner="COMBINE_UNSPECIFIED"),
            "'COMBINE_UNSPECIFIED' is not one of AND",
        ),
        (
            "phase3-to-phase4-orchestrator",
            lambda i: i["serviceConfig"].update(ingressSetting=i["serviceConfig"].pop("ingressSettings")),
            "serviceConfig.ingressSetting: the API has no field 'ingressSetting' in ServiceConfig (cloudfunctions v2)",
        ),
        (
            "phase3-to-phase4-orchestrator",
            lambda i: i["eventTrigger"].update(retryPolicy="RETRY"),
            "'RETRY' is not one of RETRY_POLICY_DO_NOT_RETRY",
        ),
        (
            "nba-phase3-analytics-processors",
            lambda i: i.update(ingress="INTERNAL_ONLY"),
            "'INTERNAL_ONLY' is not one of INGRESS_TRAFFIC_ALL",
        ),
        (
            "nba-phase3-analytics-processors-push",
            lambda i: i.update(ackDeadlineSeconds="600s"),
            "'600s' is not an integer",
        ),
        (
            "metric-duplicate_rows",
            lambda i: i.update(valueType="INTEGER"),
            "'INTEGER' is not one of BOOL, DISTRIBUTION, DOUBLE, INT64",
        ),
    ],
)
def test_a_typo_in_the_program_is_caught(sdk, plan, name, change, expected):
    findings = [str(f) for f in check_plan(altered(plan, name, change)).findings]
    assert [f for f in findings if expected in f], findings


def test_the_dashboard_body_is_held_against_the_monitoring_v1_dashboard(sdk, plan):
    [dashboard] = [
        r for r in plan.resources if r.type == "gcp:monitoring/dashboard:Dashboard" and r.name == "phase3-handoff"
    ]
    coverage = check_plan([dashboard])
    assert coverage.findings == [] and coverage.fields_checked > 100 and coverage.enums_checked > 20

    def typo(text: str, old: str, new: str):
        return check_plan(
            altered(plan, dashboard.name, lambda i: i.update(dashboardJson=i["dashboardJson"].replace(old, new, 1)))
        ).findings

    [enum] = typo(dashboard.inputs["dashboardJson"], '"plotType": "STACKED_BAR"', '"plotType": "BARS"')
    assert str(enum).startswith(
        "phase3-handoff: mosaicLayout.tiles[].widget.xyChart.dataSets[].plotType: 'BARS' is not one of HEATMAP, LINE"
    )
    [field] = typo(dashboard.inputs["dashboardJson"], '"legendTemplate"', '"legend"')
    assert (
        str(field)
        == "phase3-handoff: mosaicLayout.tiles[].widget.xyChart.dataSets[].legend: the API has no field 'legend' in DataSet (monitoring v1)"
    )


def test_a_resource_type_nobody_mapped_is_reported(sdk, plan):
    [topic] = [r for r in plan.resources if r.type == "gcp:pubsub/topic:Topic"][:1]
    stranger = dataclasses.replace(topic, type="gcp:pubsub/schema:Schema", name="a-schema")
    [finding] = check_plan([stranger]).findings
    assert str(finding) == "a-schema: gcp:pubsub/schema:Schema: no API definition is mapped for this resource type"


def test_the_filter_checker_knows_every_log_entry_field_and_severity(sdk):
    """The filter lint's tables of LogEntry fields are Google's, not a guess: a field
    missing here would be reported as a typo in a filter that Logging accepts."""
    from phase3ops.filters.vocabulary import LOG_ENTRY_FIELDS, SEVERITIES
    from tests.support.conformance.sdk import json_fields, messages

    logging = messages("logging", "v2")
    assert set(json_fields(logging.LogEntry)) <= set(LOG_ENTRY_FIELDS)
    assert set(LOG_ENTRY_FIELDS) - set(json_fields(logging.LogEntry)) <= {
        "apphubDestination",
        "apphubSource",
    }  # newer than this SDK
    assert list(SEVERITIES) == [e.name for e in logging.LogEntry.SeverityValueValuesEnum]
    for field, message in (
        ("httpRequest", logging.HttpRequest),
        ("operation", logging.LogEntryOperation),
        ("sourceLocation", logging.LogEntrySourceLocation),
        ("split", logging.LogSplit),
        ("metadata", logging.MonitoredResourceMetadata),
    ):
        known = LOG_ENTRY_FIELDS[field]
        assert isinstance(known, dict), field
        assert set(known) == set(json_fields(message)), field


def test_the_slo_dashboard_body_is_held_against_the_monitoring_v1_dashboard(sdk, plan):
    [dashboard] = [
        r for r in plan.resources if r.type == "gcp:monitoring/dashboard:Dashboard" and r.name == "phase3-slos"
    ]
    coverage = check_plan([dashboard])
    assert coverage.findings == [] and coverage.fields_checked > 30
    broken = altered(
        plan, dashboard.name, lambda i: i.update(dashboardJson=i["dashboardJson"].replace('"BELOW"', '"UNDER"', 1))
    )
    [finding] = check_plan(broken).findings
    assert "direction: 'UNDER' is not one of" in str(finding)


def test_the_slos_and_their_service_are_held_against_the_api(sdk, plan):
    slos = [
        r for r in plan.resources if r.type in ("gcp:monitoring/slo:Slo", "gcp:monitoring/customService:CustomService")
    ]
    assert len(slos) == 5
    coverage = check_plan(slos)
    assert coverage.findings == [] and coverage.fields_checked >= 5 * 4
    [slo] = [r for r in slos if r.type == "gcp:monitoring/slo:Slo"][:1]
    renamed = altered(plan, slo.name, lambda i: i["requestBasedSli"]["goodTotalRatio"].update(goodFilter="x"))
    assert [str(f) for f in check_plan(renamed).findings if "goodFilter" in str(f)]
