"""Resources this program would create under names that may already exist: adopt them once, or the create fails.

The program reuses the replaced pipeline's names (its topics, the analytics
service, the orchestrator function, the analytics dataset) so that the
processors and Phase 4, which do not change on the day, keep working; and the
image repository exists before the first `up` because the build pushed to it. A
first `pulumi up` in a project where they exist fails with "already exists".
For each such resource in the plan this gives the command that checks
whether it exists and, if it does, prints the `pulumi import` that adopts it
under the program's own name and parent (a resource imported at the root
would not be the one the program declares, and the next `up` would try to
create it again). The import ids are the forms pulumi-gcp documents.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from phase3ops.plan.runner import PlannedResource, PlanResult


@dataclass(frozen=True)
class Adoptable:
    exists: str  # a command that succeeds when the resource exists
    import_id: str


def _templates(resource: PlannedResource, project: str) -> Adoptable | None:
    inputs = resource.inputs
    name, location = inputs.get("name"), inputs.get("location")
    kind = resource.type
    if kind == "gcp:pubsub/topic:Topic":
        return Adoptable(
            f"gcloud pubsub topics describe {name} --project {project}", f"projects/{project}/topics/{name}"
        )
    if kind == "gcp:pubsub/subscription:Subscription":
        return Adoptable(
            f"gcloud pubsub subscriptions describe {name} --project {project}",
            f"projects/{project}/subscriptions/{name}",
        )
    if kind == "gcp:cloudfunctionsv2/function:Function":
        return Adoptable(
            f"gcloud functions describe {name} --gen2 --region {location} --project {project}",
            f"projects/{project}/locations/{location}/functions/{name}",
        )
    if kind == "gcp:cloudrunv2/service:Service":
        return Adoptable(
            f"gcloud run services describe {name} --region {location} --project {project}",
            f"projects/{project}/locations/{location}/services/{name}",
        )
    if kind == "gcp:cloudrunv2/job:Job":
        return Adoptable(
            f"gcloud run jobs describe {name} --region {location} --project {project}",
            f"projects/{project}/locations/{location}/jobs/{name}",
        )
    if kind == "gcp:artifactregistry/repository:Repository":  # the build's precondition creates it first
        repository = inputs.get("repositoryId")
        return Adoptable(
            f"gcloud artifacts repositories describe {repository} --location {location} --project {project}",
            f"projects/{project}/locations/{location}/repositories/{repository}",
        )
    if kind == "gcp:bigquery/dataset:Dataset":
        dataset = inputs.get("datasetId")
        return Adoptable(f"bq show --dataset {project}:{dataset}", f"projects/{project}/datasets/{dataset}")
    return None


@dataclass(frozen=True)
class Adoption:
    resource: PlannedResource
    exists: str
    import_command: str

    @property
    def command(self) -> str:
        """Prints the import when the resource exists, nothing otherwise."""
        return f"{self.exists} >/dev/null 2>&1 && echo {shlex.quote(self.import_command)}"


def adoptions(result: PlanResult, project: str) -> list[Adoption]:
    found = []
    for resource in result.resources:
        adoptable = _templates(resource, project) if resource.custom else None
        if adoptable is None:
            continue
        parent = f" --parent {shlex.quote(resource.parent)}" if resource.parent else ""
        protect = " --protect" if resource.protect else ""
        found.append(
            Adoption(
                resource,
                adoptable.exists,
                f"pulumi import {resource.type} {resource.name} {adoptable.import_id}{parent}{protect} --yes",
            )
        )
    return found


def adoption_script(result: PlanResult, project: str) -> str:
    """One line per resource: prints its `pulumi import` if a resource of that name exists."""
    lines = [
        "# Adopt what already exists under the names this stack creates (`| sh` prints the imports to run).",
        *(adoption.command for adoption in adoptions(result, project)),
    ]
    return "\n".join(lines)
