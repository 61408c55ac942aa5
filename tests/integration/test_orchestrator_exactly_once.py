"""Exactly one Phase 4 message per (complete game date, source table), whatever Pub/Sub does.

Every test publishes real messages to the Pub/Sub emulator, delivers them to
the orchestrator like Eventarc (ack on return, redeliver on raise), keeps
state in the Firestore emulator, runs the receipts recorder on the Phase 4
topic, and counts the messages that arrive on a subscription of that topic.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import multiprocessing
import random
import threading
import time

import google.cloud.pubsub_v1 as pubsub_v1
import pytest
from google.cloud import firestore

from phase3ops.orchestrator.orchestrator import ClaimInFlight
from phase3ops.orchestrator.phase4_publisher import Phase4Publisher, PublishFailed, PublishOutcome
from tests.support.call_records import Calls
from tests.support.completions import completion
from tests.support.delivery import cloud_event_data, pull_everything
from tests.support.orchestration import UPGC, completing_last, direct_event, handle_until_acked
from tests.support.pipelines import PAST, TODAY, TOMORROW, Clock, exactly_once, per_date_and_table

pytestmark = pytest.mark.emulators


def test_five_completions_send_phase4_one_message_per_table(pipeline):
    *first, final = completing_last(pipeline.spec)
    pipeline.publish_day(PAST, first)
    stats = pipeline.deliver()
    assert pipeline.triggers() == []
    pipeline.publish_day(PAST, [final])

    stats = pipeline.deliver()

    triggers = pipeline.triggers()
    assert per_date_and_table(triggers) == exactly_once(pipeline.spec, [PAST])
    for message in triggers:
        body = json.loads(message.data)
        assert (body["mode"], body["trigger_reason"], body["success"]) == ("overnight", "all_complete", True)
        assert (
            body["trigger_id"]
            == message.attributes["trigger_id"]
            == f"{pipeline.spec.name}:{PAST}:{body['source_table']}"
        )
    assert stats.failures == []
    claim = pipeline.claim(PAST)
    assert claim["state"] == "published"
    assert {part: value["confirmed_by"] for part, value in claim["published"].items()} == {
        p.output_table: "publisher" for p in pipeline.spec.processors
    }


def test_every_message_delivered_three_times(pipeline):
    days = (PAST, PAST.replace(day=27), PAST.replace(day=26))
    for day in days:
        pipeline.publish_day(day)

    pipeline.deliver(copies=3)

    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, days)


def test_duplicates_published_as_new_messages_count_once(pipeline):
    """A producer retry publishes the same execution again under a new message id."""
    others = [name for name in pipeline.spec.processor_names if name != UPGC]
    for name in others:
        message = completion(name, PAST, execution_id=f"run-{name}")
        pipeline.publish(message)
        pipeline.publish(message)
    pipeline.deliver()
    assert pipeline.triggers() == []  # four of five, twice each, still lacks a critical processor

    pipeline.publish_day(PAST, [UPGC])
    pipeline.deliver()
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, [PAST])


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

    assert decisions[-1].record == "kept_success"  # the older failure, delivered last, never uncompletes
    record = orchestrator.store.records_for_date(PAST, names)[0][names[0]]
    assert (record.status, record.execution_id) == ("success", "run-2")
    assert [(run["execution_id"], run["outcome"]) for run in record.runs] == [
        ("run-2", "recorded"),
        ("run-1", "kept_success"),
    ]
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, [PAST])


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
    pipeline.publish_day(PAST, ["player_game_summary", UPGC])  # overnight: critical done, 40 % < 60 %
    pipeline.publish_day(TODAY, [UPGC])  # same_day: its one critical processor
    pipeline.publish_day(TOMORROW, ["upcoming_team_game_context"])  # tomorrow: the optional one alone
    pipeline.publish_day(
        dt.date(2026, 12, 5), list(pipeline.spec.processor_names)
    )  # no mode decides a date a week ahead

    pipeline.deliver()

    triggers = pipeline.triggers()
    assert per_date_and_table(triggers) == exactly_once(pipeline.spec, [TODAY])
    assert {(json.loads(m.data)["mode"], json.loads(m.data)["trigger_reason"]) for m in triggers} == {
        ("same_day", "all_complete")
    }

    pipeline.publish_day(PAST, ["team_offense_game_summary"])  # 3 of 5 with both critical: 60 %
    pipeline.deliver()
    triggers = pipeline.triggers()
    assert per_date_and_table(triggers) == exactly_once(pipeline.spec, [PAST])
    assert {json.loads(m.data)["trigger_reason"] for m in triggers} == {"critical_plus_majority_60pct"}


def test_five_processors_finishing_at_once_from_threads(pipeline):
    dates = [PAST.replace(day=d) for d in range(10, 20)]
    barrier = threading.Barrier(len(pipeline.spec.processor_names))
    errors: list[BaseException] = []

    def processor_instance(name: str) -> None:
        # Each thread is its own function instance with its own clients.
        instance = pipeline.orchestrator(
            firestore_client=firestore.Client(project=pipeline.project), publisher_client=pubsub_v1.PublisherClient()
        )
        try:
            for game_date in dates:
                event = direct_event(name, game_date)
                barrier.wait(timeout=30)
                handle_until_acked(instance, event)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=processor_instance, args=(n,)) for n in pipeline.spec.processor_names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, dates)


def _process_worker(project: str, spec_path: str, emulator_env: dict, name: str, dates: list, barrier) -> None:
    import os

    os.environ.update(emulator_env)
    from phase3ops.orchestrator.factory import build_orchestrator
    from phase3ops.spec.pipeline import load_pipeline_spec

    instance = build_orchestrator(load_pipeline_spec(spec_path), project, clock=Clock())
    for game_date in dates:
        barrier.wait(timeout=60)
        handle_until_acked(instance, direct_event(name, game_date))


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
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, dates)


class CrashAt:
    """Fault injection around the real publisher: the instance dies before publishing, after
    publishing, half-way through the fan-out, or Pub/Sub refuses the messages outright."""

    def __init__(self, real: Phase4Publisher, when: str, times: int = 1):
        self.real, self.when, self.remaining = real, when, times
        self.topic_path = real.topic_path

    def publish_all(self, messages, deadline=None):
        if not self.remaining:
            return self.real.publish_all(messages, deadline)
        self.remaining -= 1
        if self.when == "before_publish":
            raise RuntimeError("instance crashed between claim and publish")
        if self.when == "refused":
            return [PublishOutcome(m, error="NotFound: 404 Topic not found", definitive=True) for m in messages]
        if self.when == "after_two_of_five":
            self.real.publish_all(messages[:2], deadline)
            raise RuntimeError("instance crashed after 2 of 5 messages")
        self.real.publish_all(messages, deadline)
        raise RuntimeError("instance crashed between publish and mark")


@pytest.mark.parametrize("when", ["before_publish", "after_publish", "after_two_of_five", "refused"])
def test_crash_or_publish_failure_after_claim_ends_in_one_message_per_table(pipeline, when, caplog):
    orchestrator = pipeline.orchestrator()
    orchestrator.publisher = CrashAt(orchestrator.publisher, when)
    pipeline.publish_day(PAST)

    # Each failed delivery is redelivered (after a short backoff here), raising
    # ClaimInFlight until the claim's lease runs out; then one recovers it.
    with caplog.at_level("INFO", logger="phase3ops.orchestrator"):
        stats = pipeline.deliver(orchestrator.handle_event)

    # The one decision that settled the trigger is logged once: dashboards and alerts count these lines.
    settled = [
        r.outcome
        for r in caplog.records
        if getattr(r, "outcome", None) in ("triggered", "republished", "confirmed_by_receipt")
    ]
    assert len(settled) == 1, settled

    assert stats.failures, "the injected fault must have failed a delivery"
    triggers = pipeline.triggers()
    assert per_date_and_table(triggers) == exactly_once(pipeline.spec, [PAST])
    claim = pipeline.claim(PAST)
    assert claim["state"] == "published"
    confirmed_by = {part: value["confirmed_by"] for part, value in claim["published"].items()}
    tables = [p.output_table for p in pipeline.spec.processors]
    expected = {
        # The receipts showed what had gone out: none of it was sent again.
        "after_publish": dict.fromkeys(tables, "receipt"),
        "after_two_of_five": {**dict.fromkeys(tables[:2], "receipt"), **dict.fromkeys(tables[2:], "publisher")},
    }.get(when, dict.fromkeys(tables, "publisher"))
    assert confirmed_by == expected
    ids = {json.loads(m.data)["source_table"]: m.message_id for m in triggers}
    assert {part: value["message_id"] for part, value in claim["published"].items()} == ids


def test_an_attempt_that_sent_nothing_is_recovered_at_once(pipeline):
    """Pub/Sub refused the publish outright (or no lease time was left for it): nothing can be on its
    way, so the redelivery takes the claim over at once, waiting for neither the lease nor the grace."""
    orchestrator = pipeline.orchestrator()
    orchestrator.publisher = CrashAt(orchestrator.publisher, "refused")
    *first, final = completing_last(pipeline.spec)
    for name in first:
        orchestrator.handle_event(direct_event(name, PAST))
    last = direct_event(final, PAST)
    with pytest.raises(PublishFailed) as refused:
        orchestrator.handle_event(last)
    assert refused.value.definitive
    assert orchestrator.handle_event(last).outcome == "republished"  # no wait: well inside the 2 s lease
    claim = pipeline.claim(PAST)
    assert [h["event"] for h in claim["history"]] == ["claimed", "lease_released", "taken_over"]
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, [PAST])


def test_a_pending_claim_is_never_acknowledged_as_in_flight(pipeline):
    """Whoever owns a pending claim (here a delivery whose instance crashed), every other
    delivery is retried until the claim is published, so the claim cannot be forgotten."""
    orchestrator = pipeline.orchestrator()
    orchestrator.in_flight_wait = 0  # ask for redelivery at once, while the lease surely lives
    orchestrator.publisher = CrashAt(orchestrator.publisher, "before_publish")
    *first, final = completing_last(pipeline.spec)
    last = direct_event(final, PAST, message_id="m-last")
    for name in first:
        orchestrator.handle_event(direct_event(name, PAST))
    with pytest.raises(RuntimeError):
        orchestrator.handle_event(last)
    with pytest.raises(ClaimInFlight):
        orchestrator.handle_event(last)  # its own redelivery, while the lease lives
    # Another processor's completion (one whose late runs earn no follow-up): not acknowledged either.
    other = direct_event(next(p.name for p in pipeline.spec.processors if p.late_data == "ignore"), PAST)
    with pytest.raises(ClaimInFlight):
        orchestrator.handle_event(other)
    # It died before its publish, but nobody can know that: recovery also waits for receipts of what it may have sent.
    time.sleep(pipeline.spec.orchestrator.claim_lease_seconds + 0.2)
    with pytest.raises(ClaimInFlight, match="without a receipt yet"):
        orchestrator.handle_event(other)
    time.sleep(pipeline.spec.orchestrator.receipt_grace_seconds)
    assert orchestrator.handle_event(other).outcome == "republished"
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, [PAST])


def test_the_trigger_line_says_how_far_ahead_of_the_deadline_it_came(pipeline, caplog):
    """The dashboard charts `minutes_before_deadline`: the date's trigger_deadline (10:00 New York,
    the next day) minus the time the trigger was sent; negative when late."""
    pipeline.clock.now = dt.datetime(2026, 11, 29, 13, 30, tzinfo=dt.UTC)  # 08:30 in New York
    with caplog.at_level("INFO", logger="phase3ops.orchestrator"):
        pipeline.publish_day(PAST)
        pipeline.deliver()
    [sent] = [r for r in caplog.records if getattr(r, "outcome", None) == "triggered"]
    assert sent.minutes_before_deadline == 90.0
    assert not [
        r for r in caplog.records if getattr(r, "outcome", None) == "waiting" and hasattr(r, "minutes_before_deadline")
    ]


def test_late_completion_is_recorded_and_does_not_trigger_again(pipeline, caplog):
    """A table declared `late_data: ignore` (a pre-game context): its late run is recorded and logged, nothing more."""
    pipeline.publish_day(PAST)
    pipeline.deliver()
    assert len(pipeline.triggers()) == len(pipeline.spec.processors)

    ignored = next(p.name for p in pipeline.spec.processors if p.late_data == "ignore")
    rerun = completion(ignored, PAST, execution_id="backfill-1", record_count=99)
    pipeline.publish(rerun)
    caplog.clear()
    with caplog.at_level("INFO", logger="phase3ops.orchestrator"):
        pipeline.deliver()

    assert pipeline.triggers() == []
    record = pipeline.orchestrator().store.records_for_date(PAST, pipeline.spec.processor_names)[0][ignored]
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
        (
            json.dumps(
                {k: v for k, v in completion("player_game_summary", "2026-11-28").items() if k != "status"}
            ).encode(),
            "status",
        ),
        (json.dumps({"game_date": "2026-11-28", "status": "success"}).encode(), "processor_name"),
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
    # Filed under the date it names, when it names a real one, for `phase3ops explain`.
    named = pipeline.orchestrator().store.rejected.for_date(dt.date(2026, 11, 28))
    assert [r["message_id"] for r in named] == ([message_id] if b'"2026-11-28"' in payload else [])


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
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, [PAST])


def test_a_missing_phase4_topic_fails_the_delivery_until_it_exists(pipeline, caplog):
    from phase3ops.pubsub_admin import ensure_subscription, ensure_topic

    pipeline.publisher.delete_topic(
        request={"topic": pipeline.publisher.topic_path(pipeline.project, pipeline.spec.topics.phase4_trigger)}
    )
    orchestrator = pipeline.orchestrator()
    *first, final = completing_last(pipeline.spec)
    for event in [direct_event(n, PAST) for n in first]:
        orchestrator.handle_event(event)
    last = direct_event(final, PAST)
    with caplog.at_level("INFO", logger="phase3ops.orchestrator"), pytest.raises(PublishFailed):
        orchestrator.handle_event(last)
    assert pipeline.claim(PAST)["state"] == "pending"  # never marked done when the publish failed
    [failed] = [r for r in caplog.records if getattr(r, "outcome", None) == "publish_failed"]
    assert failed.levelname == "ERROR" and "Topic not found" in failed.reason and "nothing was sent" in failed.reason

    ensure_topic(pipeline.publisher, pipeline.project, pipeline.spec.topics.phase4_trigger)
    listener = ensure_subscription(
        pipeline.subscriber, pipeline.project, pipeline.spec.topics.phase4_trigger, "phase4-listener-recreated"
    )
    decision = orchestrator.handle_event(last)  # the refused publish released its lease: no wait
    assert decision.outcome == "republished"
    assert pipeline.claim(PAST)["state"] == "published"
    assert per_date_and_table(pull_everything(pipeline.subscriber, listener)) == exactly_once(pipeline.spec, [PAST])


def test_redelivery_changes_nothing_and_a_rerun_updates_the_record(pipeline):
    orchestrator = pipeline.orchestrator()
    name = pipeline.spec.processor_names[0]
    event = direct_event(name, PAST, message_id="m-1")
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
            "publishTime": dt.datetime.now(dt.UTC).isoformat(),
        }
    }
    assert orchestrator.handle_event(republished).record == "duplicate"

    rerun = direct_event(name, PAST, message_id="m-3")
    assert orchestrator.handle_event(rerun).record == "updated"
    assert records.document(f"{PAST.isoformat()}_{name}").get().update_time > written.update_time


def test_a_run_counted_by_a_concurrent_trigger_is_not_reported_late(pipeline):
    """Recorded before the trigger, evaluated after it: part of the trigger, so not late."""
    orchestrator, other_instance = pipeline.orchestrator(), pipeline.orchestrator()
    names = completing_last(pipeline.spec)
    events = {name: direct_event(name, PAST) for name in names}
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
    assert pipeline.claim(PAST)["decision"]["executions"][names[-1]] == last_run


def test_a_date_completed_by_reference_format_messages_triggers_once_per_table(pipeline):
    """Completions exactly as the reference's processors publish them in production."""
    from tests.support.reference_messages import reference_completion

    *first, final = completing_last(pipeline.spec)
    for name in first:
        pipeline.publish(reference_completion(name, PAST, correlation_id="corr-phase2"))
    pipeline.publish(reference_completion("player_game_summary", PAST, status="failed"))  # a failed re-run meanwhile
    pipeline.deliver()
    assert pipeline.triggers() == []
    # Production's async context processor completes the date.
    last = reference_completion(final, PAST, form="async_class", correlation_id="corr-final")
    pipeline.publish(last)
    pipeline.deliver(copies=2)

    triggers = pipeline.triggers()
    assert per_date_and_table(triggers) == exactly_once(pipeline.spec, [PAST])
    bodies = [json.loads(m.data) for m in triggers]
    assert {(b["trigger_reason"], b["correlation_id"], b["parent_execution_id"]) for b in bodies} == {
        ("all_complete", "corr-final", last["execution_id"])
    }
    record = pipeline.orchestrator().store.records_for_date(PAST, ["player_game_summary"])[0]["player_game_summary"]
    assert record.status == "success"  # the failed run after the success did not un-complete it
    assert [run["outcome"] for run in record.runs] == ["recorded", "kept_success"]


