"""A push subscription that authenticates with OIDC and dead-letters what it cannot deliver.

Creates the subscription, its dead-letter topic `<topic>-dead-letter`, a
`<topic>-dead-letter-sub` subscription that keeps dead letters until someone
looks (the dead-letter alert watches it), and the grants the Pub/Sub service
agent needs: publisher on the dead-letter topic and subscriber on the source
subscription (dead-lettering), and token creator on the push identity
(signing the OIDC token: granted by default only on projects created after
April 2021, so granted here for older ones).

The ack deadline is Pub/Sub's maximum, 600 s, which is also the push request
timeout: the service's request timeout must end before it (pipeline.yaml
checks `analytics.request_timeout_seconds` against it).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options
from phase3ops.spec.pipeline import PUSH_ACK_DEADLINE_SECONDS

MAX_DELIVERY_ATTEMPTS = 5


def pubsub_service_agent(project: str) -> pulumi.Output[str]:
    number = gcp.organizations.get_project_output(project_id=project).number
    return number.apply(lambda n: f"serviceAccount:service-{n}@gcp-sa-pubsub.iam.gserviceaccount.com")


@dataclass
class PushSubscriptionArgs:
    project: str
    topic: gcp.pubsub.Topic
    topic_name: str
    subscription_name: str
    push_endpoint: pulumi.Input[str]
    push_service_account_email: pulumi.Input[str]
    audience: str
    labels: dict[str, str]
    ack_deadline_seconds: int = PUSH_ACK_DEADLINE_SECONDS


class PushSubscription(pulumi.ComponentResource):
    def __init__(self, name: str, args: PushSubscriptionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:PushSubscription", name, None, opts)
        child = child_options(self, opts)
        dead_letter_name = f"{args.topic_name}-dead-letter"
        self.dead_letter_topic = gcp.pubsub.Topic(
            dead_letter_name, name=dead_letter_name, project=args.project, labels=args.labels, opts=child
        )
        self.dead_letter_subscription = gcp.pubsub.Subscription(
            f"{dead_letter_name}-sub",
            name=f"{dead_letter_name}-sub",
            project=args.project,
            topic=self.dead_letter_topic.id,
            message_retention_duration="604800s",
            expiration_policy={"ttl": ""},
            labels=args.labels,
            opts=child,
        )
        self.subscription = gcp.pubsub.Subscription(
            args.subscription_name,
            name=args.subscription_name,
            project=args.project,
            topic=args.topic.id,
            ack_deadline_seconds=args.ack_deadline_seconds,
            push_config={
                "push_endpoint": args.push_endpoint,
                "oidc_token": {"service_account_email": args.push_service_account_email, "audience": args.audience},
            },
            dead_letter_policy={
                "dead_letter_topic": self.dead_letter_topic.id,
                "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
            },
            retry_policy={"minimum_backoff": "10s", "maximum_backoff": "600s"},
            expiration_policy={"ttl": ""},
            labels=args.labels,
            opts=child,
        )
        agent = pubsub_service_agent(args.project)
        gcp.pubsub.TopicIAMMember(
            f"{dead_letter_name}-publisher-pubsub-agent",
            topic=self.dead_letter_topic.name,
            project=args.project,
            role="roles/pubsub.publisher",
            member=agent,
            opts=child,
        )
        gcp.pubsub.SubscriptionIAMMember(
            f"{args.subscription_name}-subscriber-pubsub-agent",
            subscription=self.subscription.name,
            project=args.project,
            role="roles/pubsub.subscriber",
            member=agent,
            opts=child,
        )
        gcp.serviceaccount.IAMMember(
            f"{args.subscription_name}-token-creator-pubsub-agent",
            service_account_id=pulumi.Output.concat(
                "projects/", args.project, "/serviceAccounts/", args.push_service_account_email
            ),
            role="roles/iam.serviceAccountTokenCreator",
            member=agent,
            opts=child,
        )
        self.register_outputs({"subscription": self.subscription.id, "dead_letter_topic": self.dead_letter_topic.id})
