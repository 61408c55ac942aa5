"""A lease lock per (processor, game date) in Firestore, with fencing tokens.

What the lock this replaces got wrong, and what this one does instead:
- a 10-minute stale takeover and no renewal: here a short lease (60 s by
  default) that the holder renews in the background every lease/3;
- release without checking ownership, so a slow run deleted the next holder's
  lock: here release is a compare-and-set that only touches the lock while the
  caller's owner id *and* fencing token are still the current ones;
- a busy lock made the run return success without doing anything: here the
  caller waits with backoff, then raises `LockBusy` so the request is retried;
- a holder whose lease ran out could still write: here every grant carries
  a fencing token that grows with each grant, and the warehouse write checks
  it in the same transaction as the MERGE (`warehouse.port.WriteFence`), so a
  paused holder can never overwrite its successor; `ensure_current()` is
  only an early, cheap exit before the work.

Leases are measured in Firestore's time: a lease runs from the commit time
of the last grant or renewal (the document's update time; nothing else
writes a held lock) for `lease_seconds`, and a reader compares that with
the time Firestore read the document. Two instances' clocks never meet, and
slow I/O cannot shorten a lease.

The lock document is never deleted by a run. Its `token` grows with every
new grant, and `expires_at` (well after the lease, plus retention) lets a
Firestore TTL policy remove documents of dead or released locks. A token is
never below the grant's time in milliseconds (Firestore's time), so tokens
keep growing after the TTL policy removed a document: the write fence and
the completion record keep the newest token for good, and a lock that
started again at 1 would have every later run of its date refused. The same
floor gives a ceiling to check a reported token against once the document
is gone (`token_ceiling`).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from phase3ops.compare_and_set import compare_and_set

log = logging.getLogger("phase3ops.lock")

Clock = Callable[[], dt.datetime]
GRANT_HISTORY = 20  # grants kept in the lock document


class LockBusy(RuntimeError):
    """Another run holds the lock and did not release it within the wait limit."""


class LockLost(RuntimeError):
    """The caller's lease ran out and the lock was (or may be) granted to someone else."""


def lock_document_id(processor: str, game_date: dt.date) -> str:
    return f"{processor}_{game_date.isoformat()}"


TOKEN_SLACK = 60_000  # a token may run ahead of its grant's time by one per grant within a millisecond


def time_token(at: dt.datetime) -> int:
    """The least token a grant at `at` (Firestore's time) receives: milliseconds since the epoch."""
    return int(at.timestamp() * 1000)


def token_ceiling(snapshot) -> int:
    """The newest token that can have been granted for a lock, from a read of its document:
    the document's own token while it exists; after the TTL policy removed it, the time
    of the read (every grant's token is at least its time, and time only moves on)."""
    if snapshot.exists:
        return int(snapshot.to_dict().get("token") or 0)
    return time_token(snapshot.read_time) + TOKEN_SLACK


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def default_owner_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class LockSettingsView:
    lease: dt.timedelta
    max_wait: dt.timedelta
    retention: dt.timedelta


class LeaseLocks:
    """Factory of leases on one Firestore collection."""

    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        lease_seconds: float = 60.0,
        max_wait_seconds: float = 120.0,
        retention_hours: float = 24.0,
        clock: Clock = utc_now,
    ):
        self._client = client
        self._collection = client.collection(collection)
        self.settings = LockSettingsView(
            lease=dt.timedelta(seconds=lease_seconds),
            max_wait=dt.timedelta(seconds=max_wait_seconds),
            retention=dt.timedelta(hours=retention_hours),
        )
        self._clock = clock

    def document(self, processor: str, game_date: dt.date):
        return self._collection.document(lock_document_id(processor, game_date))

    def acquire(self, processor: str, game_date: dt.date, owner: str | None = None) -> Lease:
        """Wait (with jittered exponential backoff) until the lock is ours, or raise LockBusy."""
        owner = owner or default_owner_id()
        ref = self.document(processor, game_date)
        deadline = time.monotonic() + self.settings.max_wait.total_seconds()
        delay = 0.05
        while True:
            granted = _try_grant(ref, owner, self._clock, self.settings)
            if granted.token is not None:
                if granted.taken_over_from:
                    log.warning(
                        "took over an expired lock from %s",
                        granted.taken_over_from,
                        extra={
                            "event": "lock_takeover",
                            "lock": ref.id,
                            "processor": processor,
                            "game_date": game_date.isoformat(),
                            "owner": owner,
                            "previous_owner": granted.taken_over_from,
                            "previous_token": granted.previous_token,
                            "token": granted.token,
                        },
                    )
                return Lease(self, ref, processor, game_date, owner, granted.token)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockBusy(
                    f"lock {ref.id} is held by {granted.holder} (lease until {granted.holder_lease_end}); "
                    f"waited {self.settings.max_wait.total_seconds():.0f}s"
                )
            time.sleep(min(remaining, delay * (0.5 + random.random())))
            delay = min(delay * 2, 2.0)

    def _renew(self, lease: Lease) -> bool:
        return _update_if_ours(
            lease.ref,
            lease.owner,
            lease.token,
            {"renewed_at": firestore.SERVER_TIMESTAMP, "expires_at": _ttl(self._clock(), self.settings)},
        )

    def _is_current(self, lease: Lease) -> bool:
        snapshot = lease.ref.get()
        if not snapshot.exists:
            return False
        data = snapshot.to_dict()
        return data.get("owner") == lease.owner and data.get("token") == lease.token and _lease_live(snapshot)

    def _release(self, lease: Lease) -> bool:
        return _update_if_ours(
            lease.ref,
            lease.owner,
            lease.token,
            {
                "owner": None,
                "released_at": firestore.SERVER_TIMESTAMP,
                "lease_seconds": 0,
                "expires_at": self._clock() + self.settings.retention,
            },
        )


