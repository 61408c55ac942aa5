"""Pub/Sub between the phases: the three topics the pipeline spec names, and who may publish to them.

(The functions' Eventarc triggers create their own subscriptions: the
orchestrator's on the completion topic, the receipts recorder's on the
Phase 4 topic.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options
from phase3ops.spec.pipeline import PipelineSpec

RETENTION = "604800s"  # 7 days: a day of outage can be replayed


@dataclass
class MessagingArgs:
    project: str
    pipeline: PipelineSpec
    labels: dict[str, str]
    # topic name -> {workload: member}: who publishes where (phase3ops.access declares it)
    publishers: dict[str, dict[str, pulumi.Input[str]]]


class Messaging(pulumi.ComponentResource):
    def __init__(self, name: str, args: MessagingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:Messaging", name, None, opts)
        child = child_options(self, opts)
        topics = args.pipeline.topics
        labels = {**args.labels, "component": "messaging"}

        def topic(topic_name: str) -> gcp.pubsub.Topic:
            return gcp.pubsub.Topic(
                topic_name,
                name=topic_name,
                project=args.project,
                labels=labels,
                message_retention_duration=RETENTION,
                opts=child,
            )

        self.phase3_trigger = topic(topics.phase3_trigger)
        self.completion = topic(topics.completion)
        self.phase4_trigger = topic(topics.phase4_trigger)

        by_name = {
            topics.phase3_trigger: self.phase3_trigger,
            topics.completion: self.completion,
            topics.phase4_trigger: self.phase4_trigger,
        }
        unknown = sorted(set(args.publishers) - set(by_name))
        if unknown:
            raise ValueError(f"publishers declared for topics this stack does not create: {', '.join(unknown)}")
        grants = [
            (by_name[topic_name], topic_name, member, who)
            for topic_name, members in sorted(args.publishers.items())
            for who, member in sorted(members.items())
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

        self.register_outputs(
            {
                "phase3_trigger": self.phase3_trigger.id,
                "completion": self.completion.id,
                "phase4_trigger": self.phase4_trigger.id,
            }
        )
