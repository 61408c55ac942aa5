"""Exactly once where it counts: Phase 4's work, whatever happened to the messages on their way.

Ways a review found to get two Phase 4 messages for one (date, table) once
a claim's lease has ended (the receipts late, the claimer frozen; the
network's are in test_exactly_once_in_the_network.py), each repeated over
20 game dates in one test, with a 2 s lease and a 1 s publish timeout (the spec's lease >= 2 x
timeout). Every message that reached the Phase 4 topic is then handed to
Phase 4's stand-in with its duplicate guard installed, and each test asserts
zero duplicate work and zero lost work. The duplicate *messages* published
are reported, never hidden (pytest's summary prints a table of them); where
the producer can close a window, the test asserts none were published.
Each test also counts the trials in which the race it is about really
happened.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from phase3ops.orchestrator.orchestrator import ClaimInFlight, RetryLater
from phase3ops.orchestrator.phase4_publisher import PublishFailed
from tests.support.exactly_once_trials import (
    GRACE,
    LEASE,
    LISTEN,
    TRIALS,
    assert_exactly_once_work,
    report,
    trial_spec,
)
from tests.support.orchestration import (
    handle_until_acked,
    record_all_but_last,
    run_to_the_end,
    trial_dates,
    wait_for_receipts,
)
from tests.support.phase4 import hand_off
from tests.support.pipelines import PAST, exactly_once, make_pipeline

pytestmark = [pytest.mark.emulators, pytest.mark.minutes_long(seconds=25)]


class ReceiptsDown:
    """The receipts function failing (its deliveries raise, Pub/Sub retries them) for some tables, until `up()`."""

    def __init__(self, tables: set[str] | None = None):
        self.tables = tables
        self.down = True
        self.failed = 0

    def wrap(self, handler):
        def receipts_function(event: dict):
            table = event["message"]["attributes"].get("source_table")
            if self.down and (self.tables is None or table in self.tables):
                self.failed += 1
                time.sleep(0.2)  # Eventarc's backoff, shortened
                raise RuntimeError("the receipts function is down")
            return handler(event)

        return receipts_function

    def up(self) -> None:
        self.down = False


@pytest.fixture
def spec(tmp_path):
    return trial_spec(tmp_path)


def published_then_crashed(instance):
    """The instance sends the date's messages, then dies before it can mark the claim."""
    publish_all = instance.publisher.publish_all

    def publish_then_crash(messages, *args, **kwargs):
        publish_all(messages, *args, **kwargs)
        raise RuntimeError("instance crashed between publish and mark")

    instance.publisher.publish_all = publish_then_crash


# -- 1 and 2: receipts late (the receipts function down, for all or some messages) -------------


@pytest.mark.parametrize(
    "down_for, back",
    [
        (None, "within_grace"),
        (None, "after_grace"),
        ({"team_defense_game_summary", "upcoming_team_game_context"}, "within_grace"),
        ({"team_defense_game_summary", "upcoming_team_game_context"}, "after_grace"),
    ],
    ids=[
        "all_receipts-back_within_grace",
        "all_receipts-back_after_grace",
        "2_of_5_receipts-back_within_grace",
        "2_of_5_receipts-back_after_grace",
    ],
)
def test_late_receipts_of_a_crashed_publish(gcp_project, spec, tmp_path, record_property, down_for, back):
    """The claimer published every message in one call and died before marking them; the receipts
    function fails (for all five messages, or for two of them) while the claim is recovered."""
    outage = ReceiptsDown(down_for)
    pipeline = make_pipeline(gcp_project, spec, receipts_fault=outage.wrap)
    try:
        claimer = pipeline.orchestrator()
        published_then_crashed(claimer)
        dates = trial_dates(PAST, TRIALS)
        finals = record_all_but_last(pipeline, claimer, dates)
        for day in dates:
            with pytest.raises(RuntimeError):
                claimer.handle_event(finals[day])
        if down_for:  # the other three receipts arrive
            wait_for_receipts(
                pipeline, dates, tables=[t for t in (p.output_table for p in spec.processors) if t not in down_for]
            )
        time.sleep(LEASE + 0.2)  # every claim's lease is over; receipts are still missing

        recoverer = pipeline.orchestrator()
        raced = 0  # trials where recovery came while a published message had no receipt
        for day in dates:
            try:
                recoverer.handle_event(finals[day])
            except ClaimInFlight as waiting:
                raced += "without a receipt yet" in str(waiting)
        if back == "after_grace":
            time.sleep(GRACE + 0.5)  # recovery gives up waiting: it sends what has no receipt again
            decisions = [handle_until_acked(recoverer, finals[day]) for day in dates]
            outage.up()
        else:
            outage.up()  # back within the grace: recovery sees the receipts
            decisions = [handle_until_acked(recoverer, finals[day]) for day in dates]
        messages = pipeline.triggers(settle_seconds=LISTEN)
        result = hand_off(gcp_project, tmp_path / "phase4.jsonl", messages)
    finally:
        pipeline.stop()

    expected = exactly_once(spec, dates)
    report(
        record_property,
        f"receipts late ({'all' if down_for is None else '2 of 5'}, back {back.replace('_', ' ')})",
        TRIALS,
        raced,
        result,
        expected,
    )
    assert raced == TRIALS and outage.failed > 0
    assert_exactly_once_work(result, expected)
    if back == "within_grace":  # the producer closes this one by itself
        assert result.duplicate_messages == 0
        assert {d.outcome for d in decisions} == {"confirmed_by_receipt"}
    else:  # beyond the grace only the guard helps: each missing receipt's message went out again
        assert result.duplicate_messages == TRIALS * (5 if down_for is None else 2)


