"""Publishing Phase 4 trigger messages, bounded in time, with an honest verdict.

Pub/Sub has no idempotent publish, and a publish the caller gave up on may
still land: `future.result(timeout=...)` does not cancel it, and the client
library's default retry keeps sending for up to 600 s. Worse, a retry of a
publish whose answer was lost sends the message twice. So every publish
here is one call, with retries explicitly off and a deadline of
`publish_timeout_seconds` (at most half the claim lease), cut to the time the
claim's lease has left: an owner paused past its lease (a GC pause, a frozen
instance) sends nothing and says so. The retry is the orchestrator's
recovery path, which first reads the receipts.

What no producer can close: gRPC sends its deadline as a relative timeout,
so a request whose bytes are delayed in the network gets a fresh deadline
when it reaches Pub/Sub, and may land after the client gave up and after the
lease. Recovery waits `receipt_grace_seconds` for such a message's receipt;
beyond that, the consumer's guard (phase4_guard.py) makes it a no-op.

An outcome is `definitive` only when Pub/Sub refused the message outright
(topic not found, permission denied, invalid argument, ...): then nothing
was sent and the claim's lease may be released at once. Anything else
(timeouts, unavailable, a retry deadline) may or may not have been
delivered; the claim keeps its lease and the recovery path decides from the
receipts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.pubsub_v1 import PublisherClient as GeneratedPublisher

from phase3ops.orchestrator.phase4_trigger import TriggerMessage

# Pub/Sub answered: the message was not accepted, and retrying will not change that.
NOTHING_SENT = (
    gexc.NotFound,
    gexc.PermissionDenied,
    gexc.Unauthenticated,
    gexc.InvalidArgument,
    gexc.FailedPrecondition,
)


# Below this, a publish would most likely run out of time in flight and leave its outcome unknown;
# better not to send it at all.
MIN_PUBLISH_SECONDS = 0.1


class PublishFailed(RuntimeError):
    """Some trigger messages were not confirmed; `definitive` when none of them can have been sent."""

    def __init__(self, message: str, definitive: bool):
        super().__init__(message)
        self.definitive = definitive


@dataclass(frozen=True)
class PublishOutcome:
    message: TriggerMessage
    message_id: str | None = None
    error: str | None = None
    definitive: bool = False  # failed, and certainly not sent

    @property
    def ok(self) -> bool:
        return self.message_id is not None


class Phase4Publisher:
    def __init__(self, publisher, project: str, topic: str, timeout_seconds: float):
        self._publisher = publisher
        self.topic_path = publisher.topic_path(project, topic)
        self.timeout_seconds = float(timeout_seconds)

    def publish_all(self, messages: Sequence[TriggerMessage], deadline: float | None = None) -> list[PublishOutcome]:
        """Publish the messages in one call, bounded by the publish timeout and by `deadline`
        (monotonic: when the caller's lease ends); one outcome per message. With no time
        left, nothing is sent and every outcome says so (definitive: certainly not sent)."""
        if not messages:
            return []
        timeout = self.timeout_seconds if deadline is None else min(self.timeout_seconds, deadline - time.monotonic())
        if timeout < MIN_PUBLISH_SECONDS:
            reason = f"not sent: the claim's lease had {max(timeout, 0):.2f} s left, less than a publish needs"
            return [PublishOutcome(m, error=reason, definitive=True) for m in messages]
        request = {
            "topic": self.topic_path,
            "messages": [{"data": m.data, "attributes": m.attributes} for m in messages],
        }
        try:
            response = GeneratedPublisher.publish(self._publisher, request=request, retry=None, timeout=timeout)
        except Exception as exc:  # anything from grpc to a deadline
            return [PublishOutcome(m, error=_describe(exc), definitive=_nothing_sent(exc)) for m in messages]
        return [PublishOutcome(m, message_id=message_id) for m, message_id in zip(messages, response.message_ids)]


def _nothing_sent(exc: BaseException) -> bool:
    return isinstance(exc, NOTHING_SENT)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