@pytest.mark.parametrize("later", ["failed", "no_data"])
def test_a_later_failure_never_uncompletes_a_processor(pipeline, caplog, later):
    names = completing_last(pipeline.spec)
    orchestrator = pipeline.orchestrator()
    for name in names[:-1]:
        orchestrator.handle_event(direct_event(name, PAST))
    orchestrator.handle_event(direct_event(names[-2], PAST))  # a duplicate of a success
    rerun = {"message": {**direct_event(names[-2], PAST)["message"]}}
    rerun["message"]["data"] = base64.b64encode(
        json.dumps(completion(names[-2], PAST, status=later, record_count=0)).encode()
    ).decode()
    with caplog.at_level("WARNING", logger="phase3ops.orchestrator"):
        decision = orchestrator.handle_event(rerun)
    assert (decision.record, decision.outcome) == ("kept_success", "waiting")
    assert decision.completed == tuple(n for n in pipeline.spec.processor_names if n in names[:-1])
    [logged] = [r for r in caplog.records if getattr(r, "record", None) == "kept_success"]
    assert logged.levelname == "WARNING" and "the success still counts" in logged.getMessage()

    assert orchestrator.handle_event(direct_event(names[-1], PAST)).outcome == "triggered"


def test_the_receipts_recorder_flags_a_second_message_for_a_trigger_id(pipeline, caplog):
    from phase3ops.orchestrator.factory import build_receipt_recorder

    recorder = build_receipt_recorder(pipeline.spec, pipeline.project)
    trigger_id = f"{pipeline.spec.name}:{PAST}:player_game_summary"

    def event(message_id: str) -> dict:
        attributes = {"trigger_id": trigger_id, "game_date": str(PAST), "source_table": "player_game_summary"}
        return {
            "message": {
                "data": base64.b64encode(b"{}").decode(),
                "messageId": message_id,
                "attributes": attributes,
                "publishTime": "2026-11-29T10:00:00Z",
            }
        }

    with caplog.at_level("INFO", logger="phase3ops.receipts"):
        outcomes = [recorder.handle_event(event(m)).outcome for m in ("p-1", "p-1", "p-2")]
    assert outcomes == ["recorded", "redelivered", "duplicate_publish"]
    receipt = pipeline.receipt(trigger_id)
    assert (receipt["message_id"], receipt["duplicate_message_ids"]) == ("p-1", ["p-2"])
    [duplicate] = [r for r in caplog.records if getattr(r, "event", None) == "phase4_trigger_duplicate"]
    assert duplicate.levelname == "ERROR" and duplicate.trigger_id == trigger_id