class Lease:
    """A granted lock. Use as a context manager: renews while inside, releases on exit."""

    def __init__(self, locks: LeaseLocks, ref, processor: str, game_date: dt.date, owner: str, token: int):
        self._locks = locks
        self.ref = ref
        self.processor = processor
        self.game_date = game_date
        self.owner = owner
        self.token = token
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self.start_renewing()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop_renewing()
        self.release()

    def start_renewing(self) -> None:
        interval = self._locks.settings.lease.total_seconds() / 3
        self._renewer = threading.Thread(
            target=self._renew_loop, args=(interval,), name=f"renew-{self.ref.id}", daemon=True
        )
        self._renewer.start()

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)

    def _renew_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                if not self._locks._renew(self):
                    self._mark_lost("the lock now belongs to someone else")
                    return
            except Exception:  # a failed renewal is retried; the lease may still be ours
                log.warning(
                    "lock renewal failed; retrying",
                    exc_info=True,
                    extra={"event": "lock_renewal_failed", "lock": self.ref.id},
                )

    def _mark_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost.set()
            log.error(
                "lost lock %s: %s",
                self.ref.id,
                reason,
                extra={"event": "lock_lost", "lock": self.ref.id, "owner": self.owner, "token": self.token},
            )

    def ensure_current(self) -> None:
        """Call right before writing: raises LockLost unless this lease is still the lock."""
        if self.lost.is_set() or not self._locks._is_current(self):
            self._mark_lost("lease expired or lock granted to another run")
            raise LockLost(f"lock {self.ref.id} (token {self.token}) is no longer held by {self.owner}")

    def release(self) -> bool:
        """Release if still ours; never touches a lock granted to someone else."""
        released = self._locks._release(self)
        if not released:
            log.warning(
                "did not release lock %s: it is no longer ours",
                self.ref.id,
                extra={"event": "lock_release_skipped", "lock": self.ref.id, "owner": self.owner, "token": self.token},
            )
        return released


@dataclass(frozen=True)
class _Grant:
    token: int | None
    taken_over_from: str | None = None
    previous_token: int | None = None
    holder: str | None = None
    holder_lease_end: dt.datetime | None = None


# Every write below is a compare-and-set on the document's update time (or a
# create), not a read-write transaction: a waiter never holds a lock on the
# document, so it can never delay the holder's renewal. (Measured on the
# emulator: two contending grant transactions stalled each other for 6 s,
# longer than a short lease.)


def lease_end(snapshot) -> dt.datetime | None:
    """When a lock's lease runs out, in Firestore's time (None for a lock never granted)."""
    if not snapshot.exists:
        return None
    return snapshot.update_time + dt.timedelta(seconds=float(snapshot.to_dict().get("lease_seconds", 0)))


def _lease_live(snapshot) -> bool:
    end = lease_end(snapshot)
    return snapshot.exists and snapshot.to_dict().get("owner") is not None and snapshot.read_time < end


def _ttl(now: dt.datetime, settings: LockSettingsView) -> dt.datetime:
    # Only for the TTL policy, which deletes within a day or so: a host clock is precise enough.
    return now + 2 * settings.lease + settings.retention


def _try_grant(ref, owner: str, clock: Clock, settings: LockSettingsView) -> _Grant:
    snapshot = ref.get()
    data = snapshot.to_dict() if snapshot.exists else {}
    holder = data.get("owner")
    if _lease_live(snapshot):
        return _Grant(None, holder=holder, holder_lease_end=lease_end(snapshot))
    token = max(int(data.get("token", 0)) + 1, time_token(snapshot.read_time))
    # The last grants, for `phase3ops explain`: who held the lock under which token, and who took it over from whom.
    grants = [*(data.get("grants") or [])][-(GRANT_HISTORY - 1) :]
    grants.append({"owner": owner, "token": token, "at": snapshot.read_time, "taken_over_from": holder})
    grant = {
        "owner": owner,
        "token": token,
        "acquired_at": firestore.SERVER_TIMESTAMP,
        "renewed_at": firestore.SERVER_TIMESTAMP,
        "lease_seconds": settings.lease.total_seconds(),
        "expires_at": _ttl(clock(), settings),
        "released_at": None,
        "grants": grants,
    }
    try:
        if snapshot.exists:
            ref.update(grant, option=firestore.Client.write_option(last_update_time=snapshot.update_time))
        else:
            ref.create(grant)
    except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound):
        return _Grant(None, holder="(a concurrent acquirer)")  # lost the race: look again
    return _Grant(token, taken_over_from=holder, previous_token=data.get("token"))


def _update_if_ours(ref, owner: str, token: int, fields: dict[str, Any]) -> bool:
    """Apply `fields` only while owner and token are still the caller's."""

    def apply(snapshot) -> tuple[bool, dict[str, Any] | None]:
        data = snapshot.to_dict() if snapshot.exists else {}
        ours = data.get("owner") == owner and data.get("token") == token
        return ours, fields if ours else None

    return compare_and_set(ref, apply)
