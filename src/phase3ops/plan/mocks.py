"""What the cloud would answer, offline: computed outputs per resource type, and invokes.

An invoke the plan does not know fails the plan instead of returning None:
Pulumi's default mock answers every call with an empty result, which lets a
program run on with None where the real project number should be.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

MOCK_PROJECT_NUMBER = "123456789012"


class UnmockedInvoke(RuntimeError):
    pass


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _project(inputs: dict[str, Any], default: str) -> str:
    return inputs.get("project") or default


def _account(args: MockResourceArgs, project: str) -> dict[str, Any]:
    email = f"{args.inputs.get('accountId', args.name)}@{project}.iam.gserviceaccount.com"
    return {"email": email, "member": f"serviceAccount:{email}", "name": f"projects/{project}/serviceAccounts/{email}"}


def _topic(args: MockResourceArgs, project: str) -> dict[str, Any]:
    return {"id": f"projects/{project}/topics/{args.inputs.get('name', args.name)}"}


def _subscription(args: MockResourceArgs, project: str) -> dict[str, Any]:
    return {"id": f"projects/{project}/subscriptions/{args.inputs.get('name', args.name)}"}


def _function(args: MockResourceArgs, project: str) -> dict[str, Any]:
    name = args.inputs.get("name", args.name)
    service = dict(args.inputs.get("serviceConfig") or {})
    service["uri"] = f"https://{name}-{_short(project)}.a.run.app"
    service["service"] = f"projects/{project}/locations/{args.inputs.get('location')}/services/{name}"
    return {
        "serviceConfig": service,
        "url": f"https://{args.inputs.get('location')}-{project}.cloudfunctions.net/{name}",
        "state": "ACTIVE",
    }


def _run_service(args: MockResourceArgs, project: str) -> dict[str, Any]:
    name = args.inputs.get("name", args.name)
    return {"uri": f"https://{name}-{_short(project)}.a.run.app", "latestReadyRevision": f"{name}-00001-mock"}


def _channel(args: MockResourceArgs, project: str) -> dict[str, Any]:
    return {"name": f"projects/{project}/notificationChannels/{int(_short(args.name), 16) % 10**12}"}


def _policy(args: MockResourceArgs, project: str) -> dict[str, Any]:
    return {"name": f"projects/{project}/alertPolicies/{int(_short(args.name), 16) % 10**12}"}


def _bucket_object(args: MockResourceArgs, project: str) -> dict[str, Any]:
    return {"generation": 1, "md5hash": "mock", "outputName": args.inputs.get("name", args.name)}


def _service_identity(args: MockResourceArgs, project: str) -> dict[str, Any]:
    agent = str(args.inputs.get("service", "")).split(".")[0]
    email = f"service-{MOCK_PROJECT_NUMBER}@gcp-sa-{agent}.iam.gserviceaccount.com"
    return {"email": email, "member": f"serviceAccount:{email}"}


def _repository(args: MockResourceArgs, project: str) -> dict[str, Any]:
    location, repository = args.inputs.get("location"), args.inputs.get("repositoryId", args.name)
    return {"id": f"projects/{project}/locations/{location}/repositories/{repository}", "name": repository}


COMPUTED: dict[str, Callable[[MockResourceArgs, str], dict[str, Any]]] = {
    "gcp:projects/serviceIdentity:ServiceIdentity": _service_identity,
    "gcp:artifactregistry/repository:Repository": _repository,
    "gcp:serviceaccount/account:Account": _account,
    "gcp:pubsub/topic:Topic": _topic,
    "gcp:pubsub/subscription:Subscription": _subscription,
    "gcp:cloudfunctionsv2/function:Function": _function,
    "gcp:cloudrunv2/service:Service": _run_service,
    "gcp:monitoring/notificationChannel:NotificationChannel": _channel,
    "gcp:monitoring/alertPolicy:AlertPolicy": _policy,
    "gcp:storage/bucketObject:BucketObject": _bucket_object,
}


def _dataset(args: MockResourceArgs, project: str) -> dict[str, Any]:
    return {"id": f"projects/{project}/datasets/{args.inputs.get('datasetId', args.name)}"}


def _metric_descriptor(args: MockResourceArgs, project: str) -> dict[str, Any]:
    return {"name": f"projects/{project}/metricDescriptors/{args.inputs.get('type')}"}


def _dashboard(args: MockResourceArgs, project: str) -> dict[str, Any]:
    # The provider's id; the dashboard's own id is Cloud Monitoring's choice.
    return {"id": f"projects/{project}/dashboards/{_short(args.name)}"}


COMPUTED["gcp:bigquery/dataset:Dataset"] = _dataset
COMPUTED["gcp:monitoring/dashboard:Dashboard"] = _dashboard
COMPUTED["gcp:monitoring/metricDescriptor:MetricDescriptor"] = _metric_descriptor

INVOKES: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "gcp:organizations/getProject:getProject": lambda args, project: {
        "number": MOCK_PROJECT_NUMBER,
        "projectId": args.get("projectId") or project,
        "name": args.get("projectId") or project,
    },
    # The plan cannot know whether Phase 2's dataset exists: it assumes so and
    # lists it among the preconditions; `pulumi preview` stops if it does not.
    "gcp:bigquery/getDataset:getDataset": lambda args, project: {
        "datasetId": args["datasetId"],
        "project": args.get("project") or project,
        "id": f"projects/{args.get('project') or project}/datasets/{args['datasetId']}",
        "location": "us-west2",
    },
}


class PlanMocks(Mocks):
    def __init__(self, default_project: str):
        self._project = default_project

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        project = _project(args.inputs, self._project)
        state = {"name": args.inputs.get("name", args.name), **args.inputs}
        computed = COMPUTED.get(args.typ)
        if computed is not None:
            state.update(computed(args, project))
        return state.get("id") or f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]  # pulumi's monitor also takes a bare dict; its annotation lists only the tuple
        answer = INVOKES.get(args.token)
        if answer is None:
            raise UnmockedInvoke(
                f"the program called {args.token}, which the offline plan cannot answer; "
                "add it to phase3ops.plan.mocks.INVOKES"
            )
        return answer(dict(args.args), self._project)
