"""The races and faults that broke exactly-once in review, each repeated over many trials.

Every trial is a game date of its own; each test asserts, over all of them,
zero duplicate and zero lost Phase 4 messages: exactly one per (date, source
table). Real emulators, real publishes, the receipts recorder running on the
Phase 4 topic as its Eventarc trigger would.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

from phase3ops.orchestrator.orchestrator import ClaimInFlight, RetryLater
from phase3ops.orchestrator.phase4_publisher import PublishFailed
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.grpc_faults import FailedCall
from tests.support.orchestration import completing_last, direct_event, handle_until_acked
from tests.support.pipelines import PAST, exactly_once, make_pipeline, per_date_and_table, short_lease_spec_file

pytestmark = [pytest.mark.emulators, pytest.mark.minutes_long(seconds=14)]
TRIALS = 20
LEASE = 1  # seconds: recovery shows within a second
PUBLISH_TIMEOUT = 0.5
GRACE = 0.5  # receipt_grace_seconds: how long after a lease recovery waits for receipts


@pytest.fixture
def race(gcp_project, tmp_path):
    spec = load_pipeline_spec(
        short_lease_spec_file(tmp_path, lease=LEASE, publish_timeout=PUBLISH_TIMEOUT, receipt_grace=GRACE)
    )
    pipeline = make_pipeline(gcp_project, spec)
    yield pipeline
    pipeline.stop()


def trial_dates(count: int = TRIALS) -> list[dt.date]:
    return [PAST - dt.timedelta(days=offset) for offset in range(count)]


def record_all_but_last(pipeline, instance, dates) -> dict[dt.date, dict]:
    """Deliver the first four completions of every date; return each date's completing event."""
    *first, final = completing_last(pipeline.spec)
    finals = {}
    for day in dates:
        for name in first:
            assert instance.handle_event(direct_event(name, day)).outcome == "waiting"
        finals[day] = direct_event(final, day)
    return finals


def wait_for_receipts(pipeline, dates, timeout: float = 20.0) -> None:
    ids = [f"{pipeline.spec.name}:{day}:{p.output_table}" for day in dates for p in pipeline.spec.processors]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(pipeline.receipt(trigger_id) for trigger_id in ids):
            return
        time.sleep(0.1)
    raise AssertionError("the receipts recorder did not record every published message")


