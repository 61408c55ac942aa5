"""Orchestrator throughput and latency under contention, side by side with the reference design.

Run: .venv/bin/python bench/orchestrator.py [--writers 5] [--dates 40]

Starts its own Firestore and Pub/Sub emulators, then for each design has
`writers` threads (one per processor, each with its own clients, like five
function instances) deliver one completion per game date, all writers going
through the same dates at the same time, so the completions of a date arrive
within moments of each other. Both designs publish their Phase 4 trigger to
the Pub/Sub emulator.

There is deliberately no "release the five completions of a date at the
same instant" mode: the emulator's transaction locks do not resolve the
read-then-write deadlock that mode provokes in the reference design (real
Firestore aborts one transaction), so the reference stalls for minutes and
the numbers would measure the emulator, not the design.

- reference: one document per game date, read-modify-written in a
  transaction per event (a processor map plus a stored `_completed_count`
  and `_triggered` flag), then, when the count reaches five, one Phase 4
  message per source table, published one after the other (as the reference
  does since it adopted the per-table contract).
- this orchestrator: `Orchestrator.handle_event`, the code the function runs,
  with the shipped per-table contract (five messages per date, published at
  once) and the shipped readiness rules.

An event that fails (the reference's transaction exhausted its retries;
this design's ClaimInFlight while another delivery publishes the date) is
delivered again after 20 ms, as Pub/Sub would after its backoff; its
latency runs until it succeeds. The receipts recorder is not in the loop:
it runs beside the orchestrator, off the hot path.
"""

from __future__ import annotations

import argparse
import base64
import logging
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

from phase3ops import emulators  # noqa: E402
from phase3ops.cloud import publisher_client  # noqa: E402
from phase3ops.orchestrator.factory import build_orchestrator  # noqa: E402
from phase3ops.pubsub_admin import ensure_orchestrator_topology  # noqa: E402
from phase3ops.spec.pipeline import load_pipeline_spec  # noqa: E402

TARGET_RATIO = 10.0
TARGET_P99_MS = 150.0
REDELIVERY_DELAY = 0.02


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    failed_attempts: int = 0
    wall_seconds: float = 0.0
    triggers: int = 0

    @property
    def events_per_second(self) -> float:
        return len(self.latencies) / self.wall_seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def event_for(processor: str, game_date: dt.date) -> dict:
    payload = {
        "processor_name": processor,
        "game_date": game_date.isoformat(),
        "status": "success",
        "execution_id": uuid.uuid4().hex,
        "correlation_id": "bench",
        "output_table": processor,
        "record_count": 100,
    }
    return {
        "message": {
            "data": base64.b64encode(json.dumps(payload).encode()).decode(),
            "messageId": uuid.uuid4().hex,
            "publishTime": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
    }


class ReferenceOrchestrator:
    """The design this project replaces: one document per date, read-modify-write per event."""

    def __init__(self, project: str, spec, publisher):
        from google.cloud import firestore

        self._firestore = firestore
        self._db = firestore.Client(project=project)
        self._collection = self._db.collection("reference_phase3_completion")
        self._publisher = publisher
        self._topic = publisher.topic_path(project, spec.topics.phase4_trigger)
        self._expected = len(spec.processors)
        self._tables = [p.output_table for p in spec.processors]

    def handle_event(self, event: dict) -> None:
        payload = json.loads(base64.b64decode(event["message"]["data"]))
        ref = self._collection.document(payload["game_date"])
        expected = self._expected

        @self._firestore.transactional
        def update(transaction) -> bool:
            snapshot = ref.get(transaction=transaction)
            data = snapshot.to_dict() if snapshot.exists else {"processors": {}, "_completed_count": 0, "_triggered": False}
            data["processors"][payload["processor_name"]] = payload["execution_id"]
            data["_completed_count"] = data["_completed_count"] + 1
            should_trigger = data["_completed_count"] >= expected and not data["_triggered"]
            if should_trigger:
                data["_triggered"] = True
            transaction.set(ref, data)
            return should_trigger

        if update(self._db.transaction()):
            for table in self._tables:
                message = {"source_table": table, "analysis_date": payload["game_date"], "game_date": payload["game_date"], "success": True}
                self._publisher.publish(self._topic, json.dumps(message).encode()).result(30)


def run_design(name: str, make_handler, processors: list[str], dates: list[dt.date], count_triggers) -> Result:
    result = Result(name)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(processor: str) -> None:
        handler = make_handler()
        try:
            for game_date in dates:
                event = event_for(processor, game_date)
                started = time.perf_counter()
                while True:
                    try:
                        handler(event)
                        break
                    except Exception:  # Pub/Sub redelivers after its backoff
                        with lock:
                            result.failed_attempts += 1
                        time.sleep(REDELIVERY_DELAY)
                elapsed = time.perf_counter() - started
                with lock:
                    result.latencies.append(elapsed)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in processors]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    result.triggers = count_triggers()
    return result


