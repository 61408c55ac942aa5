"""Operator overrides against the emulators: force a trigger, skip a processor, re-trigger a date and its followers.

Every override goes through the orchestrator's claims, publisher and
receipts and is recorded (read back here) with who, when, why and what.
Phase 4's messages are counted on a subscription of the Phase 4 topic, and
Phase 4's duplicate guard is fed the re-triggers to show what it runs.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import cast

import pytest
from google.cloud import firestore

from phase3ops.checks import overrides as overrides_check
from phase3ops.checks.context import CheckContext
from phase3ops.checks.results import Status
from phase3ops.orchestrator.phase4_publisher import PublishFailed, PublishOutcome
from phase3ops.overrides import (
    BadOverride,
    Operator,
    build_overrides,
    for_date,
    retrigger_claims,
    skipped,
    skipped_between,
)
from phase3ops.warehouse.port import Warehouse
from tests.support.orchestration import (
    UPGC,
    completing_last,
    direct_event,
    handle_until_acked,
    race_at_once,
    wait_for_receipts,
)
from tests.support.phase4 import Phase4
from tests.support.pipelines import NOW, PAST, exactly_once, per_date_and_table

pytestmark = pytest.mark.emulators
ALICE = Operator("alice@example.com", "--operator")
BOB = Operator("bob@example.com", "--operator")
PGS = "player_game_summary"
TRIALS = 5


def tools(pipeline):
    """An operator's command: its own Firestore and Pub/Sub clients, the pipeline's clock."""
    return build_overrides(
        pipeline.spec,
        pipeline.project,
        clock=pipeline.clock,
        firestore_client=firestore.Client(project=pipeline.project),
    )


def tables(spec) -> list[str]:
    return [p.output_table for p in spec.processors]


def complete(pipeline, day: dt.date, processors=None) -> None:
    """Deliver completions of the date to the orchestrator (all five: it is triggered)."""
    orchestrator = pipeline.orchestrator()
    for name in processors or pipeline.spec.processor_names:
        handle_until_acked(orchestrator, direct_event(name, day))


def bodies(messages) -> dict[tuple[str, str], dict]:
    return {
        (json.loads(m.data)["game_date"], json.loads(m.data)["source_table"]): {
            **json.loads(m.data),
            "_attributes": dict(m.attributes),
        }
        for m in messages
    }


# -- trigger --force ------------------------------------------------------------------------


def test_force_trigger_sends_a_date_that_is_not_ready_once_through_its_claim_and_records_it(pipeline):
    spec = pipeline.spec
    broken = [name for name in spec.processor_names if name not in (PGS, UPGC)]
    complete(pipeline, PAST, broken)  # the two critical processors never report: not ready
    assert pipeline.claim(PAST) is None

    outcome = tools(pipeline).force_trigger(PAST, "upcoming_player_game_context scraper retired (INC-7)", ALICE)

    assert outcome.outcome == "published", outcome
    triggers = pipeline.triggers(at_least=5)
    assert per_date_and_table(triggers) == exactly_once(spec, [PAST])
    for (_, table), body in bodies(triggers).items():
        stable = f"{spec.name}:{PAST}:{table}"
        assert body["trigger_id"] == body["_attributes"]["trigger_id"] == stable  # the date's own stable ids
        assert (body["trigger_reason"], body["forced"], body["degraded"], body["override_id"]) == (
            "forced",
            True,
            True,
            outcome.override_id,
        )
        assert (body["analysis_date"], body["success"], body["source_table"]) == (str(PAST), True, table)
    wait_for_receipts(pipeline, [PAST])
    claim = pipeline.claim(PAST)
    assert claim["state"] == "published" and claim["trigger_id"] == f"{spec.name}:{PAST}"
    assert claim["decision"]["override"] == {
        "id": outcome.override_id,
        "kind": "force_trigger",
        "operator": ALICE.name,
        "reason": "upcoming_player_game_context scraper retired (INC-7)",
        "ready": False,
    }

    [record] = for_date(pipeline.firestore, spec, PAST)
    assert (record.id, record.kind, record.outcome, record.operator, record.operator_source) == (
        outcome.override_id,
        "force_trigger",
        "published",
        ALICE.name,
        "--operator",
    )
    assert record.reason == "upcoming_player_game_context scraper retired (INC-7)"
    assert record.command == f"phase3ops trigger {PAST} --force"
    assert record.processors == (PGS, UPGC)  # what the trigger went without
    assert record.trigger_ids == tuple(f"{spec.name}:{PAST}:{t}" for t in tables(spec))
    assert record.message_ids == {json.loads(m.data)["source_table"]: m.message_id for m in triggers}
    assert record.at is not None and record.finished_at is not None and record.at <= record.finished_at
    assert record.claim == f"{spec.orchestrator.collections.triggers}/{PAST}"
    assert record.extra["ready"] is False and record.extra["missing"] == [PGS, UPGC]

    # The processors report after all: the claim stops a second trigger. A run of a table that sends
    # follow-ups (player_game_summary) earns Phase 4 that one follow-up, as after any trigger.
    orchestrator = pipeline.orchestrator()
    assert handle_until_acked(orchestrator, direct_event(UPGC, PAST)).outcome == "late"
    assert pipeline.triggers() == []
    assert handle_until_acked(orchestrator, direct_event(PGS, PAST)).outcome == "followed_up"
    [follow_up] = pipeline.triggers(at_least=1)
    assert json.loads(follow_up.data)["source_table"] == PGS and ":late:" in follow_up.attributes["trigger_id"]
    assert pipeline.claim(PAST)["trigger_id"] == f"{spec.name}:{PAST}"


def test_force_trigger_refuses_a_date_already_triggered_and_says_use_retrigger(pipeline):
    complete(pipeline, PAST)
    assert per_date_and_table(pipeline.triggers(at_least=5)) == exactly_once(pipeline.spec, [PAST])

    outcome = tools(pipeline).force_trigger(PAST, "just to be sure", ALICE)

    assert outcome.outcome == "refused" and not outcome.ok
    # Refused on reading the claim, before building or claiming anything (not by losing the claim's create).
    assert outcome.detail.startswith(
        f"{PAST} is already triggered ({pipeline.spec.name}:{PAST}, critical_plus_majority_80pct, claimed by delivery-"
    )
    assert f"use `phase3ops retrigger {PAST} --reason ...`" in outcome.detail and "same moment" not in outcome.detail
    assert pipeline.triggers() == []
    [record] = for_date(pipeline.firestore, pipeline.spec, PAST)
    assert (record.kind, record.outcome, record.trigger_ids, record.operator) == (
        "force_trigger",
        "refused",
        (),
        ALICE.name,
    )
    assert record.detail == outcome.detail and "degraded" not in record.extra


def test_force_trigger_run_twice_at_once_publishes_once(pipeline):
    spec = pipeline.spec
    dates = [PAST - dt.timedelta(days=offset) for offset in range(TRIALS)]
    for day in dates:
        complete(pipeline, day, [n for n in spec.processor_names if n != UPGC])

    for day in dates:
        first, second = tools(pipeline), tools(pipeline)
        results = race_at_once(
            [
                lambda: first.force_trigger(day, "UPGC broken for good", ALICE),
                lambda: second.force_trigger(day, "UPGC broken for good", BOB),
            ]
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        assert sorted(r.outcome for r in results) == ["published", "refused"], [r.detail for r in results]

    triggers = pipeline.triggers(at_least=5 * TRIALS)
    assert per_date_and_table(triggers) == exactly_once(spec, dates)
    wait_for_receipts(pipeline, dates)
    for day in dates:
        recorded = for_date(pipeline.firestore, spec, day)
        assert sorted((r.kind, r.outcome) for r in recorded) == [
            ("force_trigger", "published"),
            ("force_trigger", "refused"),
        ]
        for table in tables(spec):
            assert pipeline.receipt(f"{spec.name}:{day}:{table}")["duplicate_message_ids"] == []


def test_force_trigger_refuses_a_date_no_mode_triggers(pipeline):
    with pytest.raises(BadOverride, match=r"argument DATE: .* days after today"):
        tools(pipeline).force_trigger(PAST + dt.timedelta(days=3), "early", ALICE)
    assert pipeline.triggers() == []


# -- retrigger ----------------------------------------------------------------------------


def test_retrigger_is_new_work_to_the_phase4_guard_and_a_replay_of_it_is_not(pipeline, tmp_path):
    spec = pipeline.spec
    complete(pipeline, PAST)
    originals = pipeline.triggers(at_least=5)
    phase4 = Phase4(pipeline.project, tmp_path / "phase4-ledger.jsonl")
    phase4.deliver(originals)
    assert {key: t.work_started for key, t in phase4.tally().items()} == exactly_once(spec, [PAST])

    [outcome] = tools(pipeline).retrigger(PAST, "player_game_summary fix deployed (INC-9)", ALICE)

    assert (outcome.outcome, outcome.retrigger, outcome.kind) == ("published", 1, "retrigger")
    retriggered = pipeline.triggers(at_least=5)
    assert per_date_and_table(retriggered) == exactly_once(spec, [PAST])
    for (_, table), body in bodies(retriggered).items():
        new_id = f"{spec.name}:{PAST}:{table}:retrigger-1"
        assert body["trigger_id"] == body["_attributes"]["trigger_id"] == new_id
        assert (body["is_retrigger"], body["retrigger"], body["retrigger_of"]) == (
            True,
            1,
            f"{spec.name}:{PAST}:{table}",
        )
        assert (body["trigger_reason"], body["is_incremental"], body["source_table"], body["analysis_date"]) == (
            "retrigger",
            False,
            table,
            str(PAST),
        )
    # The receipts recorder records each new id once; Phase 4's guard runs each as new work.
    retrigger_ids = [f"{spec.name}:{PAST}:{t}:retrigger-1" for t in tables(spec)]
    _wait(lambda: all(pipeline.receipt(i) for i in retrigger_ids))
    assert all(pipeline.receipt(i)["duplicate_message_ids"] == [] for i in retrigger_ids)
    phase4.deliver(retriggered)
    assert {key: t.work_started for key, t in phase4.tally().items()} == dict.fromkeys(exactly_once(spec, [PAST]), 2)

    # A replay of the same re-trigger (the same bytes published again): a duplicate to the guard and the receipts.
    topic = pipeline.publisher.topic_path(pipeline.project, spec.topics.phase4_trigger)
    for message in retriggered:
        pipeline.publisher.publish(topic, message.data, **dict(message.attributes)).result(timeout=10)
    replayed = pipeline.triggers(at_least=5)
    phase4.deliver(replayed)
    tally = phase4.tally()
    assert {key: t.work_started for key, t in tally.items()} == dict.fromkeys(exactly_once(spec, [PAST]), 2)
    assert {key: t.received for key, t in tally.items()} == dict.fromkeys(exactly_once(spec, [PAST]), 3)
    _wait(lambda: all(pipeline.receipt(i)["duplicate_message_ids"] for i in retrigger_ids))

    # The record, read back; the date's own claim is untouched; the next re-trigger is new work again.
    [record] = [r for r in for_date(pipeline.firestore, spec, PAST) if r.kind == "retrigger"]
    assert (record.outcome, record.retrigger, record.trigger_ids, record.operator) == (
        "published",
        1,
        tuple(retrigger_ids),
        ALICE.name,
    )
    assert record.claim == f"{spec.orchestrator.collections.triggers}/{PAST}/retriggers/{PAST}~retrigger-1"
    assert record.message_ids == {json.loads(m.data)["source_table"]: m.message_id for m in retriggered}
    assert pipeline.claim(PAST)["trigger_id"] == f"{spec.name}:{PAST}" and pipeline.claim(PAST)["state"] == "published"
    [second] = tools(pipeline).retrigger(PAST, "a second fix", BOB)
    assert (second.outcome, second.retrigger) == ("published", 2)
    phase4.deliver(pipeline.triggers(at_least=5))
    assert {key: t.work_started for key, t in phase4.tally().items()} == dict.fromkeys(exactly_once(spec, [PAST]), 3)
    assert [c.decision["retrigger"] for c in retrigger_claims(pipeline.firestore, spec, PAST)] == [1, 2]


def test_two_operators_retriggering_at_once_make_one_retrigger(pipeline):
    spec = pipeline.spec
    dates = [PAST - dt.timedelta(days=offset) for offset in range(TRIALS)]
    for day in dates:
        complete(pipeline, day)
    assert per_date_and_table(pipeline.triggers(at_least=5 * TRIALS)) == exactly_once(spec, dates)

    for day in dates:
        first, second = tools(pipeline), tools(pipeline)
        results = race_at_once(
            [lambda: first.retrigger(day, "fix deployed", ALICE), lambda: second.retrigger(day, "fix deployed", BOB)]
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        outcomes = sorted((o.outcome, o.retrigger) for [o] in results)
        assert outcomes == [("joined", 1), ("published", 1)], [o.detail for [o] in results]

    retriggered = pipeline.triggers(at_least=5 * TRIALS)
    assert per_date_and_table(retriggered) == exactly_once(spec, dates)
    assert all(m.attributes["trigger_id"].endswith(":retrigger-1") for m in retriggered)
    for day in dates:
        assert len(retrigger_claims(pipeline.firestore, spec, day)) == 1
        assert sorted(r.outcome for r in for_date(pipeline.firestore, spec, day)) == ["joined", "published"]


def test_cascade_retriggers_exactly_the_n_following_triggered_dates(pipeline):
    spec = pipeline.spec
    before, fixed, d1, off_day, pending, d4, d5, d6 = (
        dt.date(2026, 11, day) for day in (19, 20, 21, 22, 23, 24, 25, 26)
    )
    triggered = [before, fixed, d1, d4, d5, d6]  # 11-22 had no games: no completions, no trigger
    for day in triggered:
        complete(pipeline, day)
    assert per_date_and_table(pipeline.triggers(at_least=5 * len(triggered))) == exactly_once(spec, triggered)
    # 11-23's trigger is still being published (its publish timed out; its lease runs): not triggered yet.
    stuck = pipeline.orchestrator()
    stuck.publisher = _TimesOut(stuck.publisher)
    *first, last = completing_last(spec)  # only the last one makes the date ready
    complete(pipeline, pending, first)
    with pytest.raises(PublishFailed):
        stuck.handle_event(direct_event(last, pending))
    assert pipeline.claim(pending)["state"] == "pending"

    outcomes = tools(pipeline).retrigger(fixed, "team_offense fix: rolling windows include 11-20", ALICE, cascade=3)

    assert [(o.game_date, o.outcome, o.retrigger, o.cascade_from) for o in outcomes] == [
        (fixed, "published", 1, None),
        (d1, "published", 1, fixed),
        (d4, "published", 1, fixed),
        (d5, "published", 1, fixed),
    ]
    retriggered = pipeline.triggers(at_least=20)
    # Each once; not 11-19 (before), 11-22 (no trigger), 11-23 (trigger pending) or 11-26 (past the N).
    assert per_date_and_table(retriggered) == exactly_once(spec, [fixed, d1, d4, d5])
    for (sent_for, _), body in bodies(retriggered).items():
        assert body["trigger_id"].endswith(":retrigger-1")
        if sent_for == str(fixed):
            assert body["trigger_reason"] == "retrigger" and "cascade_from" not in body
        else:
            assert (body["trigger_reason"], body["cascade_from"]) == ("retrigger_cascade", str(fixed))
    [first_record] = for_date(pipeline.firestore, spec, fixed)
    assert first_record.extra["cascade"] == {
        "asked": 3,
        "dates": [str(d1), str(d4), str(d5)],
        "passed_over": [str(pending)],
    }
    invocations = {first_record.invocation}
    for day in (d1, d4, d5):
        [record] = for_date(pipeline.firestore, spec, day)
        assert (record.kind, record.outcome, record.cascade_from, record.retrigger) == (
            "retrigger",
            "published",
            fixed,
            1,
        )
        invocations.add(record.invocation)
    assert len(invocations) == 1  # one command
    assert [for_date(pipeline.firestore, spec, day) for day in (before, off_day, pending, d6)] == [[], [], [], []]
    assert [retrigger_claims(pipeline.firestore, spec, day) for day in (before, pending, d6)] == [[], [], []]


def test_retrigger_refuses_a_date_never_triggered(pipeline):
    [outcome] = tools(pipeline).retrigger(PAST, "fix deployed", ALICE, cascade=2)
    assert outcome.outcome == "refused" and "never triggered" in outcome.detail and "trigger" in outcome.detail
    assert pipeline.triggers() == []
    [record] = for_date(pipeline.firestore, pipeline.spec, PAST)
    assert (record.kind, record.outcome) == ("retrigger", "refused")


def test_a_stalled_retrigger_is_finished_by_the_next_one_not_doubled(pipeline):
    spec = pipeline.spec
    complete(pipeline, PAST)
    pipeline.triggers(at_least=5)
    stalled = tools(pipeline)
    stalled.orchestrator.publisher = _TimesOut(stalled.orchestrator.publisher)
    [failed] = stalled.retrigger(PAST, "fix deployed", ALICE)
    assert (failed.outcome, failed.retrigger) == ("publish_failed", 1)
    assert pipeline.triggers() == []

    time.sleep(spec.orchestrator.claim_lease_seconds + spec.orchestrator.receipt_grace_seconds + 0.5)
    [finished] = tools(pipeline).retrigger(PAST, "fix deployed, again", BOB)

    assert (finished.outcome, finished.retrigger) == ("finished", 1), finished.detail
    messages = pipeline.triggers(at_least=5)
    assert per_date_and_table(messages) == exactly_once(spec, [PAST])
    assert all(m.attributes["trigger_id"].endswith(":retrigger-1") for m in messages)
    assert [c.is_published for c in retrigger_claims(pipeline.firestore, spec, PAST)] == [True]


# -- skip ---------------------------------------------------------------------------------


def test_skip_is_recorded_listed_by_skipped_triggers_nothing_and_can_be_undone(pipeline):
    spec = pipeline.spec
    overrides = tools(pipeline)
    first = overrides.skip(
        PAST, "TeamOffenseGameSummaryProcessor", "no team box scores this night (NBA feed outage)", ALICE
    )
    assert (first.outcome, first.processors) == ("recorded", ("team_offense_game_summary",))
    overrides.skip(PAST, "upcoming_team_game_context", "retired for this date", BOB)

    skips = skipped(pipeline.firestore, spec, PAST)
    assert sorted(skips) == ["team_offense_game_summary", "upcoming_team_game_context"]
    skip = skips["team_offense_game_summary"]
    assert (skip.kind, skip.operator, skip.reason, skip.outcome) == (
        "skip",
        ALICE.name,
        "no team box scores this night (NBA feed outage)",
        "recorded",
    )
    assert skip.at is not None and skip.command == f"phase3ops skip {PAST} team_offense_game_summary"
    assert pipeline.claim(PAST) is None and pipeline.triggers() == []  # a skip triggers nothing
    assert skipped(pipeline.firestore, spec, PAST - dt.timedelta(days=1)) == {}

    undone = overrides.skip(PAST, "team_offense_game_summary", "the feed came back", BOB, undo=True)
    assert undone.outcome == "recorded"
    assert sorted(skipped(pipeline.firestore, spec, PAST)) == ["upcoming_team_game_context"]
    again = overrides.skip(PAST, "team_offense_game_summary", "the feed came back", BOB, undo=True)
    assert again.outcome == "refused" and "nothing to undo" in again.detail

    assert [(r.kind, r.processors, r.outcome) for r in for_date(pipeline.firestore, spec, PAST)] == [
        ("skip", ("team_offense_game_summary",), "recorded"),
        ("skip", ("upcoming_team_game_context",), "recorded"),
        ("unskip", ("team_offense_game_summary",), "recorded"),
        ("unskip", ("team_offense_game_summary",), "refused"),
    ]
    assert {
        day: sorted(s)
        for day, s in skipped_between(pipeline.firestore, spec, PAST - dt.timedelta(days=3), PAST).items()
    } == {PAST: ["upcoming_team_game_context"]}


def test_bad_input_names_the_argument_and_records_nothing(pipeline):
    overrides = tools(pipeline)
    for call, argument in [
        (lambda: overrides.skip(PAST, "box_score_processor", "why", ALICE), "PROCESSOR"),
        (lambda: overrides.skip(PAST, PGS, "   ", ALICE), "--reason"),
        (lambda: overrides.force_trigger("2026-11-31", "why", ALICE), "DATE"),
        (lambda: overrides.retrigger(PAST, "why", ALICE, cascade=-1), "--cascade"),
    ]:
        with pytest.raises(BadOverride) as raised:
            call()
        assert raised.value.argument == argument
    assert for_date(pipeline.firestore, pipeline.spec, PAST) == []


# -- the health check -----------------------------------------------------------------------


class _TimesOut:
    """Pub/Sub does not answer within the deadline: nothing is known to have been sent."""

    def __init__(self, real):
        self.real, self.topic_path = real, real.topic_path

    def publish_all(self, messages, deadline=None):
        return [PublishOutcome(m, error="DeadlineExceeded: 504 Deadline Exceeded", definitive=False) for m in messages]


def test_the_check_lists_overrides_and_finds_an_unreasoned_skip_and_an_unfinished_force(pipeline):
    spec = pipeline.spec
    yesterday = PAST - dt.timedelta(days=1)
    complete(pipeline, PAST, [n for n in spec.processor_names if n != UPGC])
    failing = tools(pipeline)
    failing.orchestrator.publisher = _TimesOut(failing.orchestrator.publisher)
    forced = failing.force_trigger(PAST, "UPGC broken", ALICE)
    assert forced.outcome == "publish_failed" and "reconcile" in forced.detail
    tools(pipeline).skip(yesterday, PGS, "no games scored", BOB)
    # A skip written without a reason (by hand, in the console).
    pipeline.firestore.collection(spec.orchestrator.collections.overrides).document("by-hand").set(
        {
            "kind": "skip",
            "game_date": str(yesterday),
            "processors": ["upcoming_team_game_context"],
            "operator": "carol",
            "reason": "",
            "outcome": "recorded",
            "at": firestore.SERVER_TIMESTAMP,
        }
    )

    def check():
        no_warehouse = cast(Warehouse, None)  # the overrides check never reads the warehouse
        context = CheckContext(spec, yesterday, PAST, NOW, {}, no_warehouse, project=pipeline.project)
        return overrides_check.run(context)

    result = check()
    assert result.status is Status.FAILED, result
    assert len(result.findings) == 2, result.findings
    assert any(
        "force_trigger by alice@example.com: publish_failed (UPGC broken): did not reach Phase 4" in f
        for f in result.findings
    )
    assert any("upcoming_team_game_context by carol" in f and "a skip without a reason" in f for f in result.findings)
    assert f"scripts/reconcile_phase3_completion.py --date {PAST} --fix" in result.fix
    assert [d for d in result.details if "skip player_game_summary by bob@example.com: recorded (no games scored)" in d]
    assert result.summary == "3 overrides on 2 dates, 2 need attention"

    # The orchestrator's recovery (a reconciliation) finishes the forced claim: then it is only listed.
    time.sleep(spec.orchestrator.claim_lease_seconds + spec.orchestrator.receipt_grace_seconds + 0.5)
    assert pipeline.orchestrator().advance(PAST, owner="reconcile-test").outcome == "republished"
    assert per_date_and_table(pipeline.triggers(at_least=5)) == exactly_once(spec, [PAST])
    result = check()
    assert [f for f in result.findings if "force_trigger" in f] == []
    assert any("its claim has been published since" in d for d in result.details)


def _wait(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")
