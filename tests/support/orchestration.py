"""Driving orchestrator instances by hand: events, redelivery until acknowledged, races on threads."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.cloud import firestore

from phase3ops.orchestrator.orchestrator import RetryLater
from phase3ops.orchestrator.phase4_publisher import PublishFailed
from tests.support.completions import completion

UPGC = "upcoming_player_game_context"


def completing_last(spec) -> list[str]:
    """The processors in an order where only the last completion makes the date ready:
    the overnight rule's critical processors last, upcoming_player_game_context at the end."""
    critical = next(m for m in spec.modes if m.name == "overnight").critical
    return [name for name in spec.processor_names if name not in critical] + [n for n in critical if n != UPGC] + [UPGC]


def direct_event(processor: str, game_date, message_id: str | None = None, **fields: Any) -> dict:
    """A CloudEvent's data for a message handed straight to the handler (no subscription)."""
    return {
        "message": {
            "data": base64.b64encode(json.dumps(completion(processor, game_date, **fields)).encode()).decode(),
            "messageId": message_id or uuid.uuid4().hex,
            "publishTime": dt.datetime.now(dt.UTC).isoformat(),
        }
    }


def handle_until_acked(
    instance, event, attempts: int = 200, delay: float = 0.1, retry_on: tuple = (RetryLater, PublishFailed)
):
    """Hand an event to the handler as Pub/Sub would: again after a moment while it raises."""
    for _ in range(attempts):
        try:
            return instance.handle_event(event)
        except retry_on:
            time.sleep(delay)
    raise AssertionError(f"still not acknowledged after {attempts} deliveries")


def trial_dates(past: dt.date, count: int) -> list[dt.date]:
    """One game date per trial, all in the past."""
    return [past - dt.timedelta(days=offset) for offset in range(count)]


def record_all_but_last(pipeline, instance, dates) -> dict[dt.date, dict]:
    """Deliver the first four completions of every date; return each date's completing event."""
    *first, final = completing_last(pipeline.spec)
    finals = {}
    for day in dates:
        for name in first:
            assert instance.handle_event(direct_event(name, day)).outcome == "waiting"
        finals[day] = direct_event(final, day)
    return finals


def trigger_ids(spec, dates, tables=None) -> list[str]:
    return [
        f"{spec.name}:{day}:{table}" for day in dates for table in tables or [p.output_table for p in spec.processors]
    ]


def wait_for_receipts(pipeline, dates, timeout: float = 20.0, tables=None) -> None:
    ids = trigger_ids(pipeline.spec, dates, tables)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(pipeline.receipt(trigger_id) for trigger_id in ids):
            return
        time.sleep(0.1)
    raise AssertionError("the receipts recorder did not record every published message")


def race_at_once(handlers: list[Callable[[], Any]]) -> list[Any]:
    """Run the handlers at the same instant on threads; return what each returned or raised."""
    barrier = threading.Barrier(len(handlers))
    results: list[Any] = [None] * len(handlers)

    def run(index: int, handler) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = handler()
        except Exception as exc:  # what Eventarc sees as a failed invocation
            results[index] = exc

    run_to_the_end([threading.Thread(target=run, args=(i, h)) for i, h in enumerate(handlers)])
    return results


def run_to_the_end(threads: Sequence[threading.Thread], timeout: float = 120.0) -> None:
    """Start the trial's threads and wait for every one: a handling still running after the test
    stopped listening could publish a duplicate nobody counts, so one that outlives `timeout` fails
    the test."""
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    running = [thread.name for thread in threads if thread.is_alive()]
    assert not running, f"{len(running)} of the trial's handlings still running after {timeout:.0f} s"


def instances(pipeline, count: int, **clients: Any) -> list:
    """Function instances of their own, each with its own clients."""
    return [
        pipeline.orchestrator(
            firestore_client=firestore.Client(project=pipeline.project),
            publisher_client=clients.get("publisher_client") or pubsub_v1.PublisherClient(),
        )
        for _ in range(count)
    ]
