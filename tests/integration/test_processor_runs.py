"""Processor runs on the emulators and DuckDB: locked, de-duplicated, atomic, published."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time

import pytest

from phase3ops.locking.lease_lock import LockLost
from tests.support.analytics_runs import DAY

pytestmark = pytest.mark.emulators


def test_a_run_writes_rows_and_publishes_its_completion(analytics):
    result = analytics.runner().run("player_game_summary", DAY, correlation_id="corr-1")

    rows = analytics.rows("player_game_summary")
    assert result.status == "success" and result.record_count == len(rows) == 4 * 2 * 13
    [message] = analytics.published(at_least=1)
    # The reference pipeline's unified publisher format, nulls dropped.
    assert (message["processor_name"], message["phase"]) == ("PlayerGameSummaryProcessor", "phase_3_analytics")
    assert (message["game_date"], message["status"], message["record_count"]) == ("2026-11-28", "success", len(rows))
    assert (message["execution_id"], message["correlation_id"]) == (result.execution_id, "corr-1")
    assert (message["output_table"], message["output_dataset"]) == ("player_game_summary", "nba_analytics")
    assert message["metadata"]["lock_token"] == result.lock_token and "trigger_message_id" not in message
    assert {"timestamp", "duration_seconds", "records_failed"} <= set(message)


@pytest.mark.parametrize("concurrent_runs", [2, 5])
def test_concurrent_runs_of_one_processor_leave_one_set_of_rows(analytics, concurrent_runs):
    barrier = threading.Barrier(concurrent_runs)
    results, errors = [], []

    def instance() -> None:
        runner = analytics.runner()  # its own clients, like another Cloud Run instance
        try:
            barrier.wait(timeout=30)
            results.append(runner.run("team_offense_game_summary", DAY))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=instance) for _ in range(concurrent_runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    tokens = sorted(r.lock_token for r in results)
    assert len(set(tokens)) == concurrent_runs  # one holder at a time, each under a token of its own, growing
    table = analytics.spec.processor("team_offense_game_summary").table
    assert analytics.warehouse.duplicate_counts(table, DAY, DAY) == {DAY: 0}
    assert len(analytics.rows("team_offense_game_summary")) == 8
    assert len(analytics.published(at_least=concurrent_runs)) == concurrent_runs  # every run reported, none skipped


def test_the_merge_is_idempotent(analytics):
    runner = analytics.runner()
    runner.run("upcoming_player_game_context", DAY)
    first = sorted((r["player_lookup"], r["team_abbr"]) for r in analytics.rows("upcoming_player_game_context"))
    runner.run("upcoming_player_game_context", DAY)
    second = sorted((r["player_lookup"], r["team_abbr"]) for r in analytics.rows("upcoming_player_game_context"))
    assert first == second and len(first) == 4 * 2 * 13


@pytest.mark.parametrize("failing_step", ["query", "write", "lock_lost"])
def test_a_failed_run_writes_nothing_and_says_so_unless_it_was_superseded(analytics, failing_step):
    """A run that fails reports `status: failed` with its error, as the reference processors do (the
    orchestrator and the analytics SLO count it; it never un-completes a success); a run whose lock
    was taken over reports nothing: its successor reports the date."""
    runner = analytics.runner()
    if failing_step == "query":
        runner.warehouse = _Failing(analytics.warehouse, "query")
    elif failing_step == "write":
        runner.warehouse = _Failing(analytics.warehouse, "write_partition")
    else:
        real_acquire = runner.locks.acquire

        def acquire_then_lose(*args, **kwargs):
            lease = real_acquire(*args, **kwargs)
            lease.ref.update({"owner": "someone-else", "token": lease.token + 1})  # taken over meanwhile
            return lease

        runner.locks.acquire = acquire_then_lose

    expected = LockLost if failing_step == "lock_lost" else RuntimeError
    with pytest.raises(expected) as failed:
        runner.run("player_game_summary", DAY)
    assert analytics.rows("player_game_summary") == []
    if failing_step == "lock_lost":
        assert analytics.published() == []
        return
    assert str(failed.value) == f"warehouse {runner.warehouse._operation} failed"
    [message] = analytics.published()
    assert (message["output_table"], message["game_date"], message["status"], message["record_count"]) == (
        "player_game_summary",
        DAY.isoformat(),
        "failed",
        0,
    )
    assert message["error_message"] == f"RuntimeError: warehouse {runner.warehouse._operation} failed"
    assert message["error_type"] == "RuntimeError"


class PausedWriter:
    """Holder A: stops right after its lease check, inside the write, with its lease
    renewal frozen too (a GC pause, a frozen VM), until the test lets it go on."""

    def __init__(self, runner):
        self.paused, self.resume = threading.Event(), threading.Event()
        real_write, real_renew = runner.warehouse.write_partition, runner.locks._renew

        def write_after_pause(*args, **kwargs):
            self.paused.set()
            self.resume.wait(timeout=60)
            return real_write(*args, **kwargs)

        def frozen_renew(lease):
            self.resume.wait(timeout=60)
            return real_renew(lease)

        runner.warehouse = _Wrapped(runner.warehouse, write_partition=write_after_pause)
        runner.locks._renew = frozen_renew
        self.result: object = None
        self.thread = threading.Thread(target=self._run, args=(runner,))

    def _run(self, runner) -> None:
        try:
            self.result = runner.run("player_game_summary", DAY)
        except Exception as exc:  # inspected by the test
            self.result = exc

    def start(self) -> PausedWriter:
        self.thread.start()
        assert self.paused.wait(timeout=30)
        return self

    def finish(self):
        self.resume.set()
        self.thread.join(timeout=60)
        return self.result


def corrected_scrape(analytics) -> None:
    """Phase 2 re-scrapes the box scores: every player's points change, newer scraped_at."""
    raw = analytics.spec.raw_table("player_boxscores")
    rows = analytics.warehouse.query(f"SELECT * FROM `{raw.dataset}.{raw.name}` WHERE game_date = DATE '{DAY}'")
    newest = max(r["scraped_at"] for r in rows)
    corrected = [{**r, "points": r["points"] + 100, "scraped_at": newest + dt.timedelta(minutes=30)} for r in rows]
    analytics.warehouse.append(raw, corrected)


