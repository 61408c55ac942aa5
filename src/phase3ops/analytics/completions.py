"""Publish a processor's completion message (the orchestrator's input contract)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from phase3ops.orchestrator.messages import encode_completion


class CompletionPublishFailed(RuntimeError):
    pass


class CompletionPublisher:
    def __init__(self, publisher, project: str, topic: str, timeout_seconds: float = 30.0):
        self._publisher = publisher
        self._topic = publisher.topic_path(project, topic)
        self._timeout = timeout_seconds

    def publish(
        self,
        processor: str,
        output_table: str,
        game_date: dt.date,
        status: str,
        execution_id: str,
        correlation_id: str | None,
        record_count: int,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        message = {
            "processor_name": processor,
            "game_date": game_date.isoformat(),
            "status": status,
            "execution_id": execution_id,
            "correlation_id": correlation_id,
            "output_table": output_table,
            "record_count": record_count,
            "metadata": metadata or {},
        }
        try:
            future = self._publisher.publish(self._topic, encode_completion(message), processor=processor)
            return future.result(timeout=self._timeout)
        except Exception as exc:
            raise CompletionPublishFailed(f"publishing the completion of {processor} {game_date} failed: {exc}") from exc