# -- what a delivery reads once the date has a claim ------------------------------------------------


def watched(orchestrator) -> Calls:
    calls = Calls()
    calls.watch("date reads", orchestrator.store, "records_for_date")
    calls.watch("claim reads", orchestrator.claims, "get")
    calls.watch("follow-up reads", orchestrator.followups, "get")
    return calls


def follow_up_table_run(spec, first: list[str]) -> str:
    """A processor counted in the trigger whose table's late data would earn a follow-up."""
    return next(name for name in first if spec.processor(name).late_data == "follow_up")


def test_a_delivery_that_loses_the_race_to_claim_reads_the_claim_not_the_date_again(pipeline):
    """The same completing message delivered twice at once: the delivery that finds the claim
    taken has just read the date, and follows the claim with one more read of the claim."""
    *first, final = completing_last(pipeline.spec)
    winner, loser = pipeline.orchestrator(), pipeline.orchestrator()
    for name in first:
        winner.handle_event(direct_event(name, PAST))
    completing = direct_event(final, PAST, message_id="m-final")
    real_try_claim = loser.claims.try_claim

    def claimed_first_by_the_other(*args, **kwargs):
        assert winner.handle_event(completing).outcome == "triggered"
        return real_try_claim(*args, **kwargs)

    # The other delivery claims between this one's read of the date and its own claim.
    loser.claims.try_claim = claimed_first_by_the_other
    calls = watched(loser)

    assert loser.handle_event(completing).outcome == "already_triggered"
    assert (calls.count("date reads"), calls.count("claim reads")) == (1, 1)
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, [PAST])