def test_a_paused_holder_whose_lease_was_taken_over_cannot_overwrite_its_successor(analytics, caplog):
    holder_a = PausedWriter(analytics.runner()).start()  # computed the old scrape, now paused
    time.sleep(1.5 + 0.3)  # A's lease (1.5 s) runs out; its renewal is frozen
    corrected_scrape(analytics)
    result_b = analytics.runner().run("player_game_summary", DAY)  # takes the lock over under a newer token
    b_points = {r["player_lookup"]: r["points"] for r in analytics.rows("player_game_summary")}

    with caplog.at_level("WARNING", logger="phase3ops.analytics"):
        result_a = holder_a.finish()

    assert isinstance(result_a, LockLost) and "newer lock token" in str(result_a)
    assert {
        r["player_lookup"]: r["points"] for r in analytics.rows("player_game_summary")
    } == b_points  # 0 rows put back
    assert all(points >= 100 for points in b_points.values()) and len(b_points) == 104
    [fenced] = [r for r in caplog.records if getattr(r, "event", None) == "write_fenced"]
    assert fenced.token < result_b.lock_token and fenced.levelname == "WARNING"
    [message] = analytics.published(at_least=1)  # only B's completion: A published nothing
    assert (message["execution_id"], message["metadata"]["lock_token"]) == (result_b.execution_id, result_b.lock_token)


def test_a_paused_holder_that_found_no_rows_publishes_no_stale_no_data(analytics):
    raw = analytics.spec.raw_table("player_boxscores")
    moved = analytics.warehouse.query(f"SELECT * FROM `{raw.dataset}.{raw.name}` WHERE game_date = DATE '{DAY}'")
    analytics.warehouse.execute(f"DELETE FROM `{raw.dataset}.{raw.name}` WHERE game_date = DATE '{DAY}'")
    holder_a = PausedWriter(analytics.runner()).start()  # found no box scores: about to report no_data
    time.sleep(1.5 + 0.3)
    analytics.warehouse.append(raw, moved)  # the late scraper delivers
    result_b = analytics.runner().run("player_game_summary", DAY)

    result_a = holder_a.finish()

    assert isinstance(result_a, LockLost)
    assert result_b.status == "success" and len(analytics.rows("player_game_summary")) == 104
    assert [m["status"] for m in analytics.published(at_least=1)] == ["success"]  # no no_data after B's success


def test_every_write_advances_the_fence_of_its_table_and_date(analytics):
    first = analytics.runner().run("player_game_summary", DAY)
    empty = analytics.runner().run("player_game_summary", dt.date(2026, 12, 25))  # no rows: the fence still moves
    fences = analytics.spec.analytics.write_fences
    rows = analytics.warehouse.query(
        f"SELECT table_name, game_date, token FROM `{fences.dataset}.{fences.name}` ORDER BY game_date"
    )
    assert [(r["table_name"], str(r["game_date"]), r["token"]) for r in rows] == [
        ("nba_analytics.player_game_summary", "2026-11-28", first.lock_token),
        ("nba_analytics.player_game_summary", "2026-12-25", empty.lock_token),
    ]


