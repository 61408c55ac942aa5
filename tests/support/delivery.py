"""Deliver Pub/Sub messages from the emulator to a CloudEvent handler the way Eventarc does.

Eventarc pushes each message of the function's trigger subscription as a
`google.cloud.pubsub.topic.v1.messagePublished` CloudEvent and, with
RETRY_POLICY_RETRY, redelivers it when the function fails. This driver pulls
from a real subscription on the Pub/Sub emulator, builds the same CloudEvent
data, acknowledges when the handler returns and nacks (so the emulator
redelivers) when it raises. `copies` delivers every message more than once,
as Pub/Sub's at-least-once delivery may.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1


def cloud_event_data(received, subscription_path: str) -> dict[str, Any]:
    message = received.message
    return {
        "message": {
            "data": base64.b64encode(message.data).decode("ascii"),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": message.publish_time.isoformat().replace("+00:00", "Z"),
        },
        "subscription": subscription_path,
    }


@dataclass
class DeliveryStats:
    handled: int = 0
    failures: list[str] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)


def deliver_all(
    subscriber: pubsub_v1.SubscriberClient,
    subscription_path: str,
    handler: Callable[[dict[str, Any]], Any],
    copies: int = 1,
    idle_seconds: float = 1.0,
    retry_delay: float = 0.2,
    max_seconds: float = 60.0,
    on_failure: Callable[[Exception], None] | None = None,
) -> DeliveryStats:
    """Deliver until the subscription stays empty for `idle_seconds`.

    `on_failure` runs after a failed delivery, before the redelivery; tests
    use it to let time pass on their clock as Pub/Sub's retry backoff would.
    """
    stats = DeliveryStats()
    deadline = time.monotonic() + max_seconds
    idle_since = time.monotonic()
    while time.monotonic() < deadline:
        response = subscriber.pull(
            request={"subscription": subscription_path, "max_messages": 50, "return_immediately": True}, timeout=10
        )
        if not response.received_messages:
            if time.monotonic() - idle_since >= idle_seconds:
                return stats
            time.sleep(0.05)
            continue
        idle_since = time.monotonic()
        for received in response.received_messages:
            data = cloud_event_data(received, subscription_path)
            try:
                for _ in range(copies):
                    handler(data)
                    stats.handled += 1
            except Exception as exc:  # what Eventarc sees as a failed invocation
                stats.failures.append(f"{type(exc).__name__}: {exc}")
                if on_failure is not None:
                    on_failure(exc)
                subscriber.modify_ack_deadline(
                    request={"subscription": subscription_path, "ack_ids": [received.ack_id], "ack_deadline_seconds": 0}
                )
                time.sleep(retry_delay)
            else:
                subscriber.acknowledge(request={"subscription": subscription_path, "ack_ids": [received.ack_id]})
                stats.acked.add(received.message.message_id)
    raise AssertionError(f"messages still arriving after {max_seconds}s; failures: {stats.failures[-5:]}")


def pull_everything(
    subscriber: pubsub_v1.SubscriberClient,
    subscription_path: str,
    settle_seconds: float = 1.0,
    at_least: int = 0,
    timeout: float = 60.0,
) -> list:
    """Every message on a subscription (acked): wait for `at_least` of them, then
    keep pulling until nothing more arrives for `settle_seconds`."""
    messages: list = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        response = subscriber.pull(
            request={"subscription": subscription_path, "max_messages": 100, "return_immediately": True}, timeout=10
        )
        if response.received_messages:
            messages.extend(r.message for r in response.received_messages)
            subscriber.acknowledge(
                request={"subscription": subscription_path, "ack_ids": [r.ack_id for r in response.received_messages]}
            )
            quiet_since = time.monotonic()
        elif len(messages) >= at_least and time.monotonic() - quiet_since >= settle_seconds:
            return messages
        else:
            time.sleep(0.05)
    if len(messages) < at_least:
        return messages
    raise AssertionError(f"messages still arriving on {subscription_path} after {timeout}s")
