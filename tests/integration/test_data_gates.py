"""Phase 4 runs on data that is there: the gates hold a ready date, its deadline decides, late data follows up.

The shipped gates (pipeline.yaml) over real processor output in DuckDB, the
orchestrator on the emulators, completions handed straight to it. Each test
failed on the code before the gates: every ready date was triggered at once,
whatever its tables held, and late data never reached Phase 4.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import json
import logging
import threading
import time

import pytest

from phase3ops.orchestrator.gate_holds import GateHolds
from phase3ops.spec.pipeline import load_pipeline_spec
from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse
from tests.support.game_days import processed_day
from tests.support.orchestration import direct_event, handle_until_acked, race_at_once
from tests.support.pipelines import NOW, PAST, Clock, make_pipeline, short_lease_spec_file
from tests.support.single_process_duckdb import SingleProcessDuckDB

pytestmark = [pytest.mark.emulators, pytest.mark.minutes_long(seconds=45)]
TEAM_TABLES = ("team_offense_game_summary", "team_defense_game_summary")
BEFORE_DEADLINE = NOW - dt.timedelta(hours=2)  # 08:00 in New York: PAST's overnight deadline (10:00) is still ahead
AFTER_DEADLINE = NOW + dt.timedelta(hours=2)


def gated(gcp_project, tmp_path, clock: dt.datetime, **changes):
    spec = load_pipeline_spec(short_lease_spec_file(tmp_path, gates=True, **changes))
    warehouse = SingleProcessDuckDB(tmp_path / "warehouse.duckdb")
    return make_pipeline(gcp_project, spec, clock=Clock(clock), warehouse=warehouse), warehouse


def deliver(instance, processor, day, status="success", **fields):
    return handle_until_acked(instance, direct_event(processor, day, status=status, **fields))


def held_decisions(caplog):
    return [r for r in caplog.records if getattr(r, "outcome", None) == "held"]


def test_a_ready_date_with_an_empty_table_is_held_named_and_triggered_once_its_rows_land(gcp_project, tmp_path, caplog):
    pipeline, warehouse = gated(gcp_project, tmp_path, BEFORE_DEADLINE)
    try:
        processed_day(warehouse, pipeline.spec, PAST, skip=TEAM_TABLES)  # the late scraper: no team box scores yet
        orchestrator = pipeline.orchestrator()
        with caplog.at_level(logging.INFO, logger="phase3ops.orchestrator"):
            for name in ("upcoming_team_game_context", "player_game_summary", *TEAM_TABLES):
                deliver(orchestrator, name, PAST, status="no_data" if name in TEAM_TABLES else "success")
            decision = deliver(
                orchestrator, "upcoming_player_game_context", PAST
            )  # 3 of 5 with the critical ones: ready
        assert decision.outcome == "held"
        [line] = held_decisions(caplog)
        # What the alert shows: the gate, its figure, what it found.
        assert (line.gate, line.figure, line.gate_detail) == (
            "data_exists",
            0.6,
            "team_offense_game_summary, team_defense_game_summary: 0 rows",
        )
        assert line.levelname == "WARNING" and line.blocked_by == ["data_exists", "record_counts", "game_count"]
        hold = GateHolds(pipeline.firestore, pipeline.spec.orchestrator.collections.holds).get(PAST)
        assert hold is not None
        assert (hold.state, hold.blocked_by, hold.past_deadline) == (
            "held",
            ["data_exists", "record_counts", "game_count"],
            False,
        )
        assert pipeline.claim(PAST) is None and pipeline.triggers() == []

        # A redelivery re-evaluates and holds again; nothing reaches Phase 4.
        assert deliver(orchestrator, "upcoming_player_game_context", PAST).outcome == "held"
        # The team box scores land; the team processors run again and complete: the first completion
        # makes the date pass its gates; the second was reported before that decision, its rows were
        # there when the trigger was decided: recorded late, no follow-up.
        processed_day(warehouse, pipeline.spec, PAST)
        events = [direct_event(name, PAST) for name in TEAM_TABLES]
        outcomes = [handle_until_acked(orchestrator, event).outcome for event in events]
        assert outcomes == ["triggered", "late"]
        assert handle_until_acked(orchestrator, events[0]).outcome == "already_triggered"  # a redelivery: nothing new
        # A re-run reported after the trigger, with other rows: one follow-up.
        assert (
            deliver(orchestrator, "team_defense_game_summary", PAST, metadata={"rows_fingerprint": "corrected"}).outcome
            == "followed_up"
        )

        messages = [json.loads(m.data) for m in pipeline.triggers()]
        trigger = [m for m in messages if not m.get("is_follow_up")]
        assert collections.Counter(m["source_table"] for m in trigger) == {
            p.output_table: 1 for p in pipeline.spec.processors
        }
        assert {(m["data_freshness_verified"], m["degraded"], m["minutes_coverage_pct"]) for m in trigger} == {
            (True, False, 100.0)
        }
        assert [m["source_table"] for m in messages if m.get("is_follow_up")] == ["team_defense_game_summary"]
        hold = GateHolds(pipeline.firestore, pipeline.spec.orchestrator.collections.holds).get(PAST)
        assert hold is not None
        assert (hold.state, hold.evaluations, hold.degraded) == ("released", 2, False)
        assert hold.released_by == f"{pipeline.spec.name}:{PAST}"
    finally:
        pipeline.stop()


@pytest.mark.parametrize("policy", ["trigger_degraded", "hold"])
def test_a_date_still_blocked_at_its_deadline_follows_its_modes_policy(gcp_project, tmp_path, caplog, policy):
    pipeline, warehouse = gated(gcp_project, tmp_path, AFTER_DEADLINE, **{"spec.modes.0.on_deadline": policy})
    try:
        processed_day(warehouse, pipeline.spec, PAST, skip=TEAM_TABLES)
        orchestrator = pipeline.orchestrator()
        with caplog.at_level(logging.INFO, logger="phase3ops.orchestrator"):
            for name in ("upcoming_team_game_context", "player_game_summary"):
                deliver(orchestrator, name, PAST)
            decision = deliver(orchestrator, "upcoming_player_game_context", PAST)
        messages = [json.loads(m.data) for m in pipeline.triggers()]
        hold = GateHolds(pipeline.firestore, pipeline.spec.orchestrator.collections.holds).get(PAST)
        if policy == "hold":
            assert decision.outcome == "held" and messages == []
            [line] = held_decisions(caplog)
            assert (
                line.levelname == "ERROR" and "held past its deadline (on_deadline: hold)" in line.getMessage()
            )  # pages
            assert hold is not None
            assert (hold.state, hold.past_deadline) == ("held", True)
        else:
            assert decision.outcome == "triggered" and len(messages) == len(pipeline.spec.processors)
            assert {(m["degraded"], m["data_freshness_verified"]) for m in messages} == {(True, False)}
            assert {tuple(m["failing_gates"]) for m in messages} == {("data_exists", "record_counts", "game_count")}
            assert pipeline.claim(PAST)["decision"]["degraded"] is True
            assert hold is None  # triggered at the first evaluation: it was never held
    finally:
        pipeline.stop()


@pytest.mark.parametrize("on_error", ["closed", "open"])
def test_a_gate_whose_query_fails_fails_open_or_closed_as_declared(gcp_project, tmp_path, caplog, on_error):
    spec_changes = {
        "spec.gates": [{"name": "data_exists", "kind": "rows_exist", "action": "block", "on_error": on_error}]
    }
    pipeline, _ = gated(gcp_project, tmp_path, BEFORE_DEADLINE, **spec_changes)
    pipeline.warehouse = DuckDBWarehouse(tmp_path / "a-directory.duckdb")
    (tmp_path / "a-directory.duckdb").mkdir()  # the warehouse cannot be opened: the gate query fails
    try:
        orchestrator = pipeline.orchestrator()
        with caplog.at_level(logging.INFO, logger="phase3ops.orchestrator"):
            for name in ("player_game_summary", "team_offense_game_summary"):
                deliver(orchestrator, name, PAST)
            decision = deliver(orchestrator, "upcoming_player_game_context", PAST)
        if on_error == "closed":
            assert decision.outcome == "held"
            [line] = held_decisions(caplog)
            assert line.gate_error and line.gate_detail == "the gate query failed, fails closed: counted as failed"
        else:
            assert decision.outcome == "triggered"
            gates = pipeline.claim(PAST)["decision"]["gates"]["results"]["data_exists"]
            assert (
                gates["passed"]
                and gates["detail"] == "the gate query failed, fails open: counted as passed"
                and gates["error"]
            )
    finally:
        pipeline.stop()


TRIALS = 20


def test_late_data_gets_exactly_one_follow_up_per_table_and_run(gcp_project, tmp_path):
    """20 triggered dates; on each, the team offense table is written again three times after the
    trigger: new rows (run A), the same rows again (run B: nothing new for Phase 4), other rows
    (run C). Every completion is delivered three times, by three instances at the same instant."""
    pipeline, warehouse = gated(gcp_project, tmp_path, BEFORE_DEADLINE)
    try:
        setup = pipeline.orchestrator()
        dates = [PAST - dt.timedelta(days=n) for n in range(TRIALS)]
        for day in dates:
            processed_day(warehouse, pipeline.spec, day)
            for name in pipeline.spec.processor_names:
                deliver(setup, name, day, metadata={"rows_fingerprint": f"first-{name}"})
        assert pipeline.claim(dates[0])["state"] == "published"
        triggered = len(pipeline.triggers())

        three = [pipeline.orchestrator() for _ in range(3)]
        late_runs = [("run-a", "changed-a"), ("run-b", "changed-a"), ("run-c", "changed-c")]
        overlapped = 0
        token = 100
        for execution, fingerprint in late_runs:
            token += 1
            events = {
                day: direct_event(
                    "team_offense_game_summary",
                    day,
                    execution_id=execution,
                    metadata={"rows_fingerprint": fingerprint, "lock_token": token},
                )
                for day in dates
            }
            inside: dict[dt.date, list[tuple[float, float]]] = collections.defaultdict(list)
            lock = threading.Lock()

            def timed(instance, day):
                started = time.monotonic()
                try:
                    return handle_until_acked(instance, events[day])
                finally:
                    with lock:
                        inside[day].append((started, time.monotonic()))

            race_at_once([functools.partial(timed, i, d) for d in dates for i in three])
            overlapped += sum(1 for spans in inside.values() if max(s for s, _ in spans) < min(e for _, e in spans))
        messages = pipeline.triggers(settle_seconds=2)
    finally:
        pipeline.stop()

    assert triggered == TRIALS * len(pipeline.spec.processors)
    by_id = collections.Counter(m.attributes["trigger_id"] for m in messages)
    expected = {
        f"{pipeline.spec.name}:{day}:team_offense_game_summary:late:{run}": 1
        for day in dates
        for run in ("run-a", "run-c")
    }
    assert dict(by_id) == expected  # one per (date, table, run) with changed rows; none for run B's same rows
    bodies = [json.loads(m.data) for m in messages]
    assert {(b["is_follow_up"], b["trigger_reason"], b["source_table"]) for b in bodies} == {
        (True, "late_data", "team_offense_game_summary")
    }
    assert {b["follows_trigger_id"] for b in bodies} == {
        f"{pipeline.spec.name}:{day}:team_offense_game_summary" for day in dates
    }
    assert overlapped >= TRIALS, (
        f"the three deliveries overlapped on only {overlapped} of {3 * TRIALS} (date, run) trials"
    )


def test_a_held_date_fails_the_health_check_and_the_recheck_releases_it_when_data_lands(gcp_project, tmp_path):
    from phase3ops.checks import holds
    from phase3ops.checks.health import check_dates
    from phase3ops.checks.results import Status

    pipeline, warehouse = gated(gcp_project, tmp_path, BEFORE_DEADLINE)
    try:
        processed_day(warehouse, pipeline.spec, PAST, skip=TEAM_TABLES)
        orchestrator = pipeline.orchestrator()
        for name in ("player_game_summary", "upcoming_team_game_context"):
            deliver(orchestrator, name, PAST)
        assert deliver(orchestrator, "upcoming_player_game_context", PAST).outcome == "held"

        _, results = check_dates(
            orchestrator, warehouse, PAST, PAST, BEFORE_DEADLINE, target="local", project=pipeline.project
        )
        by_name = {r.name: r for r in results}
        gates, tracking = by_name["data_gates"], by_name["completion_tracking"]
        assert gates.status is Status.FAILED and gates.metrics == {"held_game_dates": 1.0}
        [finding] = gates.findings
        assert finding.startswith(f"{PAST}: held by data_exists, record_counts, game_count since ")
        assert finding.endswith("(1 evaluations): team_offense_game_summary, team_defense_game_summary: 0 rows")
        assert not [f for f in tracking.findings if "never triggered" in f]  # one finding, in the right place

        # Still short: the recheck holds it again.
        assert [r.outcome for r in holds.recheck(orchestrator, [PAST], BEFORE_DEADLINE)] == ["held"]
        # The team rows land by a backfill that reports nothing: only the recheck sees them.
        processed_day(warehouse, pipeline.spec, PAST)
        assert [r.outcome for r in holds.recheck(orchestrator, [PAST], BEFORE_DEADLINE)] == ["triggered"]
        assert len(pipeline.triggers()) == len(pipeline.spec.processors)
        _, results = check_dates(
            orchestrator, warehouse, PAST, PAST, BEFORE_DEADLINE, target="local", project=pipeline.project
        )
        assert {r.name: r.status for r in results}["data_gates"] is Status.OK
    finally:
        pipeline.stop()


def test_the_recheck_applies_the_deadline_to_a_date_still_held(gcp_project, tmp_path):
    from phase3ops.checks import holds

    pipeline, warehouse = gated(gcp_project, tmp_path, BEFORE_DEADLINE)
    try:
        processed_day(warehouse, pipeline.spec, PAST, skip=TEAM_TABLES)
        orchestrator = pipeline.orchestrator()
        for name in ("player_game_summary", "upcoming_team_game_context", "upcoming_player_game_context"):
            deliver(orchestrator, name, PAST)
        assert pipeline.triggers() == []
        pipeline.clock.now = AFTER_DEADLINE  # 12:00 in New York: no completion came, the team data never did
        [result] = holds.recheck(orchestrator, [PAST], AFTER_DEADLINE)
        assert result.outcome == "triggered"  # the shipped overnight policy: trigger_degraded
        messages = [json.loads(m.data) for m in pipeline.triggers()]
        assert len(messages) == len(pipeline.spec.processors) and all(m["degraded"] for m in messages)
        hold = GateHolds(pipeline.firestore, pipeline.spec.orchestrator.collections.holds).get(PAST)
        assert hold is not None
        assert (hold.state, hold.degraded) == ("released", True)
    finally:
        pipeline.stop()


class CountingWarehouse(DuckDBWarehouse):
    def __init__(self, path):
        super().__init__(path)
        self.queries: list[str] = []

    def query(self, bigquery_sql):
        self.queries.append(bigquery_sql)
        return super().query(bigquery_sql)


def test_the_gates_of_a_ready_date_are_evaluated_once_whatever_arrives_at_once(gcp_project, tmp_path):
    """The completing message delivered to four instances at the same instant, on 20 dates: one
    claims the date and evaluates its gates, the others follow that claim; one query per date."""
    # A lease long enough for 20 dates' queries queued on one DuckDB file: an owner that runs out of
    # lease time before it publishes is another test's subject.
    spec = load_pipeline_spec(short_lease_spec_file(tmp_path, lease=30, publish_timeout=1, gates=True))
    warehouse = CountingWarehouse(tmp_path / "warehouse.duckdb")
    pipeline = make_pipeline(gcp_project, spec, clock=Clock(BEFORE_DEADLINE), warehouse=warehouse)
    try:
        setup = pipeline.orchestrator()
        dates = [PAST - dt.timedelta(days=n) for n in range(TRIALS)]
        finals = {}
        for day in dates:
            processed_day(warehouse, spec, day, games=2)
            for name in (
                "team_offense_game_summary",
                "team_defense_game_summary",
                "upcoming_team_game_context",
                "player_game_summary",
            ):
                deliver(setup, name, day)  # 4 of 5, the critical upcoming_player_game_context missing: waiting
            finals[day] = direct_event("upcoming_player_game_context", day)
        warehouse.queries.clear()
        four = [pipeline.orchestrator() for _ in range(4)]
        results = race_at_once([functools.partial(handle_until_acked, i, finals[d]) for d in dates for i in four])
    finally:
        pipeline.stop()
    gate_queries = [q for q in warehouse.queries if "scheduled" in q or "COUNT(IF" in q]
    assert len(gate_queries) == TRIALS, f"{len(gate_queries)} gate queries for {TRIALS} ready dates"
    outcomes = collections.Counter(r.outcome for r in results)
    assert outcomes == {"triggered": TRIALS, "already_triggered": 3 * TRIALS}, outcomes


def test_an_owner_that_dies_while_evaluating_the_gates_is_taken_over_without_a_grace(gcp_project, tmp_path):
    pipeline, warehouse = gated(
        gcp_project, tmp_path, BEFORE_DEADLINE, **{"spec.orchestrator.receipt_grace_seconds": 30}
    )
    try:
        processed_day(warehouse, pipeline.spec, PAST)
        doomed, survivor = pipeline.orchestrator(), pipeline.orchestrator()
        for name in ("player_game_summary", "team_offense_game_summary"):
            deliver(doomed, name, PAST)
        final = direct_event("upcoming_player_game_context", PAST)

        def killed(game_date, mode):
            raise SystemExit("the instance was killed while it evaluated the gates")

        doomed.gates.evaluate = killed
        with pytest.raises(SystemExit):
            doomed.handle_event(final)
        assert pipeline.claim(PAST)["messages"] == []  # claimed, nothing to publish yet
        time.sleep(
            pipeline.spec.orchestrator.claim_lease_seconds + 0.2
        )  # the lease ends; the 30 s grace is not waited for
        decision = survivor.handle_event(final)
        assert decision.outcome == "triggered"
        assert len(pipeline.triggers()) == len(pipeline.spec.processors)
        assert [h["event"] for h in pipeline.claim(PAST)["history"]] == ["claimed", "taken_over"]
    finally:
        pipeline.stop()


def test_a_takeover_that_finds_the_data_still_short_holds_the_date_and_the_late_run_is_told_later(
    gcp_project, tmp_path
):
    """The owner dies while it evaluates the gates; the next delivery is a team run whose rows are still
    missing elsewhere: it takes the claim over, holds the date, and lets the claim go (no crash)."""
    pipeline, warehouse = gated(
        gcp_project, tmp_path, BEFORE_DEADLINE, **{"spec.orchestrator.receipt_grace_seconds": 30}
    )
    try:
        processed_day(warehouse, pipeline.spec, PAST, skip=("team_defense_game_summary",))
        doomed, survivor = pipeline.orchestrator(), pipeline.orchestrator()
        for name in ("player_game_summary", "upcoming_team_game_context"):
            deliver(doomed, name, PAST)
        doomed.gates.evaluate = lambda game_date, mode: (_ for _ in ()).throw(
            SystemExit("killed while evaluating the gates")
        )
        with pytest.raises(SystemExit):
            doomed.handle_event(direct_event("upcoming_player_game_context", PAST))
        time.sleep(pipeline.spec.orchestrator.claim_lease_seconds + 0.2)
        decision = survivor.handle_event(direct_event("team_offense_game_summary", PAST))
        assert decision.outcome == "held" and pipeline.claim(PAST) is None
        assert survivor.claims.recover(PAST, "someone")[0].name == "GONE"  # a recovery of the claim let go of: no crash
    finally:
        pipeline.stop()


def test_a_follow_up_whose_publish_was_lost_is_finished_by_its_runs_redelivery(gcp_project, tmp_path):
    pipeline, warehouse = gated(gcp_project, tmp_path, BEFORE_DEADLINE)
    try:
        processed_day(warehouse, pipeline.spec, PAST)
        orchestrator = pipeline.orchestrator()
        for name in pipeline.spec.processor_names:
            deliver(orchestrator, name, PAST, metadata={"rows_fingerprint": f"first-{name}"})
        assert len(pipeline.triggers()) == len(pipeline.spec.processors)
        publish_all = orchestrator.publisher.publish_all
        lost: list[str] = []

        def answer_lost(messages, *args, **kwargs):
            outcomes = publish_all(messages, *args, **kwargs)  # it went out, the answer did not come back
            if not lost:
                lost.append(messages[0].trigger_id)
                raise RuntimeError("the instance died after its follow-up's publish")
            return outcomes

        orchestrator.publisher.publish_all = answer_lost
        r2 = direct_event(
            "team_offense_game_summary",
            PAST,
            execution_id="run-2",
            metadata={"rows_fingerprint": "second", "lock_token": 7},
        )
        with pytest.raises(RuntimeError):
            orchestrator.handle_event(r2)
        # A re-run with the same rows arrives before run 2's redelivery: nothing new for Phase 4.
        r3 = direct_event(
            "team_offense_game_summary",
            PAST,
            execution_id="run-3",
            metadata={"rows_fingerprint": "second", "lock_token": 8},
        )
        assert handle_until_acked(orchestrator, r3).outcome in ("late", "already_triggered")
        # Run 2's redelivery finds its own follow-up's claim and finishes it from the receipt.
        decision = handle_until_acked(orchestrator, r2, attempts=100)
        assert decision.outcome == "confirmed_by_receipt" and decision.trigger_id == lost[0]
        assert [m.attributes["trigger_id"] for m in pipeline.triggers(settle_seconds=2)] == [lost[0]]
    finally:
        pipeline.stop()
