"""Re-requesting a processor run the ledger is missing: once per repair, bounded, logged.

Every repair in the system this replaces was a hand-run scheduler job or a
hand-published message. Here `reconcile --fix` asks the analytics service
for the missing run through the topic and message Phase 2 uses
(`{"game_date", "processors": [one], "correlation_id"}` on the Phase 3
trigger topic). Each request is an attempt document created before the
publish, create-only: two reconciliations racing send one request, and a
run already requested is not asked for again until it has had its time
(the push's request timeout and lock wait, twice over). A pair is asked for
at most `max_repairs_per_date_processor` times; after that it stays on the
ledger for a person.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from phase3ops.checks.ledger import Gap
from phase3ops.spec.pipeline import PipelineSpec

log = logging.getLogger("phase3ops.repairs")

REQUESTING, SENT, FAILED = "requesting", "sent", "failed"
REQUESTED, IN_FLIGHT, EXHAUSTED, RACED, NOT_SENT, OVER_BUDGET = (
    "requested",
    "in_flight",
    "exhausted",
    "requested_elsewhere",
    "not_sent",
    "over_budget",
)


@dataclass(frozen=True)
class RepairResult:
    game_date: dt.date
    processor: str
    outcome: str  # requested | in_flight | exhausted | requested_elsewhere | not_sent | over_budget
    detail: str
    attempt: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome not in (EXHAUSTED, NOT_SENT)


def attempt_id(game_date: dt.date, processor: str, attempt: int) -> str:
    return f"{game_date.isoformat()}_{processor}_{attempt}"


class ProcessorRepairs:
    def __init__(
        self,
        spec: PipelineSpec,
        client: firestore.Client,
        publisher: Any,
        project: str,
        publish_timeout_seconds: float = 30.0,
    ):
        if spec.expected_work is None:
            raise ValueError("pipeline.yaml declares no expected_work: there is no ledger to repair")
        self.spec = spec
        self.limits = spec.expected_work
        self._attempts = client.collection(spec.orchestrator.collections.repairs)
        self._client = client
        self._publisher = publisher
        self._topic = publisher.topic_path(project, spec.topics.phase3_trigger)
        self._timeout = publish_timeout_seconds
        analytics = spec.analytics
        # A requested run may wait for the lock, then run up to the push's timeout, then be retried once.
        self.patience = dt.timedelta(seconds=2 * (analytics.request_timeout_seconds + analytics.lock.max_wait_seconds))

    def request(self, gaps: Sequence[Gap], now: dt.datetime, run_id: str) -> list[RepairResult]:
        """One request per missing pair, oldest first, at most `max_repairs_per_run` sent."""
        results, sent = [], 0
        for gap in gaps:
            if sent >= self.limits.max_repairs_per_run:
                results.append(
                    RepairResult(
                        gap.game_date,
                        gap.processor,
                        OVER_BUDGET,
                        f"not requested: this run's budget of {self.limits.max_repairs_per_run} is spent",
                    )
                )
                continue
            result = self._request_one(gap, now, run_id)
            sent += result.outcome == REQUESTED
            log.info(
                "repair %s",
                result.outcome,
                extra={
                    "event": "repair_" + result.outcome,
                    "game_date": str(gap.game_date),
                    "processor": gap.processor,
                    "attempt": result.attempt,
                    "detail": result.detail,
                    "run_id": run_id,
                },
            )
            results.append(result)
        return results

    def attempts(self, game_date: dt.date, processor: str) -> list[dict[str, Any]]:
        refs = [
            self._attempts.document(attempt_id(game_date, processor, n))
            for n in range(1, self.limits.max_repairs_per_date_processor + 1)
        ]
        found = [data for s in self._client.get_all(refs) if (data := s.to_dict()) is not None]  # the ones that exist
        return sorted(found, key=lambda a: a["attempt"])

    def _request_one(self, gap: Gap, now: dt.datetime, run_id: str) -> RepairResult:
        day, processor = gap.game_date, gap.processor
        earlier = self.attempts(day, processor)
        last = earlier[-1] if earlier else None
        if last is not None and last["state"] != FAILED and _time(last) + self.patience > now:
            return RepairResult(
                day,
                processor,
                IN_FLIGHT,
                f"run requested at {_time(last):%m-%d %H:%M %Z} (attempt {last['attempt']}); waiting for it until {_time(last) + self.patience:%H:%M}",
                last["attempt"],
            )
        attempt = len(earlier) + 1
        if attempt > self.limits.max_repairs_per_date_processor:
            return RepairResult(
                day,
                processor,
                EXHAUSTED,
                f"requested {len(earlier)} times without a run: fix the processor, or phase3ops skip {day} {processor} --reason ...",
                len(earlier),
            )
        correlation_id = f"repair-{run_id}-{day}-{processor}-{attempt}"
        ref = self._attempts.document(attempt_id(day, processor, attempt))
        try:
            ref.create(
                {
                    "game_date": day.isoformat(),
                    "processor": processor,
                    "attempt": attempt,
                    "state": REQUESTING,
                    "requested_at": now,
                    "created_at": firestore.SERVER_TIMESTAMP,
                    "run_id": run_id,
                    "correlation_id": correlation_id,
                    "gap": {"due": gap.due, "mode": gap.mode, "status": gap.status},
                }
            )
        except gexc.AlreadyExists:
            return RepairResult(
                day, processor, RACED, f"attempt {attempt} was requested by another reconciliation just now", attempt
            )
        message = {"game_date": day.isoformat(), "processors": [processor], "correlation_id": correlation_id}
        try:
            message_id = self._publisher.publish(
                self._topic, json.dumps(message).encode("utf-8"), repair_of=f"{day}_{processor}"
            ).result(timeout=self._timeout)
        except Exception as exc:
            ref.update({"state": FAILED, "error": f"{type(exc).__name__}: {exc}"[:1000]})
            return RepairResult(
                day, processor, NOT_SENT, f"publishing the request failed: {type(exc).__name__}: {exc}", attempt
            )
        ref.update({"state": SENT, "message_id": message_id})
        return RepairResult(
            day,
            processor,
            REQUESTED,
            f"asked {self.spec.analytics.service_name} to run it (attempt {attempt}, message {message_id})",
            attempt,
        )


def _time(attempt: dict[str, Any]) -> dt.datetime:
    return attempt["requested_at"]