def race_at_once(handlers: list) -> list[Any]:
    """Run the handlers at the same instant on threads; return what each returned or raised."""
    barrier = threading.Barrier(len(handlers))
    results: list[Any] = [None] * len(handlers)

    def run(index: int, handler) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = handler()
        except Exception as exc:  # what Eventarc sees as a failed invocation
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, h)) for i, h in enumerate(handlers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def instances(pipeline, count: int) -> list:
    """Function instances of their own, each with its own clients."""
    return [
        pipeline.orchestrator(
            firestore_client=firestore.Client(project=pipeline.project), publisher_client=pubsub_v1.PublisherClient()
        )
        for _ in range(count)
    ]


# -- 1a: a crash after publishing, then a transient error in the recovery step --------------


def test_a_transient_error_in_the_confirm_step_then_redelivery_sends_nothing_twice(race):
    orchestrator = race.orchestrator()
    dates = trial_dates()
    crashed, blipped = set(), set()
    publish_all, recover = orchestrator.publisher.publish_all, orchestrator.claims.recover

    def publish_then_crash(messages, deadline=None):
        outcomes = publish_all(messages, deadline)
        if messages[0].game_date not in crashed:
            crashed.add(messages[0].game_date)
            raise RuntimeError("instance crashed between publish and mark")
        return outcomes

    def recover_after_a_blip(game_date, owner):
        if game_date not in blipped:
            blipped.add(game_date)
            raise gexc.ServiceUnavailable("Firestore unavailable for a moment")
        return recover(game_date, owner)

    orchestrator.publisher.publish_all = publish_then_crash
    orchestrator.claims.recover = recover_after_a_blip
    finals = record_all_but_last(race, orchestrator, dates)
    for day in dates:
        with pytest.raises(RuntimeError):
            orchestrator.handle_event(finals[day])

    for day in dates:  # Pub/Sub redelivers each until it is acknowledged
        handle_until_acked_or_transient(orchestrator, finals[day])

    assert (len(crashed), len(blipped)) == (TRIALS, TRIALS)
    assert per_date_and_table(race.triggers()) == exactly_once(race.spec, dates)
    for day in dates:
        claim = race.claim(day)
        assert claim["state"] == "published"
        assert {v["confirmed_by"] for v in claim["published"].values()} == {"receipt"}


def handle_until_acked_or_transient(instance, event, attempts: int = 200):
    for _ in range(attempts):
        try:
            return instance.handle_event(event)
        except (ClaimInFlight, PublishFailed, gexc.ServiceUnavailable):
            time.sleep(0.1)
    raise AssertionError("still not acknowledged")


# -- 1b: two deliveries find the same stale claim at once ------------------------------------


@pytest.mark.parametrize("crash", ["before_publish", "after_publish"])
def test_two_deliveries_recovering_one_stale_claim_at_once(race, crash):
    claimer = race.orchestrator()
    dates = trial_dates()
    publish_all = claimer.publisher.publish_all

    def crash_around_publish(messages, deadline=None):
        if crash == "after_publish":
            publish_all(messages, deadline)
        raise RuntimeError(f"instance crashed {crash.replace('_', ' ')}")

    claimer.publisher.publish_all = crash_around_publish
    finals = record_all_but_last(race, claimer, dates)
    for day in dates:
        with pytest.raises(RuntimeError):
            claimer.handle_event(finals[day])
    if crash == "after_publish":
        wait_for_receipts(race, dates)
    time.sleep(LEASE + GRACE + 0.2)  # every claim is stale now, its receipts' grace over too

    first, second = instances(race, 2)
    # Two redeliveries of every date's message, all at the same instant (the trials run side by side).
    results = race_at_once([lambda day=day, i=i: i.handle_event(finals[day]) for day in dates for i in (first, second)])
    outcomes = [results[index : index + 2] for index in range(0, len(results), 2)]
    for day, pair in zip(dates, outcomes):
        for instance, result in zip((first, second), pair):
            if isinstance(result, Exception):
                assert isinstance(result, (ClaimInFlight, PublishFailed)), result
                handle_until_acked(instance, finals[day])

    assert per_date_and_table(race.triggers()) == exactly_once(race.spec, dates)
    # One delivery took the claim over, the other followed it. The taker's publish may run out of its
    # 1 s on a loaded machine (PublishFailed: not definitive, its redelivery finishes it, counted above);
    # it is still the one owner. Two owners, or none, fail.
    winner = "republished" if crash == "before_publish" else "confirmed_by_receipt"
    for results in outcomes:
        pair = sorted(getattr(r, "outcome", type(r).__name__) for r in results)
        assert pair in [
            sorted([w, f]) for w in (winner, "PublishFailed") for f in ("already_triggered", "ClaimInFlight")
        ]


# -- 1c: four simultaneous redeliveries, nothing injected ------------------------------------


@pytest.mark.parametrize("claim", ["fresh", "stale_after_publish"])
def test_four_simultaneous_redeliveries_of_the_completing_message(race, claim):
    setup = race.orchestrator()
    dates = trial_dates()
    finals = record_all_but_last(race, setup, dates)
    if claim == "stale_after_publish":  # the claimer published, died before marking; its lease runs out
        publish_all = setup.publisher.publish_all

        def publish_then_crash(messages, deadline=None):
            publish_all(messages, deadline)
            raise RuntimeError("instance crashed between publish and mark")

        setup.publisher.publish_all = publish_then_crash
        for day in dates:
            with pytest.raises(RuntimeError):
                setup.handle_event(finals[day])
        wait_for_receipts(race, dates)
        time.sleep(LEASE + 0.2)
    four = instances(race, 4)
    winner = "triggered" if claim == "fresh" else "confirmed_by_receipt"

    # Four redeliveries of every date's message at the same instant (the trials run side by side).
    results = race_at_once([lambda day=day, i=i: i.handle_event(finals[day]) for day in dates for i in four])
    for index, day in enumerate(dates):
        outcomes = []
        for instance, result in zip(four, results[index * 4 : index * 4 + 4]):
            if isinstance(result, Exception):  # redelivered until acknowledged
                assert isinstance(result, ClaimInFlight), result
                result = handle_until_acked(instance, finals[day])
            outcomes.append(result.outcome)
        assert sorted(outcomes) == sorted([winner] + ["already_triggered"] * 3), (day, outcomes)

    assert per_date_and_table(race.triggers()) == exactly_once(race.spec, dates)


# -- expected contention: re-runs of one processor delivered at the same instant ------------


def test_simultaneous_reruns_of_one_processor_are_retried_quietly_and_all_recorded(race, caplog):
    """Six runs of one (date, processor) land together on six instances: their transactions
    contend for one record. Each delivery is acknowledged or asks for redelivery with one
    WARNING; none logs an ERROR or fails with the Firestore client's own error; every run is
    in the record's history."""
    import base64
    import uuid

    from tests.support.completions import completion

    six = instances(race, 6)
    dates = trial_dates(10)
    processor = race.spec.processor_names[0]

    def rerun(day, index):
        body = completion(processor, day, execution_id=f"rerun-{index}")
        return {
            "message": {
                "data": base64.b64encode(json.dumps(body).encode()).decode(),
                "messageId": uuid.uuid4().hex,
                "publishTime": dt.datetime.now(dt.UTC).isoformat(),
            }
        }

    events = {(day, i): rerun(day, i) for day in dates for i in range(len(six))}
    with caplog.at_level("INFO", logger="phase3ops"):
        results = race_at_once(
            [lambda day=day, i=i, o=o: o.handle_event(events[(day, i)]) for day in dates for i, o in enumerate(six)]
        )
        retried = 0
        for (key, instance), result in zip([((d, i), o) for d in dates for i, o in enumerate(six)], results):
            if isinstance(result, Exception):
                assert isinstance(result, RetryLater), repr(
                    result
                )  # was: google.api_core Aborted / ValueError, logged as a crash
                retried += 1
                handle_until_acked(instance, events[key])
    assert [r.getMessage() for r in caplog.records if r.levelno >= 40] == []
    decisions = [r for r in caplog.records if getattr(r, "event", None) == "phase3_completion"]
    assert len(decisions) == len(events) + retried  # one line per delivery, however often its transaction was retried
    for day in dates:
        record = (
            race.firestore.collection(race.spec.orchestrator.collections.completions)
            .document(f"{day}_{processor}")
            .get()
            .to_dict()
        )
        assert sorted(r["execution_id"] for r in record["runs"]) == [f"rerun-{i}" for i in range(len(six))], day


# -- an instance killed between reading and writing a record or a claim -------------------

DOOMED_INSTANCE = """
import json, os, sys, time
from google.cloud.firestore_v1 import base_batch, document
from phase3ops.orchestrator.factory import build_orchestrator
from phase3ops.spec.pipeline import load_pipeline_spec

def killed_before_it_writes(*args, **kwargs):
    print("writing", flush=True)
    time.sleep(600)

# Every way a record or claim is written: on its own, or in a transaction (a write batch).
document.DocumentReference.update = base_batch.BaseWriteBatch.update = base_batch.BaseWriteBatch.set = killed_before_it_writes
orchestrator = build_orchestrator(load_pipeline_spec(sys.argv[1]), sys.argv[2])
orchestrator.handle_event(json.loads(sys.argv[3]))
"""


def kill_while_writing(race, emulator_hosts, event) -> None:
    """Hand `event` to an instance of its own that is killed after it read what it would change."""
    doomed = subprocess.Popen(
        [sys.executable, "-c", DOOMED_INSTANCE, race.spec.source, race.project, json.dumps(event)],
        env={**os.environ, **emulator_hosts, "PYTHONWARNINGS": "ignore"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert doomed.stdout is not None  # stdout=PIPE
        assert doomed.stdout.readline().strip() == "writing"
    finally:
        doomed.kill()
        doomed.wait(timeout=10)


def test_an_instance_killed_before_its_write_leaves_nothing_that_stalls_the_date(race, emulator_hosts):
    """The platform can kill an instance at any instruction. Killed between reading a record or a
    claim and writing it, it must leave nothing behind that blocks the next delivery: before, both
    were written in Firestore transactions, whose read locks outlive the instance (a minute on the
    emulator), and every delivery of the date asked for redelivery until they expired."""
    claimer, survivor = race.orchestrator(), race.orchestrator()
    dates = trial_dates(3)
    rerun = race.spec.processor_names[0]
    finals = record_all_but_last(race, claimer, dates)
    for day in dates:
        kill_while_writing(race, emulator_hosts, direct_event(rerun, day))  # a re-run's record
        assert (
            survivor.handle_event(direct_event(rerun, day)).outcome == "waiting"
        )  # the next re-run is recorded at once

    def crash(messages, deadline=None):
        raise RuntimeError("instance crashed before publishing")

    claimer.publisher.publish_all = crash
    for day in dates:
        with pytest.raises(RuntimeError):
            claimer.handle_event(finals[day])  # a pending claim, recovered once its lease runs out
    time.sleep(LEASE + GRACE + 0.2)
    for day in dates:
        kill_while_writing(race, emulator_hosts, finals[day])  # the stale claim's recovery
        decision = survivor.handle_event(finals[day])  # the first redelivery: no RetryLater
        assert decision.outcome == "republished", decision
    assert per_date_and_table(race.triggers()) == exactly_once(race.spec, dates)


# -- 1d: a malformed or foreign message on the Phase 4 topic never blocks the evidence -------


def test_malformed_and_foreign_messages_on_the_phase4_topic_do_not_hide_receipts(race, caplog):
    topic = race.publisher.topic_path(race.project, race.spec.topics.phase4_trigger)
    strays = [
        (
            json.dumps({"game_date": "28/11/2026", "source_table": "player_game_summary"}).encode(),
            {"trigger_id": f"{race.spec.name}:28/11/2026:x", "game_date": "28/11/2026"},
        ),
        (b"not json at all", {}),
        (b"{}", {"trigger_id": "another-pipeline:2026-11-28:player_game_summary", "game_date": "2026-11-28"}),
    ]
    for data, attributes in strays:
        race.publisher.publish(topic, data, **attributes).result(timeout=10)

    claimer = race.orchestrator()
    dates = trial_dates(5)
    publish_all = claimer.publisher.publish_all

    def publish_then_crash(messages, deadline=None):
        publish_all(messages, deadline)
        raise RuntimeError("instance crashed between publish and mark")

    claimer.publisher.publish_all = publish_then_crash
    finals = record_all_but_last(race, claimer, dates)
    for day in dates:
        with pytest.raises(RuntimeError):
            claimer.handle_event(finals[day])
        race.publisher.publish(topic, b"stray", trigger_id=f"{race.spec.name}:{day}", game_date="yesterday").result(
            timeout=10
        )
    wait_for_receipts(race, dates)
    time.sleep(LEASE + 0.2)

    recoverer = race.orchestrator()
    with caplog.at_level("INFO", logger="phase3ops.orchestrator"):
        decisions = [handle_until_acked(recoverer, finals[day]) for day in dates]

    assert [d.outcome for d in decisions] == ["confirmed_by_receipt"] * len(dates)
    received = race.triggers()
    ours = [m for m in received if "source_table" in m.attributes]  # the strays carry none
    assert per_date_and_table(ours) == exactly_once(race.spec, dates)
    assert race.receipts.failures == []  # every stray was acknowledged, none retried for ever


# -- 2: a publish that times out while Pub/Sub is unavailable --------------------------------


class PublishOutage(grpc.UnaryUnaryClientInterceptor):
    """Publish calls fail with UNAVAILABLE for `seconds` from the first one. With
    `delivered`, each failed call did reach Pub/Sub (only the answer was lost)."""

    def __init__(self, seconds: float, delivered: bool):
        self.seconds, self.delivered = seconds, delivered
        self.until: float | None = None
        self.failed_calls = 0

    def intercept_unary_unary(self, continuation, client_call_details, request):
        if client_call_details.method.endswith("/Publish"):
            now = time.monotonic()
            self.until = self.until or now + self.seconds
            if now < self.until:
                self.failed_calls += 1
                if self.delivered:
                    continuation(client_call_details, request).result()
                return FailedCall(grpc.StatusCode.UNAVAILABLE, "injected: Pub/Sub unavailable")
        return continuation(client_call_details, request)


@pytest.mark.parametrize("delivered", [False, True], ids=["never_sent", "sent_but_unanswered"])
def test_a_publish_that_times_out_during_an_outage_is_sent_once(gcp_project, tmp_path, emulator_hosts, delivered):
    # Publish deadline 1 s inside a 2 s lease; Pub/Sub unreachable for 2.5 s.
    spec = load_pipeline_spec(short_lease_spec_file(tmp_path, lease=2, publish_timeout=1))
    pipeline = make_pipeline(gcp_project, spec)
    try:
        outage = PublishOutage(2.5, delivered)
        channel = grpc.intercept_channel(grpc.insecure_channel(emulator_hosts["PUBSUB_EMULATOR_HOST"]), outage)
        flaky = pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel))
        orchestrator = pipeline.orchestrator(publisher_client=flaky)
        dates = trial_dates(3)
        finals = record_all_but_last(pipeline, orchestrator, dates)
        started = time.monotonic()
        for day in dates:
            handle_until_acked(orchestrator, finals[day], attempts=400, delay=0.05)
        assert outage.failed_calls > 0 and time.monotonic() - started > 2.0  # the outage was really hit

        time.sleep(3)  # anything the client library might still have been retrying would land by now
        assert per_date_and_table(pipeline.triggers()) == exactly_once(spec, dates)
    finally:
        pipeline.stop()


# -- a reconciliation run that dies between claim and publish --------------------------------


def test_a_claim_left_by_a_dead_reconciliation_run_is_recovered_by_the_next_delivery(race):
    orchestrator = race.orchestrator()
    dates = trial_dates(5)
    finals = record_all_but_last(race, orchestrator, dates)
    reconciliation = race.orchestrator()
    store = reconciliation.store
    for day in dates:
        # The reconciliation records the last completion itself (rows without a completion) ...
        orchestrator.store.record(*_parsed(race, finals[day]))

    def die(messages, deadline=None):
        raise SystemExit("the reconciliation job was killed")

    reconciliation.publisher.publish_all = die
    for day in dates:
        with pytest.raises(SystemExit):
            reconciliation.advance(day, owner="reconcile-20261129T093000-dead")
        assert race.claim(day)["owner"] == "reconcile-20261129T093000-dead"
    assert store is reconciliation.store

    # ... and the completion's own redelivery is not acknowledged as "in flight": it waits out
    # the lease and recovers the claim, though a dead reconciliation run owns it.
    for day in dates:
        handle_until_acked(orchestrator, finals[day])
    assert per_date_and_table(race.triggers()) == exactly_once(race.spec, dates)


def _parsed(pipeline, event):
    from phase3ops.orchestrator.messages import parse_completion, parse_delivery

    delivery = parse_delivery(event)
    return parse_completion(delivery.raw_data, pipeline.spec, delivery.message_id), delivery


# -- a lease is never shortened by slow I/O or a skewed clock --------------------------------


def real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.mark.parametrize("fault, trials", [("slow_reads", 5), ("clock_ahead", TRIALS)])
def test_a_slow_or_skewed_instance_never_takes_over_a_live_claim(gcp_project, tmp_path, fault, trials):
    spec = load_pipeline_spec(short_lease_spec_file(tmp_path, lease=2, publish_timeout=1))
    pipeline = make_pipeline(gcp_project, spec)
    try:
        claimer, rival = instances(pipeline, 2)
        rival.in_flight_wait = 0  # look once: a live claim must make it ask for redelivery, never take over
        dates = trial_dates(trials)  # past dates by any real clock from 2026-11-29 on
        finals = record_all_but_last(pipeline, claimer, dates)
        claimer.clock = real_now
        rival.clock = real_now if fault == "slow_reads" else (lambda: real_now() + dt.timedelta(seconds=30))
        read_date, publish_all = claimer._read_date, claimer.publisher.publish_all
        claimed = threading.Event()
        if fault == "slow_reads":

            def slow_read(game_date):  # the reads before the claim take 1.5 s of a 2 s lease
                result = read_date(game_date)
                time.sleep(1.5)
                return result

            claimer._read_date = slow_read

        def slow_publish(messages, deadline=None):  # claimed; the publish takes a while
            claimed.set()
            time.sleep(1.0 if fault == "slow_reads" else 0.3)
            return publish_all(messages, deadline)

        claimer.publisher.publish_all = slow_publish
        for day in dates:
            claimed.clear()
            worker = threading.Thread(target=lambda: claimer.handle_event(finals[day]))
            worker.start()
            assert claimed.wait(timeout=10)
            # A lease measured from before the slow reads, or by a clock 30 s ahead, would be over now.
            time.sleep(0.8 if fault == "slow_reads" else 0.05)
            with pytest.raises(ClaimInFlight):
                rival.handle_event(finals[day])
            worker.join(timeout=10)
        assert per_date_and_table(pipeline.triggers()) == exactly_once(spec, dates)
    finally:
        pipeline.stop()
