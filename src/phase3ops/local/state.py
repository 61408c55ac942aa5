"""What `phase3ops local` started, in `<run dir>/state.json`, written as each piece starts.

Everything `up` starts (emulators, servers) and everything a chaos day
starts (helper processes) is recorded the moment it exists, so a command
that fails or is interrupted half-way never leaves a process that `down`
does not know about.

A pid alone does not name a process: once the process exits, the system
gives its pid to the next one, so a state file left from yesterday can name
anything today. Each record therefore also holds the process's start time
and its process group (every component is started in a session of its own,
so it leads a group of its own), and a recorded process is signalled only
while the pid still has that start time and still leads that group.
"""

from __future__ import annotations

import enum
import json
import os
import shlex
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from phase3ops import process_table

STATE_FILE = "state.json"
PROJECT = "phase3ops-local"
HELPER_PREFIX = "helper:"  # components a chaos day starts: stopped by `down` even if the day was interrupted
# Where the chaos day's armed faults are, for the functions it arms (chaos_function.py).
ARMED_ENV = "PHASE3OPS_CHAOS_ARMED"
RECEIPT_LATE_ENV = "PHASE3OPS_CHAOS_RECEIPT_LATE"
RUN_FAILS_ENV = "PHASE3OPS_CHAOS_RUN_FAILS"  # the analytics service's (chaos_analytics_service.py)


@dataclass(frozen=True)
class ProcessStart:
    """What, with its pid, names one process: when it started and the process group it is in."""

    start_time: str  # Linux: clock ticks after boot (field 22 of /proc/<pid>/stat); elsewhere `ps -o lstart`
    pgid: int


def process_start(pid: int) -> ProcessStart | None:
    """The start of the process holding `pid` now; None when none does (a zombie has exited already).
    Raises OSError when the system does not say."""
    if not process_table.has_proc():
        return _process_start_from_ps(pid)
    stat = process_table.process_stat(pid)
    if stat is None or stat.exited:
        return None
    return ProcessStart(stat.start_time, stat.pgid)


