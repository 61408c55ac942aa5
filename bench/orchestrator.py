"""Orchestrator throughput and latency under contention, side by side with the reference design.

Run: .venv/bin/python bench/orchestrator.py [--writers 5] [--dates 100]

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
  once), the shipped readiness rules and the shipped data gates, over a
  DuckDB warehouse holding every processor's rows for the dates (so the
  event that makes a date ready pays its one gate query).

An event that fails (the reference's transaction exhausted its retries;
this design's ClaimInFlight while another delivery publishes the date) is
delivered again after 20 ms, as Pub/Sub would after its backoff; its
latency runs until it succeeds. The receipts recorder is not in the loop:
it runs beside the orchestrator, off the hot path.

From the same run it also prints, for this design, the Firestore RPCs per
event (counted on the clients' gRPC channels, not timed) against the
design's floor (one create and one batched read per completion, plus the
claim and its mark once per date), the median round trip of a single RPC on
the emulator, and the p50 latency per event as a multiple of
(RPCs per event x that round trip): how close the design runs to what its
RPCs cost.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime as dt
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from google.cloud.firestore_v1.document import DocumentReference

warnings.filterwarnings("ignore", category=FutureWarning)

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(REPO_ROOT))

from phase3ops import emulators  # noqa: E402
from phase3ops.cloud import publisher_client  # noqa: E402
from phase3ops.orchestrator.factory import build_orchestrator  # noqa: E402
from phase3ops.pubsub_admin import ensure_orchestrator_topology  # noqa: E402
from phase3ops.spec.pipeline import load_pipeline_spec  # noqa: E402
from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse  # noqa: E402
from tests.support.game_days import processed_day  # noqa: E402

TARGET_RATIO = 10.0
TARGET_P99_MS = 150.0
TARGET_FLOOR_MULTIPLE = 1.5
REDELIVERY_DELAY = 0.02
WARM_UP_DATES = 8
FOLLOW_UPS: list[int] = []


class RpcCounter:
    """A gRPC client interceptor that counts every call (unary and streaming) by method."""

    def __init__(self):
        import grpc

        self.calls: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        counter = self

        class Interceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
            def intercept_unary_unary(self, continuation, details, request):
                counter.count(details.method)
                return continuation(details, request)

            def intercept_unary_stream(self, continuation, details, request):
                counter.count(details.method)
                return continuation(details, request)

        self.interceptor = Interceptor()

    def count(self, method: str) -> None:
        with self._lock:
            self.calls[method.rsplit("/", 1)[-1]] += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def counted_firestore_client(project: str, counter: RpcCounter):
    """A Firestore client whose (emulator) channel counts its calls."""
    import grpc
    from google.cloud import firestore

    client = firestore.Client(project=project)
    plain = client._emulator_channel
    client._emulator_channel = lambda transport: grpc.intercept_channel(plain(transport), counter.interceptor)  # type: ignore[method-assign]  # wraps the client's own channel factory to count its calls
    return client


def warm_emulator(project: str, threads: int = 5, operations: int = 400) -> None:
    """A cold emulator (a JVM whose JIT has not compiled its hot paths) answers twice as slowly as a
    warm one; warm it with the kinds of calls both designs make before either is measured."""
    from google.cloud import firestore

    def work(worker: int) -> None:
        client = firestore.Client(project=project)
        collection = client.collection(f"warm-{worker}")
        for i in range(operations):
            ref = collection.document(f"d{i % 50}-{i}")
            ref.create({"i": i, "runs": [{"n": i}]})
            list(client.get_all([collection.document(f"d{i % 50}-{j}") for j in range(max(0, i - 5), i + 1)]))
            ref.update({"i": i + 1})

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def median_round_trips(project: str, samples: int = 200) -> dict[str, float]:
    """Seconds for one RPC of each kind this design makes, alone on the emulator: a point read, a
    create of a record-sized document (Commit) and a batched read of a date's six documents
    (BatchGetDocuments)."""
    from google.cloud import firestore

    client = firestore.Client(project=project)
    collection = client.collection("bench_round_trip")
    record = {
        "game_date": "2025-01-01",
        "processor": "p",
        "status": "success",
        "runs": [{"execution_id": "e", "status": "success"}],
    }
    six = [collection.document(f"doc-{i}") for i in range(6)]
    calls = {
        "point read (Get)": lambda i: collection.document("probe").get(),
        "create (Commit)": lambda i: collection.document(f"create-{i}-{uuid.uuid4().hex[:6]}").create(record),
        "batched read of 6 (BatchGetDocuments)": lambda i: list(client.get_all(six)),
    }
    medians = {}
    for name, call in calls.items():
        call(-1)  # the channel's set-up is not a round trip
        timings = []
        for i in range(samples):
            started = time.perf_counter()
            call(i)
            timings.append(time.perf_counter() - started)
        medians[name] = statistics.median(timings)
    return medians


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
            "publishTime": dt.datetime.now(dt.UTC).isoformat(),
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
        # A sync collection's documents are sync; the library annotates the shared base class.
        ref = cast("DocumentReference", self._collection.document(payload["game_date"]))
        expected = self._expected

        @self._firestore.transactional
        def update(transaction) -> bool:
            snapshot = ref.get(transaction=transaction)
            data: dict[str, Any] | None = snapshot.to_dict()
            if data is None:  # the date's first event
                data = {"processors": {}, "_completed_count": 0, "_triggered": False}
            data["processors"][payload["processor_name"]] = payload["execution_id"]
            data["_completed_count"] = data["_completed_count"] + 1
            should_trigger = data["_completed_count"] >= expected and not data["_triggered"]
            if should_trigger:
                data["_triggered"] = True
            transaction.set(ref, data)
            return should_trigger

        if update(self._db.transaction()):
            for table in self._tables:
                message = {
                    "source_table": table,
                    "analysis_date": payload["game_date"],
                    "game_date": payload["game_date"],
                    "success": True,
                }
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
    """Trigger messages on the Phase 4 topic (follow-ups, for tables whose completion came after the date was
    decided, are counted apart: `FOLLOW_UPS`)."""
    total, empty = 0, 0
    while empty < 3:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 100, "return_immediately": True}, timeout=10
        )
        if not response.received_messages:
            empty += 1
            time.sleep(0.1)
            continue
        empty = 0
        follow_ups = sum(1 for r in response.received_messages if json.loads(r.message.data).get("is_follow_up"))
        FOLLOW_UPS.append(follow_ups)
        total += len(response.received_messages) - follow_ups
        subscriber.acknowledge(
            request={"subscription": subscription, "ack_ids": [r.ack_id for r in response.received_messages]}
        )
    return total


def main() -> int:
    logging.disable(logging.WARNING)  # the decisions of old, overdue dates would flood the report
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--writers", type=int, default=5, help="concurrent writers (processors), at most the spec's five"
    )
    # 100 dates: 500 events per design, so the p99 is the fifth-slowest event, not (of 200) the second.
    parser.add_argument("--dates", type=int, default=100, help="game dates per design")
    args = parser.parse_args()

    import os

    spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
    if not 1 <= args.writers <= len(spec.processors):
        parser.error(f"--writers must be between 1 and {len(spec.processors)} (one per processor), got {args.writers}")
    if args.dates < 1:
        parser.error(f"--dates must be at least 1, got {args.dates}")
    processors = list(spec.processor_names[: args.writers])
    first = dt.date(2025, 10, 1)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-orchestrator-"))
    started = emulators.start_both(log_dir)
    try:
        os.environ.update({**started[emulators.FIRESTORE].env, **started[emulators.PUBSUB].env})
        import google.cloud.pubsub_v1 as pubsub_v1

        from phase3ops.pubsub_admin import ensure_subscription

        # This design first, then the reference: the reference's transactions can leave the emulator's
        # lock table busy for minutes, which must not land on the other design's measurement.
        warm_emulator(f"bench-warm-{uuid.uuid4().hex[:6]}")
        results = {}
        for index, name in ((1, "per-processor + claim (this)"), (0, "single-document RMW (reference)")):
            project = f"bench-{index}-{uuid.uuid4().hex[:6]}"
            publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
            ensure_orchestrator_topology(publisher, project, spec)
            listener = ensure_subscription(subscriber, project, spec.topics.phase4_trigger, "bench-listener")
            # Each design gets its own block of dates so neither sees the other's documents.
            dates = [first - dt.timedelta(days=index * 1000 + d) for d in range(args.dates)]
            counter = RpcCounter()
            warm_up_dates = [first + dt.timedelta(days=10 * index + 1 + d) for d in range(WARM_UP_DATES)]
            if index == 0:
                make = lambda: ReferenceOrchestrator(project, spec, publisher_client()).handle_event  # noqa: E731
            else:
                warehouse = DuckDBWarehouse(log_dir / "warehouse.duckdb")
                for day in [*warm_up_dates, *dates]:
                    processed_day(warehouse, spec, day, games=2)  # the data the gates look at

                def make():
                    return build_orchestrator(
                        spec,
                        project,
                        publisher_client=publisher_client(),
                        firestore_client=counted_firestore_client(project, counter),
                        warehouse=warehouse,
                    ).handle_event

            # Warm-up dates per design, not measured: channel set-up and the emulator's JIT warming up
            # (a cold JVM doubles every latency) are not what we compare.
            run_design(name, make, processors, warm_up_dates, lambda: 0)
            count_messages(subscriber, listener)
            counter.calls.clear()
            results[index] = run_design(name, make, processors, dates, lambda: count_messages(subscriber, listener))
            if index == 1:
                rpcs = counter.calls.copy()
                round_trips = median_round_trips(project)
    finally:
        for emulator in started.values():
            emulator.stop()

    reference, this = results[0], results[1]
    events = len(processors) * args.dates
    print(
        f"orchestrator benchmark: {len(processors)} concurrent writers x {args.dates} game dates = {events} events per design"
    )
    print("Firestore and Pub/Sub emulators on this machine; latency is per event, including redeliveries\n")
    print(f"{'design':34} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed attempts':>16} {'phase4 msgs':>12}")
    for r in (reference, this):
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
    print(
        f"exactly one Phase 4 message per (date, table) ({args.dates * len(spec.processors)}): {'yes' if ok_triggers else f'NO ({this.triggers})'}"
        f"; follow-ups for completions after a date's decision: {sum(FOLLOW_UPS)}"
    )
    print(f"(statistics: p50 of this design {statistics.median(this.latencies) * 1000:.1f} ms)")

    per_event = sum(rpcs.values()) / events
    floor = 2 + 2 / len(
        processors
    )  # create + batched read per event; claim + mark per date (one completion per writer)
    gated_floor = 2 + 3 / len(processors)  # ... and the claim's messages, written once its gates passed
    round_trip = round_trips["point read (Get)"]
    by_kind = {
        "Commit": round_trips["create (Commit)"],
        "BatchGetDocuments": round_trips["batched read of 6 (BatchGetDocuments)"],
    }
    own_mix = sum(n * by_kind.get(method, round_trip) for method, n in rpcs.items()) / events
    p50 = statistics.median(this.latencies)
    multiple = p50 / (per_event * round_trip)
    print(
        f"\nFirestore RPCs per event (this design, counted): {per_event:.2f}; the floor: {floor:.2f}, with the gates' "
        f"write of the claim's messages {gated_floor:.2f} ({', '.join(f'{name} {n}' for name, n in sorted(rpcs.items()))})"
    )
    print(
        "median single-RPC round trips on the emulator: "
        + ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in round_trips.items())
    )
    print(
        f"p50 per event / (RPCs per event x point-read round trip): {multiple:.2f}x (aim <= {TARGET_FLOOR_MULTIPLE}x: "
        f"{'met' if multiple <= TARGET_FLOOR_MULTIPLE else 'NOT met'})"
    )
    print(
        f"p50 per event / the same RPCs each at its own kind's round trip ({own_mix * 1000:.1f} ms): {p50 / own_mix:.2f}x"
    )
    return 0 if ok_ratio and ok_p99 and ok_triggers else 1


if __name__ == "__main__":
    sys.exit(main())
