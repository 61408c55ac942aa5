"""Exactly one Phase 4 trigger per complete game date, whatever Pub/Sub does.

Every test publishes real messages to the Pub/Sub emulator, delivers them to
the orchestrator like Eventarc (ack on return, redeliver on raise), keeps
state in the Firestore emulator, and counts the triggers that arrive on a
subscription of the Phase 4 topic.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import multiprocessing
import uuid
import random
import threading

import pytest
from google.cloud import firestore, pubsub_v1

from phase3ops.orchestrator.orchestrator import ClaimStillLeased
from phase3ops.orchestrator.phase4_publisher import Phase4Publisher, PublishFailed
from tests.integration.conftest import PAST, TODAY, TOMORROW, Clock, make_pipeline
from tests.support.completions import completion
from tests.support.delivery import cloud_event_data, pull_everything

pytestmark = pytest.mark.emulators


def trigger_dates(messages) -> list[str]:
    return sorted(json.loads(m.data)["game_date"] for m in messages)


def test_five_completions_trigger_phase4_once(pipeline):
    pipeline.publish_day(PAST)

    stats = pipeline.deliver()

    triggers = pipeline.triggers()
    assert trigger_dates(triggers) == [PAST.isoformat()]
    payload = json.loads(triggers[0].data)
    assert payload["mode"] == "overnight"
    assert payload["trigger_id"] == f"{pipeline.spec.name}:{PAST.isoformat()}"
    assert triggers[0].attributes["trigger_id"] == payload["trigger_id"]
    assert sorted(payload["completed_tables"]) == sorted(p.output_table for p in pipeline.spec.processors)
    assert stats.failures == []
    assert pipeline.claim(PAST)["state"] == "published"


def test_every_message_delivered_three_times(pipeline):
    for day in (PAST, PAST.replace(day=27), PAST.replace(day=26)):
        pipeline.publish_day(day)

    pipeline.deliver(copies=3)

    assert trigger_dates(pipeline.triggers()) == ["2026-11-26", "2026-11-27", "2026-11-28"]


def test_duplicates_published_as_new_messages_count_once(pipeline):
    """A producer retry publishes the same execution again under a new message id."""
    for name in pipeline.spec.processor_names[:4]:
        message = completion(name, PAST, execution_id=f"run-{name}")
        pipeline.publish(message)
        pipeline.publish(message)
    pipeline.deliver()
    assert pipeline.triggers() == []  # four of five, twice each, is still four of five

    pipeline.publish_day(PAST, pipeline.spec.processor_names[4:])
    pipeline.deliver()
    assert trigger_dates(pipeline.triggers()) == [PAST.isoformat()]


def test_reordered_runs_keep_the_newest_status(pipeline):
    names = list(pipeline.spec.processor_names)
    # player_game_summary failed first, then a re-run succeeded; the failure is delivered last.
    first_run = completion(names[0], PAST, status="failed", execution_id="run-1")
    second_run = completion(names[0], PAST, status="success", execution_id="run-2")
    pipeline.publish(first_run)
    pipeline.publish(second_run)
    orchestrator = pipeline.orchestrator()
    for name in random.Random(7).sample(names[1:], len(names) - 1):
        pipeline.publish(completion(name, PAST))

    received = pipeline.subscriber.pull(
        request={"subscription": pipeline.function_subscription, "max_messages": 20}, timeout=10
    ).received_messages
    while len(received) < len(names) + 1:
        received += pipeline.subscriber.pull(
            request={"subscription": pipeline.function_subscription, "max_messages": 20}, timeout=10
        ).received_messages
    by_execution = {json.loads(r.message.data)["execution_id"]: r for r in received}
    ordered = [r for r in received if r not in (by_execution["run-1"], by_execution["run-2"])]
    random.Random(11).shuffle(ordered)
    ordered = [by_execution["run-2"], *ordered, by_execution["run-1"]]  # newest before oldest
    decisions = [orchestrator.handle_event(cloud_event_data(r, pipeline.function_subscription)) for r in ordered]

    assert decisions[-1].record == "superseded"
    record = orchestrator.store.records_for_date(PAST, names)[0][names[0]]
    assert (record.status, record.execution_id) == ("success", "run-2")
    assert trigger_dates(pipeline.triggers()) == [PAST.isoformat()]


def test_failed_and_no_data_are_recorded_but_do_not_count(pipeline):
    names = pipeline.spec.processor_names
    pipeline.publish_day(PAST, list(names[:3]))
    pipeline.publish(completion(names[3], PAST, status="failed"))
    pipeline.publish(completion(names[4], PAST, status="no_data", record_count=0))

    pipeline.deliver()

    records, _ = pipeline.orchestrator().store.records_for_date(PAST, names)
    assert {name: record.status for name, record in records.items()} == {
        names[0]: "success",
        names[1]: "success",
        names[2]: "success",
        names[3]: "failed",
        names[4]: "no_data",
    }
    assert pipeline.triggers() == []
    assert pipeline.claim(PAST) is None


def test_incomplete_dates_are_not_triggered_and_modes_apply(pipeline):
    critical = sorted(pipeline.spec.critical_processors)
    non_critical = [n for n in pipeline.spec.processor_names if n not in critical]
    pipeline.publish_day(PAST, critical)  # overnight needs all five
    pipeline.publish_day(TODAY, critical)  # same_day needs the critical set
    pipeline.publish_day(TOMORROW, critical[:1])  # tomorrow: critical set incomplete
    pipeline.publish_day(dt.date(2026, 12, 5), critical)  # no mode decides a date a week ahead

    pipeline.deliver()

    triggers = pipeline.triggers()
    assert trigger_dates(triggers) == [TODAY.isoformat()]
    assert json.loads(triggers[0].data)["mode"] == "same_day"

    pipeline.publish_day(PAST, non_critical)
    pipeline.deliver()
    assert trigger_dates(pipeline.triggers()) == [PAST.isoformat()]


def test_five_processors_finishing_at_once_from_threads(pipeline):
    dates = [PAST.replace(day=d) for d in range(10, 20)]
    barrier = threading.Barrier(len(pipeline.spec.processor_names))
    errors: list[BaseException] = []

    def processor_instance(name: str) -> None:
        # Each thread is its own function instance with its own clients.
        instance = pipeline.orchestrator(
            firestore_client=firestore.Client(project=pipeline.project),
            publisher_client=pubsub_v1.PublisherClient(),
            subscriber_client=pubsub_v1.SubscriberClient(),
        )
        try:
            for game_date in dates:
                event = _direct_event(name, game_date)
                barrier.wait(timeout=30)
                instance.handle_event(event)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=processor_instance, args=(n,)) for n in pipeline.spec.processor_names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert trigger_dates(pipeline.triggers()) == [d.isoformat() for d in dates]


def _direct_event(processor: str, game_date, message_id: str | None = None) -> dict:
    """A CloudEvent's data for a message handed straight to the handler (no subscription)."""
    return {
        "message": {
            "data": base64.b64encode(json.dumps(completion(processor, game_date)).encode()).decode(),
            "messageId": message_id or uuid.uuid4().hex,
            "publishTime": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
    }


def _process_worker(project: str, spec_path: str, emulator_env: dict, name: str, dates: list, barrier) -> None:
    import os

    os.environ.update(emulator_env)
    from phase3ops.orchestrator.factory import build_orchestrator
    from phase3ops.spec.pipeline import load_pipeline_spec

    instance = build_orchestrator(load_pipeline_spec(spec_path), project, clock=Clock())
    for game_date in dates:
        barrier.wait(timeout=60)
        instance.handle_event(_direct_event(name, game_date))


def test_five_processors_finishing_at_once_from_processes(pipeline, emulator_hosts):
    dates = [PAST.replace(day=d) for d in range(1, 6)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(pipeline.spec.processor_names))
    workers = [
        context.Process(
            target=_process_worker,
            args=(pipeline.project, pipeline.spec.source, emulator_hosts, name, dates, barrier),
        )
        for name in pipeline.spec.processor_names
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)

    assert [w.exitcode for w in workers] == [0] * len(workers)
    assert trigger_dates(pipeline.triggers()) == [d.isoformat() for d in dates]


class CrashAt:
    """Fault injection around the real publisher: raise before or after the real publish."""

    def __init__(self, real: Phase4Publisher, when: str, times: int = 1):
        self.real, self.when, self.remaining = real, when, times
        self.can_confirm = real.can_confirm

    def drain_receipts(self, *args, **kwargs):
        return self.real.drain_receipts(*args, **kwargs)

    def publish(self, payload):
        if self.remaining and self.when == "before_publish":
            self.remaining -= 1
            raise RuntimeError("instance crashed between claim and publish")
        if self.remaining and self.when == "publish_fails":
            self.remaining -= 1
            raise PublishFailed("Pub/Sub unavailable")
        message_id = self.real.publish(payload)
        if self.remaining and self.when == "after_publish":
            self.remaining -= 1
            raise RuntimeError("instance crashed between publish and mark")
        return message_id


@pytest.mark.parametrize("when", ["before_publish", "after_publish", "publish_fails"])
def test_crash_or_publish_failure_after_claim_ends_in_one_trigger(pipeline, when):
    orchestrator = pipeline.orchestrator()
    orchestrator.publisher = CrashAt(orchestrator.publisher, when)
    pipeline.publish_day(PAST)

    # Each failed delivery is retried by Pub/Sub after a backoff; let the
    # test clock pass more than the claim lease between retries.
    stats = pipeline.deliver(orchestrator.handle_event, on_failure=lambda exc: pipeline.clock.advance(3))

    assert stats.failures, "the injected fault must have failed a delivery"
    triggers = pipeline.triggers()
    assert trigger_dates(triggers) == [PAST.isoformat()]
    claim = pipeline.claim(PAST)
    assert claim["state"] == "published"
    if when == "after_publish":
        # The receipts showed the first publish had gone out: not sent again.
        assert claim["confirmed_by"] == "receipt"
        assert claim["published_message_id"] == triggers[0].message_id


def test_redelivery_while_own_claim_is_leased_is_retried_not_dropped(pipeline):
    orchestrator = pipeline.orchestrator()
    orchestrator.publisher = CrashAt(orchestrator.publisher, "before_publish")
    last = _direct_event(pipeline.spec.processor_names[-1], PAST, message_id="m-last")
    for name in pipeline.spec.processor_names[:-1]:
        orchestrator.handle_event(_direct_event(name, PAST))
    with pytest.raises(RuntimeError):
        orchestrator.handle_event(last)
    # Redelivered at once: the claim is still leased by this very message, so
    # it must fail again (to be retried), not be acknowledged and forgotten.
    with pytest.raises(ClaimStillLeased):
        orchestrator.handle_event(last)
    # Another processor's duplicate meanwhile is acknowledged: the owner will finish.
    assert orchestrator.handle_event(_direct_event(pipeline.spec.processor_names[0], PAST)).outcome == "trigger_in_flight"
    pipeline.clock.advance(3)
    assert orchestrator.handle_event(last).outcome == "republished"
    assert trigger_dates(pipeline.triggers()) == [PAST.isoformat()]


def test_stale_claim_without_receipts_subscription_is_republished(gcp_project, tmp_path):
    from phase3ops.spec.pipeline import load_pipeline_spec
    from tests.support.specs import DELETE, write_pipeline_variant

    spec = load_pipeline_spec(
        write_pipeline_variant(
            tmp_path,
            {
                "spec.orchestrator.claim_lease_seconds": 2,
                "spec.orchestrator.publish_timeout_seconds": 1,
                "spec.orchestrator.receipts_subscription": DELETE,
            },
        )
    )
    pipeline = make_pipeline(gcp_project, spec)
    orchestrator = pipeline.orchestrator()
    orchestrator.publisher = CrashAt(orchestrator.publisher, "before_publish")
    pipeline.publish_day(PAST)
    pipeline.deliver(orchestrator.handle_event, on_failure=lambda exc: pipeline.clock.advance(3))
    assert trigger_dates(pipeline.triggers()) == [PAST.isoformat()]


def test_late_completion_is_recorded_and_does_not_trigger_again(pipeline, caplog):
    pipeline.publish_day(PAST)
    pipeline.deliver()
    assert len(pipeline.triggers()) == 1

    rerun = completion(pipeline.spec.processor_names[0], PAST, execution_id="backfill-1", record_count=99)
    pipeline.publish(rerun)
    with caplog.at_level("INFO", logger="phase3ops.orchestrator"):
        pipeline.deliver()

    assert pipeline.triggers() == []
    record = pipeline.orchestrator().store.records_for_date(PAST, pipeline.spec.processor_names)[0][pipeline.spec.processor_names[0]]
    assert (record.execution_id, record.record_count) == ("backfill-1", 99)
    late = [r for r in caplog.records if getattr(r, "outcome", None) == "late"]
    assert len(late) == 1 and late[0].levelname == "WARNING" and late[0].game_date == PAST.isoformat()


@pytest.mark.parametrize(
    "payload, field",
    [
        (b"{not json", ""),
        (b'["a list"]', ""),
        (json.dumps(completion("mystery_processor", "2026-11-28", output_table="mystery")).encode(), "processor_name"),
        (json.dumps(completion("player_game_summary", "2026-02-30")).encode(), "game_date"),
        (json.dumps(completion("player_game_summary", "28/11/2026")).encode(), "game_date"),
        (json.dumps({**completion("player_game_summary", "2026-11-28"), "status": "done"}).encode(), "status"),
        (json.dumps({k: v for k, v in completion("player_game_summary", "2026-11-28").items() if k != "execution_id"}).encode(), ""),
    ],
)
def test_bad_messages_are_logged_stored_and_acknowledged(pipeline, caplog, payload, field):
    message_id = pipeline.publish(payload)

    with caplog.at_level("INFO", logger="phase3ops.orchestrator"):
        stats = pipeline.deliver()

    assert stats.failures == [] and stats.acked == {message_id}  # acknowledged, never redelivered
    rejected = [r for r in caplog.records if getattr(r, "outcome", None) == "rejected"]
    assert len(rejected) == 1 and rejected[0].levelname == "ERROR"
    assert rejected[0].field == field
    stored = pipeline.firestore.collection(pipeline.spec.orchestrator.collections.rejected).document(message_id).get()
    assert stored.exists and stored.to_dict()["data"] == payload and stored.to_dict()["field"] == field
    assert pipeline.triggers() == []


def test_transient_firestore_failure_raises_so_pubsub_redelivers(pipeline):
    from google.api_core import exceptions as gexc

    orchestrator = pipeline.orchestrator()
    real_record = orchestrator.store.record
    outages = {"left": 2}

    def record_during_outage(*args, **kwargs):
        if outages["left"]:
            outages["left"] -= 1
            raise gexc.ServiceUnavailable("Firestore is unavailable")
        return real_record(*args, **kwargs)

    orchestrator.store.record = record_during_outage
    pipeline.publish_day(PAST)

    stats = pipeline.deliver(orchestrator.handle_event)

    assert [f.split(":")[0] for f in stats.failures] == ["ServiceUnavailable", "ServiceUnavailable"]
    assert trigger_dates(pipeline.triggers()) == [PAST.isoformat()]


def test_a_missing_phase4_topic_fails_the_delivery_until_it_exists(pipeline, caplog):
    from phase3ops.pubsub_admin import ensure_subscription, ensure_topic

    pipeline.publisher.delete_topic(request={"topic": pipeline.publisher.topic_path(pipeline.project, pipeline.spec.topics.phase4_trigger)})
    orchestrator = pipeline.orchestrator()
    for event in [_direct_event(n, PAST) for n in pipeline.spec.processor_names[:-1]]:
        orchestrator.handle_event(event)
    last = _direct_event(pipeline.spec.processor_names[-1], PAST)
    with caplog.at_level("INFO", logger="phase3ops.orchestrator"), pytest.raises(PublishFailed):
        orchestrator.handle_event(last)
    assert pipeline.claim(PAST)["state"] == "pending"  # never marked done when the publish failed
    [failed] = [r for r in caplog.records if getattr(r, "outcome", None) == "publish_failed"]
    assert failed.levelname == "ERROR" and "Topic not found" in failed.reason

    ensure_topic(pipeline.publisher, pipeline.project, pipeline.spec.topics.phase4_trigger)
    listener = ensure_subscription(
        pipeline.subscriber, pipeline.project, pipeline.spec.topics.phase4_trigger, "phase4-listener-recreated"
    )
    decision = orchestrator.handle_event(last)  # the failed publish released its lease: no wait
    assert decision.outcome == "republished"
    assert pipeline.claim(PAST)["state"] == "published"
    assert trigger_dates(pull_everything(pipeline.subscriber, listener)) == [PAST.isoformat()]


def test_redelivery_changes_nothing_and_a_rerun_updates_the_record(pipeline):
    orchestrator = pipeline.orchestrator()
    name = pipeline.spec.processor_names[0]
    event = _direct_event(name, PAST, message_id="m-1")
    records = pipeline.firestore.collection(pipeline.spec.orchestrator.collections.completions)

    assert orchestrator.handle_event(event).record == "recorded"
    written = records.document(f"{PAST.isoformat()}_{name}").get()
    assert orchestrator.handle_event(event).record == "duplicate"
    assert records.document(f"{PAST.isoformat()}_{name}").get().update_time == written.update_time

    same_run_new_message = json.loads(base64.b64decode(event["message"]["data"]))
    republished = {
        "message": {
            "data": base64.b64encode(json.dumps(same_run_new_message).encode()).decode(),
            "messageId": "m-2",
            "publishTime": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
    }
    assert orchestrator.handle_event(republished).record == "duplicate"

    rerun = _direct_event(name, PAST, message_id="m-3")
    assert orchestrator.handle_event(rerun).record == "updated"
    assert records.document(f"{PAST.isoformat()}_{name}").get().update_time > written.update_time


def test_a_run_counted_by_a_concurrent_trigger_is_not_reported_late(pipeline):
    """Recorded before the trigger, evaluated after it: part of the trigger, so not late."""
    orchestrator, other_instance = pipeline.orchestrator(), pipeline.orchestrator()
    names = pipeline.spec.processor_names
    events = {name: _direct_event(name, PAST) for name in names}
    for name in names[:-1]:
        orchestrator.handle_event(events[name])
    real_record = orchestrator.store.record

    def record_then_another_instance_triggers(completion, delivery):
        outcome = real_record(completion, delivery)
        # A redelivery of another processor's message, on another instance, evaluates first.
        assert other_instance.handle_event(events[names[0]]).outcome == "triggered"
        return outcome

    orchestrator.store.record = record_then_another_instance_triggers
    decision = orchestrator.handle_event(events[names[-1]])

    assert (decision.record, decision.outcome) == ("recorded", "already_triggered")
    last_run = json.loads(base64.b64decode(events[names[-1]]["message"]["data"]))["execution_id"]
    assert json.loads(pipeline.triggers()[0].data)["executions"][names[-1]] == last_run
