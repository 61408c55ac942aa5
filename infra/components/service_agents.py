"""Google's service agents the stack relies on, created up front and then given time to settle.

On a fresh project Eventarc's service agent is created only when something
first needs it, and its permissions take minutes to propagate: the first
function deploy then fails with "Permission denied while using the Eventarc
Service Agent ... it may take a few minutes" (terraform-provider-google#25294,
pulumi-gcp#1290, whose workaround is to create the identity and grant it
`roles/eventarc.serviceAgent` first). Pub/Sub's agent signs the push and
trigger tokens.

`ready` is one wait that starts when the agents and their grant exist: what
needs them depends on it. It sleeps on the first create only
(time.Sleep's create_duration), never on later updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as time

from infra.components import child_options

PROPAGATION_WAIT_SECONDS = 180  # what public modules wait for Eventarc; Google documents no figure


@dataclass
class ServiceAgentsArgs:
    project: str
    wait_seconds: int = PROPAGATION_WAIT_SECONDS


class ServiceAgents(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServiceAgentsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:ServiceAgents", name, None, opts)
        child = child_options(self, opts)
        self.eventarc = gcp.projects.ServiceIdentity(
            "eventarc-agent", project=args.project, service="eventarc.googleapis.com", opts=child
        )
        self.pubsub = gcp.projects.ServiceIdentity(
            "pubsub-agent", project=args.project, service="pubsub.googleapis.com", opts=child
        )
        eventarc_role = gcp.projects.IAMMember(
            "eventarc-agent-service-agent",
            project=args.project,
            role="roles/eventarc.serviceAgent",
            member=self.eventarc.member,
            opts=child,
        )
        self.ready = time.Sleep(
            "service-agents-propagate",
            create_duration=f"{args.wait_seconds}s",
            opts=child_options(self, opts, self.eventarc, self.pubsub, eventarc_role),
        )
        self.register_outputs({"eventarc": self.eventarc.email, "pubsub": self.pubsub.email})
