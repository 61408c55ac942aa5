"""Publishing Phase 4 triggers, and reading back which ones really went out.

A process can die after Pub/Sub accepted a trigger but before the claim was
marked published. Re-publishing then would send a second message, so before
finishing someone else's stale claim the orchestrator drains its *receipts*
subscription on the Phase 4 topic: every trigger that was published shows up
there, and its claim is marked published from that evidence.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Iterator

from google.api_core import exceptions as gexc

log = logging.getLogger(__name__)


class PublishFailed(RuntimeError):
    """Pub/Sub did not confirm the publish; the trigger may or may not exist."""


@dataclass(frozen=True)
class Receipt:
    trigger_id: str
    game_date: str
    message_id: str


def trigger_id_for(pipeline_name: str, game_date: str) -> str:
    """Stable per game date, so Phase 4 can drop a duplicate by id."""
    return f"{pipeline_name}:{game_date}"


class Phase4Publisher:
    def __init__(
        self,
        publisher,
        project: str,
        topic: str,
        timeout_seconds: float,
        subscriber=None,
        receipts_subscription: str | None = None,
    ):
        self._publisher = publisher
        self._topic_path = publisher.topic_path(project, topic)
        self._timeout = timeout_seconds
        self._subscriber = subscriber
        self._receipts_path = (
            subscriber.subscription_path(project, receipts_subscription)
            if subscriber is not None and receipts_subscription
            else None
        )

    @property
    def can_confirm(self) -> bool:
        return self._receipts_path is not None

    def publish(self, payload: dict[str, Any]) -> str:
        data = json.dumps(payload, sort_keys=True).encode("utf-8")
        attributes = {"trigger_id": payload["trigger_id"], "game_date": payload["game_date"]}
        try:
            return self._publisher.publish(self._topic_path, data, **attributes).result(timeout=self._timeout)
        except Exception as exc:  # the future raises anything from grpc to a timeout
            raise PublishFailed(f"publishing {payload['trigger_id']} to {self._topic_path} failed: {exc}") from exc

    def drain_receipts(self, max_messages: int = 100) -> Iterator[Receipt]:
        """Yield every receipt waiting on the subscription and acknowledge it.

        Acknowledging only after the caller consumed the receipt means a crash
        mid-way leaves the receipt for the next drain.
        """
        if self._receipts_path is None:
            return
        empty_pulls = 0
        # A pull may come back empty while messages exist; two in a row is our evidence of "drained".
        while empty_pulls < 2:
            try:
                response = self._subscriber.pull(
                    request={"subscription": self._receipts_path, "max_messages": max_messages, "return_immediately": True},
                    timeout=self._timeout,
                )
            except gexc.NotFound:
                log.error(
                    "receipts subscription does not exist; stale claims will be re-published",
                    extra={"event": "receipts_unavailable", "subscription": self._receipts_path},
                )
                return
            if not response.received_messages:
                empty_pulls += 1
                continue
            empty_pulls = 0
            for received in response.received_messages:
                attributes = received.message.attributes
                if "trigger_id" in attributes and "game_date" in attributes:
                    yield Receipt(attributes["trigger_id"], attributes["game_date"], received.message.message_id)
            self._subscriber.acknowledge(
                request={"subscription": self._receipts_path, "ack_ids": [r.ack_id for r in response.received_messages]}
            )
