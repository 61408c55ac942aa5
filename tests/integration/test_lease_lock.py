"""The Firestore lease lock: fencing tokens, renewal, takeover, and ownership-checked release."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from google.cloud import firestore

from phase3ops.locking.lease_lock import LeaseLocks, LockBusy, LockLost

pytestmark = pytest.mark.emulators
DAY = dt.date(2026, 11, 28)


@pytest.fixture
def locks(gcp_project) -> LeaseLocks:
    return LeaseLocks(firestore.Client(project=gcp_project), "locks", lease_seconds=1.5, max_wait_seconds=5)


def lock_document(locks: LeaseLocks) -> dict:
    return locks.document("player_game_summary", DAY).get().to_dict()


def test_tokens_increase_with_every_grant_and_release_keeps_the_document(locks):
    first = locks.acquire("player_game_summary", DAY, owner="run-1")
    assert first.release()
    second = locks.acquire("player_game_summary", DAY, owner="run-2")
    assert second.token > first.token
    second.release()
    snapshot = locks.document("player_game_summary", DAY).get()
    document = snapshot.to_dict()
    assert document["owner"] is None and document["token"] == second.token and document["lease_seconds"] == 0
    assert document["expires_at"] > snapshot.update_time + dt.timedelta(hours=23)  # what the TTL policy deletes by


def test_a_lock_granted_again_after_the_ttl_policy_deleted_it_gets_a_newer_token(locks):
    # The write fence and the completion record keep the newest token for good; a lock
    # whose document the TTL policy removed must not start again below it, or every
    # later run of the date (a backfill a week on) is refused as stale.
    before = locks.acquire("player_game_summary", DAY, owner="run-1")
    before.release()
    locks.document("player_game_summary", DAY).delete()  # what the TTL policy does a day later

    after = locks.acquire("player_game_summary", DAY, owner="backfill")

    assert after.token > before.token
    after.release()


def test_a_held_lock_makes_the_caller_wait_then_fail(locks):
    impatient = LeaseLocks(locks._client, "locks", lease_seconds=30, max_wait_seconds=0.5)
    held = impatient.acquire("player_game_summary", DAY, owner="holder")
    started = time.monotonic()
    with pytest.raises(LockBusy, match="held by holder"):
        impatient.acquire("player_game_summary", DAY, owner="waiter")
    assert time.monotonic() - started >= 0.5
    held.release()


def test_a_waiter_gets_the_lock_when_the_holder_releases(locks):
    held = locks.acquire("player_game_summary", DAY, owner="holder")
    threading.Timer(0.5, held.release).start()
    waiter = locks.acquire("player_game_summary", DAY, owner="waiter")
    assert waiter.token > held.token
    waiter.release()


def test_renewal_keeps_a_long_run_locked(locks):
    with locks.acquire("player_game_summary", DAY, owner="long-run") as lease:
        time.sleep(4)  # well past the 1.5 s lease; renewed every 0.5 s
        with pytest.raises(LockBusy):
            LeaseLocks(locks._client, "locks", lease_seconds=1.5, max_wait_seconds=0.2).acquire(
                "player_game_summary", DAY
            )
        lease.ensure_current()
    assert lock_document(locks)["owner"] is None


def test_a_paused_holder_that_lost_its_lease_can_neither_write_nor_release(locks, caplog):
    paused = locks.acquire("player_game_summary", DAY, owner="paused")  # never renews: a stopped process
    time.sleep(1.7)
    with caplog.at_level("WARNING", logger="phase3ops.lock"):
        successor = locks.acquire("player_game_summary", DAY, owner="successor")
    [takeover] = [r for r in caplog.records if getattr(r, "event", None) == "lock_takeover"]
    assert takeover.levelname == "WARNING" and takeover.previous_owner == "paused"

    with pytest.raises(LockLost):
        paused.ensure_current()
    assert paused.release() is False
    assert lock_document(locks)["owner"] == "successor"  # the slow run did not delete the next holder's lock
    successor.ensure_current()
    assert successor.release()


def test_a_holder_killed_mid_run_is_taken_over_after_its_lease(locks, gcp_project, emulator_hosts, caplog):
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import time, datetime as dt
                from google.cloud import firestore
                from phase3ops.locking.lease_lock import LeaseLocks
                locks = LeaseLocks(firestore.Client(project={gcp_project!r}), "locks", lease_seconds=1.5)
                lease = locks.acquire("player_game_summary", dt.date(2026, 11, 28), owner="doomed")
                lease.start_renewing()
                print("holding", flush=True)
                time.sleep(600)
            """),
        ],
        env={**os.environ, **emulator_hosts, "PYTHONWARNINGS": "ignore"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None  # stdout=PIPE
    assert child.stdout.readline().strip() == "holding"
    time.sleep(2)  # renewals keep it held while the process lives
    with pytest.raises(LockBusy):
        LeaseLocks(locks._client, "locks", lease_seconds=1.5, max_wait_seconds=0.2).acquire("player_game_summary", DAY)

    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    killed_at = time.monotonic()
    with caplog.at_level("WARNING", logger="phase3ops.lock"):
        successor = locks.acquire("player_game_summary", DAY, owner="successor")
    assert time.monotonic() - killed_at < 5
    assert [r.previous_owner for r in caplog.records if getattr(r, "event", None) == "lock_takeover"] == ["doomed"]
    successor.release()
    # The document keeps the grants for `phase3ops explain`: the takeover is there after the logs are gone.
    grants = successor.ref.get().to_dict()["grants"]
    assert [(g["owner"], g["taken_over_from"]) for g in grants] == [("doomed", None), ("successor", "doomed")]
    assert grants[0]["at"] < grants[1]["at"] and grants[0]["token"] < grants[1]["token"] == successor.token


def test_a_lease_is_measured_in_firestores_time_not_a_skewed_host_clock(locks):
    held = locks.acquire("player_game_summary", DAY, owner="holder")
    an_hour_ahead = LeaseLocks(
        locks._client,
        "locks",
        lease_seconds=1.5,
        max_wait_seconds=0.3,
        clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    with pytest.raises(LockBusy, match="held by holder"):
        an_hour_ahead.acquire("player_game_summary", DAY, owner="skewed")
    held.ensure_current()
    assert held.release()
