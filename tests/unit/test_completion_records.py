"""Which run of a (date, processor) counts: a success is never undone, lock tokens order runs exactly."""

from __future__ import annotations

import datetime as dt

import pytest

from phase3ops.orchestrator.completion_store import decide
from phase3ops.orchestrator.outcomes import RecordOutcome

T0 = dt.datetime(2026, 11, 29, 6, 0, tzinfo=dt.UTC)


def run(execution_id: str, status: str, minute: int, token: int | None = None, message_id: str | None = None) -> dict:
    return {
        "execution_id": execution_id,
        "status": status,
        "counts": status in ("success", "partial"),
        "lock_token": token,
        "message_id": message_id or f"m-{execution_id}-{status}",
        "published_at": T0 + dt.timedelta(minutes=minute),
    }


def record(*runs: dict) -> dict:
    effective = runs[-1]
    return {**effective, "runs": list(runs)}


@pytest.mark.parametrize("later", ["failed", "no_data", "skipped"])
def test_a_later_failure_never_uncompletes_a_success(later):
    assert decide(record(run("a", "success", 0)), run("b", later, 5)) is RecordOutcome.KEPT_SUCCESS


def test_a_success_after_a_failure_counts():
    assert decide(record(run("a", "failed", 0)), run("b", "success", 5)) is RecordOutcome.UPDATED


def test_newer_success_replaces_older_and_an_older_one_arriving_late_is_kept_out():
    current = record(run("a", "success", 0))
    assert decide(current, run("b", "partial", 5)) is RecordOutcome.UPDATED
    assert decide(record(run("b", "success", 5)), run("a", "success", 0)) is RecordOutcome.SUPERSEDED


def test_lock_tokens_order_runs_whatever_the_publish_time():
    # B (token 2) published first; A (token 1, a paused holder) published after it.
    current = record(run("b", "success", 0, token=2))
    assert decide(current, run("a", "success", 5, token=1)) is RecordOutcome.STALE_TOKEN
    assert decide(current, run("a", "no_data", 5, token=1)) is RecordOutcome.STALE_TOKEN
    assert decide(current, run("c", "success", 1, token=3)) is RecordOutcome.UPDATED


def test_a_stale_token_is_refused_against_every_recorded_run():
    # The newest token wrote no_data (kept out of the count); an older token's success is still stale.
    current = record(run("b", "success", 0, token=2), run("c", "no_data", 1, token=3))
    current.update(run("b", "success", 0, token=2))  # the effective run is still the success
    assert decide(current, run("a", "success", 9, token=1)) is RecordOutcome.STALE_TOKEN


@pytest.mark.parametrize("same", ["message", "execution_and_status"])
def test_redeliveries_are_duplicates(same):
    current = record(run("a", "success", 0))
    again = (
        run("a", "success", 3) if same == "execution_and_status" else run("z", "success", 3, message_id="m-a-success")
    )
    assert decide(current, again) is RecordOutcome.DUPLICATE
