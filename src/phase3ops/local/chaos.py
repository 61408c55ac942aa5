"""The reference system's failures for one local game day, armed on entry and undone on every exit.

Armed: a second push subscription delivers every completion to the
orchestrator again; a kill file makes the next orchestrator instance that
claims a trigger die half-way through its fan-out; another makes the
receipt of the date's first Phase 4 message arrive only after the claim's
lease ran out; a third makes one processor run fail reading the warehouse
(it reports `failed`, Pub/Sub delivers the push again and the next run
succeeds); a helper process takes a processor's lock and is SIGKILLed
while holding it. Whatever ends the day (it
finishes, fails, Ctrl-C, SIGTERM), leaving the `with` block removes the
subscription and the kill file and stops the helper. The helper is recorded
in the state the moment it starts, so even a SIGKILLed run-day leaves
nothing that `local down` does not stop.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from types import TracebackType

from google.api_core import exceptions as gexc

from phase3ops.emulators import stop_process_group
from phase3ops.local.environment import DUPLICATE_SUBSCRIPTION, orchestrator_route
from phase3ops.local.state import ARMED_ENV, HELPER_PREFIX, RECEIPT_LATE_ENV, RUN_FAILS_ENV, Component, LocalState
from phase3ops.pubsub_admin import ensure_subscription
from phase3ops.spec.pipeline import PipelineSpec

LOCK_HOLDER = f"{HELPER_PREFIX}chaos-lock-holder"
FAILING_PROCESSOR = "upcoming_team_game_context"  # optional in every mode: its retry holds nothing up
_DISARMED = {
    ARMED_ENV: "the orchestrator kill disarmed",
    RECEIPT_LATE_ENV: "the late receipt disarmed",
    RUN_FAILS_ENV: "the failing processor run disarmed",
}


class ChaosDay:
    def __init__(self, state: LocalState, spec: PipelineSpec, game_date: dt.date, subscriber, say=lambda text: None):
        self.state, self.spec, self.game_date, self.subscriber, self.say = state, spec, game_date, subscriber, say
        self._holder: subprocess.Popen | None = None

    def __enter__(self) -> ChaosDay:
        orchestrator = orchestrator_route(self.spec, self.state)
        ensure_subscription(
            self.subscriber,
            self.state.project,
            self.spec.topics.completion,
            DUPLICATE_SUBSCRIPTION,
            orchestrator.endpoint(self.state),
        )
        self.state.chaos_armed_file.write_text(str(self.game_date))
        self.state.chaos_receipt_late_file.write_text(str(self.game_date))
        self.state.chaos_run_fails_file.write_text(f"{FAILING_PROCESSOR} {self.game_date}")
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        undone = self.disarm()
        if error is not None and undone:  # the day was cut short: say what is no longer armed
            self.say("chaos undone: " + "; ".join(undone))

    def disarm(self) -> list[str]:
        """Undo everything still armed; what was undone, for the report."""
        undone = []
        try:
            self.subscriber.delete_subscription(
                request={"subscription": self.subscriber.subscription_path(self.state.project, DUPLICATE_SUBSCRIPTION)}
            )
            undone.append("the duplicate-delivery subscription removed")
        except gexc.NotFound:
            pass
        for name, path in self.state.chaos_files.items():
            if path.exists():
                path.unlink()
                undone.append(_DISARMED[name])
        holder = self.state.components.get(LOCK_HOLDER)
        if holder is not None:
            if holder.alive():
                stop_process_group(holder.pid, timeout=5)
                undone.append(f"the lock-holding helper stopped (pid {holder.pid})")
            self.state.forget(LOCK_HOLDER)
        return undone

    def hold_lock(self, processor: str) -> int:
        """Start a process that takes `processor`'s lock for the date and keeps renewing it."""
        lock = self.spec.analytics.lock
        program = textwrap.dedent(f"""
            import datetime as dt, time
            from google.cloud import firestore
            from phase3ops.locking.lease_lock import LeaseLocks
            locks = LeaseLocks(firestore.Client(project={self.state.project!r}), {lock.collection!r}, lease_seconds={lock.lease_seconds})
            lease = locks.acquire({processor!r}, dt.date.fromisoformat({self.game_date.isoformat()!r}), owner="chaos-doomed-instance")
            lease.start_renewing()
            print("holding", flush=True)
            time.sleep(600)
        """)
        process = subprocess.Popen(
            [sys.executable, "-c", program],
            env={**os.environ, **self.state.env, "PYTHONWARNINGS": "ignore"},
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.state.record(LOCK_HOLDER, Component("chaos lock holder", process.pid, "-", "-"))
        assert process.stdout is not None  # stdout=PIPE
        if process.stdout.readline().strip() != "holding":
            process.kill()
            raise RuntimeError("the chaos lock holder did not start")
        self._holder = process
        return process.pid

    def kill_lock_holder(self) -> int:
        """SIGKILL the holder: no release, no cleanup, as a killed instance."""
        process = self._holder
        assert process is not None, "hold_lock() starts the holder first"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self.state.forget(LOCK_HOLDER)
        return process.pid
