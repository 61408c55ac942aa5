"""reconcile --fix re-requests a run the expected-work ledger misses: once per repair, bounded, against the emulators."""

from __future__ import annotations

import datetime as dt
import functools
import json
import zoneinfo
from typing import cast

import google.cloud.pubsub_v1 as pubsub_v1
import pytest
from google.cloud import firestore

from phase3ops.checks import reconcile
from phase3ops.checks.ledger import Gap
from phase3ops.checks.repairs import EXHAUSTED, IN_FLIGHT, OVER_BUDGET, RACED, REQUESTED, ProcessorRepairs
from phase3ops.orchestrator.orchestrator import Orchestrator
from phase3ops.pubsub_admin import ensure_subscription, ensure_topic
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.delivery import pull_everything
from tests.support.orchestration import race_at_once
from tests.support.repo_copy import REPO_ROOT

pytestmark = pytest.mark.emulators

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
NY = zoneinfo.ZoneInfo(SPEC.timezone)
DAY = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 23, 9, 30, tzinfo=NY)
TRIALS = 10


def gap(day: dt.date = DAY, processor: str = "team_defense_game_summary") -> Gap:
    return Gap(day, processor, dt.datetime(2026, 11, 21, 10, tzinfo=NY), "overnight", 3, "no run")


@pytest.fixture
def phase3_trigger(gcp_project):
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    ensure_topic(publisher, gcp_project, SPEC.topics.phase3_trigger)
    listener = ensure_subscription(subscriber, gcp_project, SPEC.topics.phase3_trigger, "repair-listener")

    def requests() -> list[dict]:
        return [json.loads(m.data) for m in pull_everything(subscriber, listener, settle_seconds=1.0)]

    db = firestore.Client(project=gcp_project)
    return (lambda: ProcessorRepairs(SPEC, db, publisher, gcp_project)), requests


def test_a_missing_run_is_requested_with_the_message_phase2_sends(phase3_trigger):
    repairs, requests = phase3_trigger
    [result] = repairs().request([gap()], NOW, "run-1")
    assert (result.outcome, result.attempt, result.ok) == (REQUESTED, 1, True)
    [message] = requests()
    assert message == {
        "game_date": "2026-11-20",
        "processors": ["team_defense_game_summary"],
        "correlation_id": "repair-run-1-2026-11-20-team_defense_game_summary-1",
    }


def test_concurrent_reconciliations_request_each_missing_run_once(phase3_trigger):
    """Two reconcile --fix at the same instant, many trials: one request per (date, processor) in all."""
    repairs, requests = phase3_trigger
    dates = [DAY - dt.timedelta(days=n) for n in range(TRIALS)]
    raced = 0

    def request(day: dt.date, run_id: str) -> list:
        return repairs().request([gap(day)], NOW, run_id)

    for day in dates:
        first, second = race_at_once([functools.partial(request, day, "a"), functools.partial(request, day, "b")])
        outcomes = sorted(r.outcome for r in first + second)
        assert outcomes in ([REQUESTED, RACED], [IN_FLIGHT, REQUESTED]), outcomes
        raced += RACED in outcomes
    sent = requests()
    assert sorted(m["game_date"] for m in sent) == sorted(d.isoformat() for d in dates)  # zero duplicates, zero losses
    print(f"{raced} of {TRIALS} trials raced on the attempt's create")


def test_a_requested_run_is_not_asked_for_again_until_it_had_its_time_and_at_most_the_bound(phase3_trigger):
    repairs, requests = phase3_trigger
    instance = repairs()
    assert [r.outcome for r in instance.request([gap()], NOW, "r1")] == [REQUESTED]
    assert [r.outcome for r in instance.request([gap()], NOW + instance.patience - dt.timedelta(seconds=1), "r2")] == [
        IN_FLIGHT
    ]
    later = NOW
    assert SPEC.expected_work is not None
    bound = SPEC.expected_work.max_repairs_per_date_processor
    for attempt in range(2, bound + 1):
        later += instance.patience
        [result] = instance.request([gap()], later, f"r{attempt + 1}")
        assert (result.outcome, result.attempt) == (REQUESTED, attempt)
    [given_up] = instance.request([gap()], later + instance.patience, "last")
    assert (given_up.outcome, given_up.ok) == (
        EXHAUSTED,
        False,
    ) and "phase3ops skip 2026-11-20 team_defense_game_summary" in given_up.detail
    assert len(requests()) == bound


def test_a_run_sends_at_most_its_budget(phase3_trigger):
    repairs, requests = phase3_trigger
    assert SPEC.expected_work is not None
    budget = SPEC.expected_work.max_repairs_per_run
    many = [gap(DAY - dt.timedelta(days=n)) for n in range(budget + 3)]
    results = repairs().request(many, NOW, "budget")
    assert [r.outcome for r in results].count(REQUESTED) == budget
    assert [r.outcome for r in results[budget:]] == [OVER_BUDGET] * 3
    assert len(requests()) == budget


def test_reconcile_lists_an_old_gap_and_fix_requests_it(phase3_trigger):
    repairs, requests = phase3_trigger
    issues = reconcile.find_issues(SPEC, {}, NOW, [gap()])
    assert [(i.game_date, i.kind, i.processor) for i in issues] == [
        (DAY, reconcile.MISSING_RUN, "team_defense_game_summary")
    ]
    no_orchestrator = cast(Orchestrator, None)  # no window dates to advance: the orchestrator is not needed
    [fixed] = reconcile.fix(no_orchestrator, issues, NOW, repairs())
    assert fixed.ok and fixed.message.startswith(
        "team_defense_game_summary: requested: asked nba-phase3-analytics-processors"
    )
    assert len(requests()) == 1
