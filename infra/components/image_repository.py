"""The Artifact Registry repository `phase3`: the analytics image, and the functions' builds.

Created after its API is enabled. The functions build into it
(`docker_repository`) instead of the `gcf-artifacts` repository Cloud
Functions would otherwise create for itself, so their build account writes
to this repository only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options

REPOSITORY_ID = "phase3"


def image_repository_url(project: str, region: str) -> str:
    """Where images of this repository are pushed: <region>-docker.pkg.dev/<project>/phase3."""
    return f"{region}-docker.pkg.dev/{project}/{REPOSITORY_ID}"


@dataclass
class ImageRepositoryArgs:
    project: str
    region: str
    labels: dict[str, str]


class ImageRepository(pulumi.ComponentResource):
    def __init__(self, name: str, args: ImageRepositoryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:ImageRepository", name, None, opts)
        self.repository = gcp.artifactregistry.Repository(
            REPOSITORY_ID,
            repository_id=REPOSITORY_ID,
            project=args.project,
            location=args.region,
            format="DOCKER",
            description="Phase 3 analytics image and the orchestrator functions' builds",
            labels=args.labels,
            opts=child_options(self, opts),
        )
        self.register_outputs({"id": self.repository.id})

    def grant(self, key: str, role: str, member: pulumi.Input[str], opts: pulumi.ResourceOptions | None) -> None:
        gcp.artifactregistry.RepositoryIamMember(
            f"{REPOSITORY_ID}-{key}",
            project=self.repository.project,
            location=self.repository.location,
            repository=self.repository.repository_id,
            role=role,
            member=member,
            opts=child_options(self, opts),
        )