# -- 3: the claimer pauses between creating its claim and calling Publish ----------------------


@pytest.mark.parametrize("freeze", [3, LEASE + GRACE + 1.5], ids=["3s", "past_lease_and_grace"])
def test_a_claimer_frozen_between_claim_and_publish_sends_nothing_stale(
    gcp_project, spec, tmp_path, record_property, freeze
):
    """A GC pause or a frozen instance between the claim and the Publish call, on a 2 s lease, while
    Pub/Sub redelivers the completing message to another instance. Frozen 3 s, the other waits for
    the receipt grace and the claimer, awake, finds no lease left; frozen past the lease and the
    grace, the other has taken over and sent everything by the time the claimer wakes."""
    pipeline = make_pipeline(gcp_project, spec)
    try:
        claimer, rival = pipeline.orchestrator(), pipeline.orchestrator()
        dates = trial_dates(PAST, TRIALS)
        finals = record_all_but_last(pipeline, claimer, dates)
        woke: dict[dt.date, float] = {}
        publish_all = claimer.publisher.publish_all

        def frozen_then_publish(messages, *args, **kwargs):
            time.sleep(freeze)
            woke[dt.date.fromisoformat(messages[0].game_date)] = time.monotonic()
            return publish_all(messages, *args, **kwargs)

        claimer.publisher.publish_all = frozen_then_publish  # type: ignore[method-assign]  # this instance's publish freezes first
        attempts: dict[dt.date, list[tuple[float, str]]] = {day: [] for day in dates}

        def claim_and_freeze(day):
            try:
                claimer.handle_event(finals[day])
            except (RetryLater, PublishFailed):
                pass  # its delivery is redelivered and follows the claim like any other
            handle_until_acked(claimer, finals[day])

        def redeliver(day):
            time.sleep(0.3)
            for _ in range(400):
                try:
                    decision = rival.handle_event(finals[day])
                    attempts[day].append((time.monotonic(), decision.outcome))
                    return
                except (RetryLater, PublishFailed) as exc:
                    attempts[day].append((time.monotonic(), str(exc)))
                    time.sleep(0.1)

        threads = [threading.Thread(target=f, args=(day,)) for day in dates for f in (claim_and_freeze, redeliver)]
        run_to_the_end(threads)
        messages = pipeline.triggers(settle_seconds=LISTEN)
        result = hand_off(gcp_project, tmp_path / "phase4.jsonl", messages)
    finally:
        pipeline.stop()

    # The race: the other instance came for the claim after its lease ended, while the claimer was still frozen.
    raced = sum(
        1
        for day in dates
        if any(
            at < woke.get(day, 0) and ("without a receipt yet" in what or what == "republished")
            for at, what in attempts[day]
        )
    )
    expected = exactly_once(spec, dates)
    report(record_property, f"claimer frozen {freeze:.1f} s between claim and publish", TRIALS, raced, result, expected)
    assert raced >= TRIALS // 2, f"the redelivery overlapped the freeze in only {raced} of {TRIALS} trials"
    assert_exactly_once_work(result, expected)
    assert result.duplicate_messages == 0  # the frozen claimer found no lease left and sent nothing
