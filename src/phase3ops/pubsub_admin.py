"""Idempotent creation of the topics and subscriptions the pipeline spec names.

In the cloud the infra program creates them; locally (emulators, tests, the local
environment) this does, with the same names, so the code under test finds exactly
what it finds in production.
"""

from __future__ import annotations

from google.api_core import exceptions as gexc

from phase3ops.spec.pipeline import PipelineSpec


def ensure_topic(publisher, project: str, topic: str) -> str:
    path = publisher.topic_path(project, topic)
    try:
        publisher.create_topic(request={"name": path})
    except gexc.AlreadyExists:
        pass
    return path


def ensure_subscription(
    subscriber,
    project: str,
    topic: str,
    subscription: str,
    push_endpoint: str | None = None,
    ack_deadline_seconds: int = 60,
) -> str:
    path = subscriber.subscription_path(project, subscription)
    request = {
        "name": path,
        "topic": f"projects/{project}/topics/{topic}",
        "ack_deadline_seconds": ack_deadline_seconds,
    }
    if push_endpoint:
        request["push_config"] = {"push_endpoint": push_endpoint}
    try:
        subscriber.create_subscription(request=request)
    except gexc.AlreadyExists:
        # Creating it again would leave the old endpoint: a service restarted on a new port would
        # never receive a message. Point it where it must deliver now.
        if push_endpoint and push_endpoint_of(subscriber, project, subscription) != push_endpoint:
            subscriber.modify_push_config(
                request={"subscription": path, "push_config": {"push_endpoint": push_endpoint}}
            )
    return path


def push_endpoint_of(subscriber, project: str, subscription: str) -> str | None:
    """Where the subscription pushes ("" for a pull subscription); None when it does not exist."""
    try:
        found = subscriber.get_subscription(
            request={"subscription": subscriber.subscription_path(project, subscription)}
        )
    except gexc.NotFound:
        return None
    return found.push_config.push_endpoint


def ensure_orchestrator_topology(publisher, project: str, spec: PipelineSpec) -> None:
    """The topics between the phases (the functions' Eventarc triggers create their own subscriptions)."""
    for topic in (spec.topics.phase3_trigger, spec.topics.completion, spec.topics.phase4_trigger):
        ensure_topic(publisher, project, topic)