def test_a_counted_run_delivered_again_while_the_trigger_is_sent_reads_nothing_after_it_is_published(pipeline):
    """A redelivery of a run the trigger counted, while the trigger's owner publishes: it waits for
    the publish, and that is all. It reads no claim once it has seen the published one, and looks for
    no follow-up of its run (the trigger's own runs never earn one)."""
    *first, final = completing_last(pipeline.spec)
    owner, follower = pipeline.orchestrator(), pipeline.orchestrator()
    counted = follow_up_table_run(pipeline.spec, first)
    counted_delivery = direct_event(counted, PAST, execution_id="run-counted")
    owner.handle_event(counted_delivery)
    for name in first:
        if name != counted:
            owner.handle_event(direct_event(name, PAST))
    publish_all = owner.publisher.publish_all

    def slow_publish(messages, *args, **kwargs):
        time.sleep(0.5)
        return publish_all(messages, *args, **kwargs)

    owner.publisher.publish_all = slow_publish  # the owner takes its time to publish
    sending = threading.Thread(target=owner.handle_event, args=(direct_event(final, PAST),))
    sending.start()
    try:
        deadline = time.monotonic() + 10
        while (pipeline.claim(PAST) or {}).get("state") != "pending" and time.monotonic() < deadline:
            time.sleep(0.01)
        calls = watched(follower)
        decision = follower.handle_event(counted_delivery)
    finally:
        sending.join(timeout=30)

    assert decision.outcome == "already_triggered"
    states = [claim.state for claim in calls.returned["claim reads"]]
    assert states and states[-1] == "published" and "published" not in states[:-1]  # it waited, then read no more
    assert calls.count("follow-up reads") == 0
    assert per_date_and_table(pipeline.triggers()) == exactly_once(pipeline.spec, [PAST])
