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
        pass
    return path


def ensure_orchestrator_topology(publisher, project: str, spec: PipelineSpec) -> None:
    """The topics between the phases (the functions' Eventarc triggers create their own subscriptions)."""
    for topic in (spec.topics.phase3_trigger, spec.topics.completion, spec.topics.phase4_trigger):
        ensure_topic(publisher, project, topic)


def ensure_push_endpoint(subscriber, project: str, subscription: str, push_endpoint: str) -> bool:
    """Point an existing push subscription at `push_endpoint`; True if it had to change.

    Creating a subscription that exists leaves its old endpoint in place: a
    service restarted on a new port would never receive a message.
    """
    path = subscriber.subscription_path(project, subscription)
    current = subscriber.get_subscription(request={"subscription": path}).push_config.push_endpoint
    if current == push_endpoint:
        return False
    subscriber.modify_push_config(request={"subscription": path, "push_config": {"push_endpoint": push_endpoint}})
    return True
