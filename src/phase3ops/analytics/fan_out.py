"""One processor per push request: a trigger naming several processors (or none) is split.

A push request must end before Pub/Sub's ack deadline (600 s at most, and
also the push request timeout), or Pub/Sub delivers it again while it still
runs. Running five processors in one request made that a matter of luck. So
the service runs a processor only for a message that names exactly one; any
other message is republished to the same topic as one message per
processor (same date and correlation id), each its own request, its own
deadline and its own retries. A split that fails part-way raises, and its
redelivery splits again: the processor runs it adds are idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any


class FanOutFailed(RuntimeError):
    pass


class PerProcessorFanOut:
    def __init__(self, publisher, project: str, topic: str, timeout_seconds: float = 30.0):
        self._publisher = publisher
        self._topic = publisher.topic_path(project, topic)
        self._timeout = timeout_seconds

    def split(
        self,
        game_date: dt.date,
        processors: Sequence[str],
        correlation_id: str | None,
        split_from: str,
        allow_shrink: bool = False,
    ) -> list[str]:
        futures = []
        for name in processors:
            message: dict[str, Any] = {
                "game_date": game_date.isoformat(),
                "processors": [name],
                "correlation_id": correlation_id,
            }
            if allow_shrink:
                message["allow_shrink"] = True
            futures.append(
                self._publisher.publish(self._topic, json.dumps(message).encode("utf-8"), split_from=split_from)
            )
        try:
            return [future.result(timeout=self._timeout) for future in futures]
        except Exception as exc:
            raise FanOutFailed(f"splitting {split_from} into one message per processor failed: {exc}") from exc