def _process_start_from_ps(pid: int) -> ProcessStart | None:
    """macOS and the BSDs have no /proc; `ps` says the same, to the second."""
    result = subprocess.run(
        ["ps", "-o", "pgid=", "-o", "stat=", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True
    )
    parts = result.stdout.split(None, 2)
    if result.returncode != 0 or not parts:
        return None
    if len(parts) != 3 or not parts[0].isdigit():
        raise OSError(f"`ps -p {pid}` answered in a format this does not read")
    pgid, state, start_time = parts
    return None if state.startswith("Z") else ProcessStart(" ".join(start_time.split()), int(pgid))


class Presence(enum.Enum):
    """What holds a recorded pid now; only RUNNING is the recorded process, and only it is signalled."""

    RUNNING = "running"
    GONE = "gone"  # no process has the pid
    REPLACED = "gone (pid reused)"  # another process has the pid: it started at another time
    NOT_LEADER = "not its own group"  # the process no longer leads the process group it was started in
    UNCONFIRMED = "unconfirmed"  # no start time recorded (an older phase3ops wrote the file) or none readable now

    def why_left_alone(self, component: Component) -> str:
        pid = component.pid
        return {
            Presence.REPLACED: f"the recorded process is gone and pid {pid} reused by another process (it started at another time)",
            Presence.NOT_LEADER: f"pid {pid} does not lead the process group it was recorded with, so that group is not ours to signal",
            Presence.UNCONFIRMED: (
                f"pid {pid} has no recorded start time to confirm it is still the {component.name} (the state file was written"
                f" by an older phase3ops, or the start time cannot be read): if `ps -o pid,lstart,args -p {pid}` shows it is, stop it yourself"
            ),
        }.get(self, f"pid {pid} is {self.value}")


@dataclass
class Component:
    name: str
    pid: int
    address: str
    log: str
    start_time: str | None = None  # see ProcessStart; None in state files written before it was recorded
    pgid: int | None = None

    def presence(self) -> Presence:
        if (
            not isinstance(self.pid, int) or self.pid <= 1
        ):  # kill(0) and kill(-1) reach far more than one process, pid 1 is init
            return Presence.GONE
        try:
            now = process_start(self.pid)
        except OSError:
            return Presence.UNCONFIRMED
        if now is None:
            _reap(self.pid)
            return Presence.GONE
        if self.start_time is None:
            return Presence.UNCONFIRMED
        if now.start_time != self.start_time:
            return Presence.REPLACED
        if not (now.pgid == self.pgid == self.pid):
            return Presence.NOT_LEADER
        return Presence.RUNNING

    def alive(self) -> bool:
        """The recorded process is running (not merely: something has its pid)."""
        return self.presence() is Presence.RUNNING

    def stop(self, timeout: float = 15.0) -> Presence:
        """Stop the process and its group if it is still the one recorded; what it was found to be."""
        from phase3ops.emulators import stop_process_group

        presence = self.presence()
        if presence is Presence.RUNNING:
            stop_process_group(self.pid, timeout)  # the group it leads: pgid == pid, checked just now
        return presence

    @property
    def url(self) -> str:
        return self.address if self.address.startswith("http") else f"http://{self.address}"


def _reap(pid: int) -> None:
    """A zombie of this process's own children is collected, as `alive()` always did."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except OSError:  # not our child (ChildProcessError), or already collected
        pass


@dataclass
class LocalState:
    run_dir: str
    project: str
    source_pipeline: str  # the user's pipeline.yaml
    pipeline: str  # the local profile's copy the services read
    spec_hash: str  # of what the copy was made from: a change restarts what reads it
    warehouse: str
    components: dict[str, Component] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """What every local process and command needs to find the emulators, the spec and the warehouse."""
        env = {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PHASE3OPS_PIPELINE": self.pipeline,
            "PHASE3OPS_WAREHOUSE": f"duckdb:{self.warehouse}",
            "PHASE3OPS_TARGET": "local",
        }
        if "firestore" in self.components:
            env["FIRESTORE_EMULATOR_HOST"] = self.components["firestore"].address
        if "pubsub" in self.components:
            env["PUBSUB_EMULATOR_HOST"] = self.components["pubsub"].address
        return env

    def shell_exports(self) -> str:
        return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in self.env.items())

    @property
    def data_dir(self) -> Path:
        return Path(self.run_dir) / "data"

    @property
    def logs_dir(self) -> Path:
        return Path(self.run_dir) / "logs"

    @property
    def chaos_armed_file(self) -> Path:
        return Path(self.run_dir) / "chaos-armed"

    @property
    def chaos_receipt_late_file(self) -> Path:
        return Path(self.run_dir) / "chaos-receipt-late"

    @property
    def chaos_run_fails_file(self) -> Path:
        return Path(self.run_dir) / "chaos-run-fails"

    @property
    def chaos_files(self) -> dict[str, Path]:
        """Every fault a chaos day can arm, by the variable that tells its process where the file is."""
        return {
            ARMED_ENV: self.chaos_armed_file,
            RECEIPT_LATE_ENV: self.chaos_receipt_late_file,
            RUN_FAILS_ENV: self.chaos_run_fails_file,
        }

    @property
    def phase4_ledger(self) -> Path:
        """What the Phase 4 stand-in accepted, one JSON line per message."""
        return self.data_dir / "phase4-accepted.jsonl"

    @property
    def firestore_export(self) -> Path:
        """Where `down` saves the Firestore emulator's data and `up` loads it from."""
        return self.data_dir / "firestore-export"

    def record(self, key: str, component: Component) -> None:
        """Record a process just started, with what names it beyond its pid (start time and group), read now."""
        self.components[key] = self.identified(component)
        self.save()

    @staticmethod
    def identified(component: Component) -> Component:
        """`component` with its start time and process group, read now unless it carries them."""
        if component.start_time is not None:
            return component
        try:
            start = process_start(component.pid) if component.pid > 1 else None
        except OSError:
            start = None  # recorded unconfirmed: `down` reports it rather than signal it
        return replace(component, start_time=start.start_time, pgid=start.pgid) if start else component

    def forget(self, key: str) -> None:
        self.components.pop(key, None)
        self.save()

    def helpers(self) -> dict[str, Component]:
        return {key: c for key, c in self.components.items() if key.startswith(HELPER_PREFIX)}

    def save(self) -> None:
        path = Path(self.run_dir, STATE_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(path)  # a reader never sees half a file

    @classmethod
    def load(cls, run_dir: Path) -> LocalState | None:
        path = run_dir / STATE_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        components = {name: Component(**c) for name, c in data.pop("components").items()}
        return cls(**data, components=components)
