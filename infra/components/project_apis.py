"""The Google Cloud APIs the stack uses, enabled by the program before anything that needs them.

Never disabled on destroy: other workloads in the project may use them too.
Service Usage and Cloud Resource Manager must already be on to enable
anything (every project has them unless someone turned them off): a
precondition `phase3ops plan` lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options

APIS = (
    "artifactregistry.googleapis.com",  # the analytics image, the functions' builds
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",  # builds gen2 functions
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com",  # the functions' Pub/Sub triggers
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
)


@dataclass
class ProjectApisArgs:
    project: str
    apis: tuple[str, ...] = APIS


class ProjectApis(pulumi.ComponentResource):
    def __init__(self, name: str, args: ProjectApisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:ProjectApis", name, None, opts)
        self.services = [
            gcp.projects.Service(
                api.split(".")[0],
                project=args.project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=child_options(self, opts),
            )
            for api in args.apis
        ]
        self.register_outputs({"apis": [s.service for s in self.services]})