class _Wrapped:
    """The real object, with some attributes replaced."""

    def __init__(self, real, **replaced):
        self._real, self._replaced = real, replaced

    def __getattr__(self, name):
        return self._replaced.get(name) or getattr(self._real, name)


def test_no_rows_publishes_no_data_and_writes_nothing(analytics):
    result = analytics.runner().run("player_game_summary", dt.date(2026, 12, 25))
    assert (result.status, result.record_count) == ("no_data", 0)
    [message] = analytics.published(at_least=1)
    assert message["status"] == "no_data"


class _Failing:
    """The real warehouse, with one operation failing as a BigQuery outage would."""

    def __init__(self, real, operation: str):
        self._real, self._operation = real, operation

    def __getattr__(self, name):
        if name == self._operation:

            def fail(*args, **kwargs):
                raise RuntimeError(f"warehouse {name} failed")

            return fail
        return getattr(self._real, name)


# -- a re-run never shrinks a good date ------------------------------------------------------------


def _half_the_box_scores_disappear(analytics) -> None:
    """Phase 2 re-scraped the date and, this time, got only half of its games."""
    table = analytics.spec.raw_table("player_boxscores")
    rows = analytics.warehouse.query(f"SELECT * FROM `{table.dataset}.{table.name}` WHERE game_date = DATE '{DAY}'")
    games = sorted({r["game_id"] for r in rows})
    analytics.warehouse.write_partition(table, DAY, [r for r in rows if r["game_id"] in games[: len(games) // 2]])


@pytest.mark.parametrize("action", ["hold", "refuse", "alert"])
def test_a_rerun_on_partial_upstream_data_never_shrinks_a_good_date_by_itself(analytics, action, caplog):
    from phase3ops.analytics.runner import ShrinkHeld
    from phase3ops.spec.pipeline import ShrinkGuard

    analytics.spec = dataclasses.replace(
        analytics.spec, analytics=dataclasses.replace(analytics.spec.analytics, shrink_guard=ShrinkGuard(0.2, action))
    )
    first = analytics.runner().run("player_game_summary", DAY)
    full = analytics.rows("player_game_summary")
    analytics.published(at_least=1)
    _half_the_box_scores_disappear(analytics)

    with caplog.at_level("WARNING", logger="phase3ops.analytics"):
        if action == "hold":
            with pytest.raises(
                ShrinkHeld, match=r"would remove 52 of the date's 104 rows \(50%, the guard allows 20%\)"
            ):
                analytics.runner().run("player_game_summary", DAY)
        else:
            rerun = analytics.runner().run("player_game_summary", DAY)
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "write_shrink"]
    assert (line.removed, line.existing, line.action) == (52, 104, action)
    if action == "alert":  # written, and an error was logged for the alert
        assert len(analytics.rows("player_game_summary")) == 52 and line.levelname == "ERROR"
        return
    assert analytics.rows("player_game_summary") == full  # the good date stands
    if action == "refuse":
        assert rerun.status == "failed"
        [refused] = analytics.published(at_least=1)
        assert refused["status"] == "failed" and refused["metadata"]["refused"] == "shrink_guard"
    else:
        assert analytics.published() == []  # held: nothing published, Pub/Sub delivers it again later

    # An operator who knows the games were really removed: allow_shrink writes it.
    forced = analytics.runner().run("player_game_summary", DAY, allow_shrink=True)
    assert forced.status == "success" and len(analytics.rows("player_game_summary")) == 52 != first.record_count


def test_a_run_reports_a_fingerprint_of_its_rows_that_repeats_for_the_same_rows(analytics):
    analytics.runner().run("team_offense_game_summary", DAY)
    analytics.runner().run("team_offense_game_summary", DAY)
    first, second = analytics.published(at_least=2)
    assert (
        first["metadata"]["rows_fingerprint"] == second["metadata"]["rows_fingerprint"]
    )  # the same rows, computed later
    table = analytics.spec.raw_table("team_boxscores")
    rows = analytics.warehouse.query(f"SELECT * FROM `{table.dataset}.{table.name}` WHERE game_date = DATE '{DAY}'")
    corrected = [{**r, "points": r["points"] + 1, "scraped_at": r["scraped_at"] + dt.timedelta(hours=3)} for r in rows]
    analytics.warehouse.append(table, corrected)  # a stat correction: a newer scrape of every team line
    analytics.runner().run("team_offense_game_summary", DAY)
    [third] = analytics.published(at_least=1)
    assert third["metadata"]["rows_fingerprint"] != first["metadata"]["rows_fingerprint"]
