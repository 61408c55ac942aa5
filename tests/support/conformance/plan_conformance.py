"""Every field name and enum value the plan sends for a Google API resource, held against the API's definition.

Pulumi's mocks accept any value, so a typo in an enum (`ALIGN_SUMM`) or a
field the API does not have would pass every offline check and fail at
`pulumi up`. The plan's inputs carry the engine's camelCase names, which
are the APIs' JSON names; what differs is listed per resource type below
(Pulumi-only inputs, Pulumi's renames and flattenings). A resource type the
walker does not know is reported, so new kinds of resources cannot slip
past it. A resource whose body is one JSON document input (a dashboard's
`dashboardJson`) is walked as the parsed document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.support.conformance.sdk import field_kinds, json_fields, messages


@dataclass(frozen=True)
class ApiResource:
    api: str
    version: str
    message: str  # the request body's message class
    pulumi_only: frozenset[str] = frozenset()  # inputs that are URL parts or provider behaviour, not body fields
    renames: dict[str, str] = field(default_factory=dict)  # plan path -> API path ("[]" marks list elements)
    json_body: str | None = None  # the input that holds the whole request body as JSON text


_CONTAINER_RENAMES = {"envs": "env", "commands": "command"}


def _container_renames(prefix: str) -> dict[str, str]:
    return {f"{prefix}containers[].{plan}": f"{prefix}containers[].{api}" for plan, api in _CONTAINER_RENAMES.items()}


_BINDING = {"member": "members[]"}
RESOURCES: dict[str, ApiResource] = {
    "gcp:pubsub/topic:Topic": ApiResource("pubsub", "v1", "Topic", frozenset({"project"})),
    "gcp:pubsub/subscription:Subscription": ApiResource("pubsub", "v1", "Subscription", frozenset({"project"})),
    "gcp:cloudfunctionsv2/function:Function": ApiResource(
        "cloudfunctions", "v2", "Function", frozenset({"project", "location"})
    ),
    "gcp:cloudrunv2/service:Service": ApiResource(
        "run",
        "v2",
        "GoogleCloudRunV2Service",
        frozenset({"project", "location", "deletionProtection"}),
        {**_container_renames("template."), "template.containers[].ports": "template.containers[].ports[]"},
    ),
    "gcp:cloudrunv2/job:Job": ApiResource(
        "run",
        "v2",
        "GoogleCloudRunV2Job",
        frozenset({"project", "location", "deletionProtection"}),
        _container_renames("template.template."),
    ),
    "gcp:cloudscheduler/job:Job": ApiResource("cloudscheduler", "v1", "Job", frozenset({"project", "region"})),
    "gcp:monitoring/alertPolicy:AlertPolicy": ApiResource("monitoring", "v3", "AlertPolicy", frozenset({"project"})),
    "gcp:monitoring/notificationChannel:NotificationChannel": ApiResource(
        "monitoring", "v3", "NotificationChannel", frozenset({"project", "sensitiveLabels"})
    ),
    "gcp:monitoring/metricDescriptor:MetricDescriptor": ApiResource(
        "monitoring", "v3", "MetricDescriptor", frozenset({"project"})
    ),
    "gcp:monitoring/dashboard:Dashboard": ApiResource(
        "monitoring", "v1", "Dashboard", frozenset({"project", "deletionPolicy"}), json_body="dashboardJson"
    ),
    "gcp:logging/metric:Metric": ApiResource("logging", "v2", "LogMetric", frozenset({"project"})),
    # serviceId and sloId are query parameters of the create calls; the SLO's service is its parent.
    "gcp:monitoring/customService:CustomService": ApiResource(
        "monitoring", "v3", "Service", frozenset({"project", "serviceId"})
    ),
    "gcp:monitoring/slo:Slo": ApiResource(
        "monitoring",
        "v3",
        "ServiceLevelObjective",
        frozenset({"project", "service", "sloId", "rollingPeriodDays"}),
        {"requestBasedSli": "serviceLevelIndicator.requestBased"},
    ),
    "gcp:firestore/field:Field": ApiResource(
        "firestore", "v1", "GoogleFirestoreAdminV1Field", frozenset({"project", "database", "collection", "field"})
    ),
    "gcp:storage/bucket:Bucket": ApiResource(
        "storage",
        "v1",
        "Bucket",
        frozenset({"project", "forceDestroy"}),
        {
            "uniformBucketLevelAccess": "iamConfiguration.uniformBucketLevelAccess.enabled",
            "publicAccessPrevention": "iamConfiguration.publicAccessPrevention",
        },
    ),
    "gcp:storage/bucketObject:BucketObject": ApiResource("storage", "v1", "Object", frozenset({"source"})),
    "gcp:serviceaccount/account:Account": ApiResource(
        "iam",
        "v1",
        "CreateServiceAccountRequest",
        frozenset({"project"}),
        {"displayName": "serviceAccount.displayName", "description": "serviceAccount.description"},
    ),
    "gcp:bigquery/dataset:Dataset": ApiResource(
        "bigquery",
        "v2",
        "Dataset",
        frozenset({"project", "deleteContentsOnDestroy"}),
        {"datasetId": "datasetReference.datasetId"},
    ),
    "gcp:projects/service:Service": ApiResource(
        "serviceusage",
        "v1",
        "EnableServiceRequest",
        frozenset({"project", "service", "disableOnDestroy", "disableDependentServices"}),
    ),
    "gcp:projects/iAMMember:IAMMember": ApiResource(
        "cloudresourcemanager", "v1", "Binding", frozenset({"project"}), _BINDING
    ),
    "gcp:serviceaccount/iAMMember:IAMMember": ApiResource(
        "iam", "v1", "Binding", frozenset({"serviceAccountId"}), _BINDING
    ),
    "gcp:bigquery/datasetIamMember:DatasetIamMember": ApiResource(
        "bigquery", "v2", "Binding", frozenset({"project", "datasetId"}), _BINDING
    ),
    "gcp:pubsub/topicIAMMember:TopicIAMMember": ApiResource(
        "pubsub", "v1", "Binding", frozenset({"project", "topic"}), _BINDING
    ),
    "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember": ApiResource(
        "pubsub", "v1", "Binding", frozenset({"project", "subscription"}), _BINDING
    ),
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": ApiResource(
        "run", "v2", "GoogleIamV1Binding", frozenset({"project", "location", "name"}), _BINDING
    ),
    "gcp:cloudrunv2/jobIamMember:JobIamMember": ApiResource(
        "run", "v2", "GoogleIamV1Binding", frozenset({"project", "location", "name"}), _BINDING
    ),
    "gcp:artifactregistry/repository:Repository": ApiResource(
        "artifactregistry", "v1", "Repository", frozenset({"project", "location", "repositoryId"})
    ),
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": ApiResource(
        "artifactregistry", "v1", "Binding", frozenset({"project", "location", "repository"}), _BINDING
    ),
    "gcp:storage/bucketIAMMember:BucketIAMMember": ApiResource(
        "storage", "v1", "Policy.BindingsValueListEntry", frozenset({"bucket"}), _BINDING
    ),
    # The request names the service in its parent (projects/<number>/services/<service>): nothing else to hold.
    "gcp:projects/serviceIdentity:ServiceIdentity": ApiResource(
        "serviceusage",
        "v1beta1",
        "ServiceusageServicesGenerateServiceIdentityRequest",
        frozenset({"project", "service"}),
    ),
}
# Resource types in the plan that no Google API body describes, and why.
NOT_GOOGLE_APIS = {
    "time:index/sleep:Sleep": "a wait in the Pulumi engine, no cloud API",
}


@dataclass(frozen=True)
class Finding:
    resource: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.path}: {self.problem}"


@dataclass
class Coverage:
    findings: list[Finding] = field(default_factory=list)
    fields_checked: int = 0
    enums_checked: int = 0
    types: set[str] = field(default_factory=set)


def check_plan(resources: Iterable[Any]) -> Coverage:
    """Walk every custom resource's inputs (`PlannedResource`s) against its API message."""
    proto = field_kinds()
    coverage = Coverage()
    for resource in resources:
        if not resource.custom or resource.type.startswith("pulumi:") or resource.type in NOT_GOOGLE_APIS:
            continue
        spec = RESOURCES.get(resource.type)
        if spec is None:
            coverage.findings.append(
                Finding(resource.name, resource.type, "no API definition is mapped for this resource type")
            )
            continue
        root: Any = messages(spec.api, spec.version)
        for part in spec.message.split("."):  # a nested message: "Policy.BindingsValueListEntry"
            root = getattr(root, part)
        coverage.types.add(resource.type)
        inputs = {k: v for k, v in resource.inputs.items() if k not in spec.pulumi_only}
        if spec.json_body is not None:
            # Any value: json.loads refuses a missing or non-text body with the TypeError reported below.
            body: Any = inputs.get(spec.json_body)
            try:
                inputs = {
                    **{k: v for k, v in inputs.items() if k != spec.json_body},
                    **json.loads(body),
                }
            except (TypeError, ValueError) as exc:
                coverage.findings.append(Finding(resource.name, spec.json_body, f"not a JSON document: {exc}"))
                continue
        _walk(proto, coverage, resource.name, spec, root, inputs, "", "")
    return coverage


