"""Pub/Sub between the phases: the three topics the pipeline spec names, and
the orchestrator's receipts subscription on the Phase 4 topic."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from phase3ops.spec.pipeline import PipelineSpec

RETENTION = "604800s"  # 7 days: a day of outage can be replayed


@dataclass
class MessagingArgs:
    project: str
    pipeline: PipelineSpec
    labels: dict[str, str]
    orchestrator_member: pulumi.Input[str]
    analytics_member: pulumi.Input[str]
    checks_member: pulumi.Input[str]


class Messaging(pulumi.ComponentResource):
    def __init__(self, name: str, args: MessagingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:Messaging", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topics = args.pipeline.topics
        labels = {**args.labels, "component": "messaging"}

        def topic(topic_name: str) -> gcp.pubsub.Topic:
            return gcp.pubsub.Topic(
                topic_name, name=topic_name, project=args.project, labels=labels, message_retention_duration=RETENTION, opts=child
            )

        self.phase3_trigger = topic(topics.phase3_trigger)
        self.completion = topic(topics.completion)
        self.phase4_trigger = topic(topics.phase4_trigger)

        # The analytics service publishes completions; the orchestrator (and the
        # reconciliation, through the same code) publishes Phase 4 triggers.
        grants = [
            (self.completion, topics.completion, args.analytics_member, "analytics"),
            (self.phase4_trigger, topics.phase4_trigger, args.orchestrator_member, "orchestrator"),
            (self.phase4_trigger, topics.phase4_trigger, args.checks_member, "checks"),
        ]
        for target, topic_name, member, who in grants:
            gcp.pubsub.TopicIAMMember(
                f"{topic_name}-publisher-{who}",
                topic=target.name,
                project=args.project,
                role="roles/pubsub.publisher",
                member=member,
                opts=child,
            )

        receipts_name = args.pipeline.orchestrator.receipts_subscription
        self.receipts = None
        if receipts_name:
            # Created with the topic, before any trigger is published: Pub/Sub keeps
            # a message only for subscriptions that existed when it was published.
            self.receipts = gcp.pubsub.Subscription(
                receipts_name,
                name=receipts_name,
                project=args.project,
                topic=self.phase4_trigger.id,
                ack_deadline_seconds=60,
                message_retention_duration=RETENTION,
                expiration_policy={"ttl": ""},  # never expire, even in quiet weeks
                labels=labels,
                opts=child,
            )
            for member, who in ((args.orchestrator_member, "orchestrator"), (args.checks_member, "checks")):
                gcp.pubsub.SubscriptionIAMMember(
                    f"{receipts_name}-subscriber-{who}",
                    subscription=self.receipts.name,
                    project=args.project,
                    role="roles/pubsub.subscriber",
                    member=member,
                    opts=child,
                )
        self.register_outputs(
            {
                "phase3_trigger": self.phase3_trigger.id,
                "completion": self.completion.id,
                "phase4_trigger": self.phase4_trigger.id,
            }
        )
