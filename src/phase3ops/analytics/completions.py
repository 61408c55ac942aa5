"""Publish a processor's completion message, in the reference pipeline's wire format.

The message is what the reference's unified publisher sends for every
analytics run (class name as `processor_name`, `phase`, `output_dataset`,
`timestamp`, `duration_seconds`, ..., keys whose value is None dropped), so
every consumer of the completion topic reads the same format from this
service as from the processors it replaces. `metadata.lock_token` is this
project's addition: the fencing token the run wrote under, which the
orchestrator uses to order runs exactly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from phase3ops.orchestrator.messages import encode_completion
from phase3ops.spec.pipeline import Processor

PHASE = "phase_3_analytics"


class CompletionPublishFailed(RuntimeError):
    pass


class CompletionPublisher:
    def __init__(self, publisher, project: str, topic: str, timeout_seconds: float = 30.0):
        self._publisher = publisher
        self._topic = publisher.topic_path(project, topic)
        self._timeout = timeout_seconds

    def publish(
        self,
        processor: Processor,
        game_date: dt.date,
        status: str,
        execution_id: str,
        correlation_id: str | None,
        record_count: int,
        duration_seconds: float,
        trigger_message_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> str:
        """`error`: a failed run's error, sent as the reference sends it (error_message, error_type)."""
        message = {
            "processor_name": processor.class_name,
            "phase": PHASE,
            "execution_id": execution_id,
            "correlation_id": correlation_id,
            "game_date": game_date.isoformat(),
            "output_table": processor.output_table,
            "output_dataset": processor.table.dataset,
            "status": status,
            "record_count": record_count,
            "records_failed": 0,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "duration_seconds": round(duration_seconds, 3),
            "trigger_source": "pubsub",
            "trigger_message_id": trigger_message_id,
            "metadata": {"is_incremental": False, **(metadata or {})},
            "error_message": error,
            "error_type": error.split(":", 1)[0] if error else None,
        }
        message = {key: value for key, value in message.items() if value is not None}
        try:
            future = self._publisher.publish(self._topic, encode_completion(message), processor=processor.name)
            return future.result(timeout=self._timeout)
        except Exception as exc:
            raise CompletionPublishFailed(
                f"publishing the completion of {processor.name} {game_date} failed: {exc}"
            ) from exc