def _api_field(proto, root, api_path: str):
    """(field, None, its message) for an API path ('a.b[].c'), or (None, the first missing name, where)."""
    current, found = root, None
    for part in api_path.replace("[]", "").split("."):
        fields = json_fields(current) if current is not None else {}
        if part not in fields:
            return None, part, current
        found = fields[part]
        current = found.type if isinstance(found, proto.MessageField) else None
    return found, None, current


def _is_map(message_class) -> bool:
    return list(json_fields(message_class)) == ["additionalProperties"]


def _walk(
    proto, coverage: Coverage, name: str, spec: ApiResource, root, value: dict, plan_prefix: str, api_prefix: str
) -> None:
    for key, item in value.items():
        plan_path = f"{plan_prefix}.{key}" if plan_prefix else key
        api_path = spec.renames.get(plan_path, f"{api_prefix}.{key}" if api_prefix else key)
        found, missing, owner = _api_field(proto, root, api_path)
        if found is None:
            where = owner.__name__ if owner is not None else "a scalar field"
            coverage.findings.append(
                Finding(name, plan_path, f"the API has no field {missing!r} in {where} ({spec.api} {spec.version})")
            )
            continue
        coverage.fields_checked += 1
        items = item if isinstance(item, list) else [item]
        if isinstance(found, proto.EnumField):
            allowed = set(found.type.names())
            for entry in items:
                coverage.enums_checked += 1
                if entry not in allowed or str(entry).endswith("_UNSPECIFIED"):
                    choices = ", ".join(sorted(n for n in allowed if not n.endswith("_UNSPECIFIED")))
                    coverage.findings.append(Finding(name, plan_path, f"{entry!r} is not one of {choices}"))
        elif isinstance(found, proto.MessageField) and not _is_map(found.type):
            listed = isinstance(item, list)
            for entry in items:
                if isinstance(entry, dict):
                    inner_api = api_path if api_path.endswith("[]") or not listed else f"{api_path}[]"
                    _walk(
                        proto, coverage, name, spec, root, entry, f"{plan_path}[]" if listed else plan_path, inner_api
                    )
                else:
                    coverage.findings.append(
                        Finding(name, plan_path, f"{entry!r} where the API expects a {found.type.__name__} object")
                    )
        elif isinstance(found, proto.IntegerField):
            for entry in items:
                if isinstance(entry, bool) or not isinstance(entry, (int, float)) or not float(entry).is_integer():
                    coverage.findings.append(Finding(name, plan_path, f"{entry!r} is not an integer"))
        elif isinstance(found, proto.BooleanField):
            for entry in items:
                if not isinstance(entry, bool):
                    coverage.findings.append(Finding(name, plan_path, f"{entry!r} is not a boolean"))