def count_messages(subscriber, subscription: str) -> int:
    total, empty = 0, 0
    while empty < 3:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 100, "return_immediately": True}, timeout=10)
        if not response.received_messages:
            empty += 1
            time.sleep(0.1)
            continue
        empty = 0
        total += len(response.received_messages)
        subscriber.acknowledge(request={"subscription": subscription, "ack_ids": [r.ack_id for r in response.received_messages]})
    return total


def main() -> int:
    logging.disable(logging.WARNING)  # the decisions of old, overdue dates would flood the report
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=5, help="concurrent writers (processors), at most the spec's five")
    parser.add_argument("--dates", type=int, default=40, help="game dates per design")
    args = parser.parse_args()

    import os

    spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
    processors = list(spec.processor_names[: args.writers])
    first = dt.date(2025, 10, 1)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-orchestrator-"))
    started = emulators.start_both(log_dir)
    try:
        os.environ.update({**started[emulators.FIRESTORE].env, **started[emulators.PUBSUB].env})
        from google.cloud import pubsub_v1

        from phase3ops.pubsub_admin import ensure_subscription

        results = []
        for index, name in enumerate(["single-document RMW (reference)", "per-processor + claim (this)"]):
            project = f"bench-{index}-{uuid.uuid4().hex[:6]}"
            publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
            ensure_orchestrator_topology(publisher, project, spec)
            listener = ensure_subscription(subscriber, project, spec.topics.phase4_trigger, "bench-listener")
            # Each design gets its own block of dates so neither sees the other's documents.
            dates = [first - dt.timedelta(days=index * 1000 + d) for d in range(args.dates)]
            if index == 0:
                make = lambda: ReferenceOrchestrator(project, spec, publisher_client()).handle_event  # noqa: E731
            else:
                make = lambda: build_orchestrator(spec, project, publisher_client=publisher_client()).handle_event  # noqa: E731
            # One warm-up date per design, not measured: channel set-up is not what we compare.
            run_design(name, make, processors, [first + dt.timedelta(days=index + 1)], lambda: 0)
            count_messages(subscriber, listener)
            results.append(run_design(name, make, processors, dates, lambda: count_messages(subscriber, listener)))
    finally:
        for emulator in started.values():
            emulator.stop()

    reference, this = results
    events = len(processors) * args.dates
    print(f"orchestrator benchmark: {len(processors)} concurrent writers x {args.dates} game dates = {events} events per design")
    print("Firestore and Pub/Sub emulators on this machine; latency is per event, including redeliveries\n")
    print(f"{'design':34} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed attempts':>16} {'phase4 msgs':>12}")
    for r in results:
        print(
            f"{r.name:34} {r.events_per_second:9.1f} {r.percentile(0.50):8.1f} {r.percentile(0.99):8.1f} "
            f"{r.failed_attempts:16d} {r.triggers:12d}"
        )
    ratio = this.events_per_second / reference.events_per_second
    p99_ratio = this.percentile(0.99) / reference.percentile(0.99)
    print(f"\nratio this/reference: throughput {ratio:.1f}x, p99 latency {p99_ratio:.3f}x")
    ok_ratio = ratio >= TARGET_RATIO
    ok_p99 = this.percentile(0.99) <= TARGET_P99_MS
    ok_triggers = this.triggers == args.dates * len(spec.processors)
    print(f"target throughput >= {TARGET_RATIO:.0f}x reference: {'met' if ok_ratio else 'NOT met'}")
    print(f"target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if ok_p99 else 'NOT met'}")
    print(f"exactly one Phase 4 message per (date, table) ({args.dates * len(spec.processors)}): {'yes' if ok_triggers else f'NO ({this.triggers})'}")
    print(f"(statistics: p50 of this design {statistics.median(this.latencies) * 1000:.1f} ms)")
    return 0 if ok_ratio and ok_p99 and ok_triggers else 1


if __name__ == "__main__":
    sys.exit(main())
