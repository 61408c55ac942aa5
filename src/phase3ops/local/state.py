"""What `phase3ops local` started, in `<run dir>/state.json`, written as each piece starts.

Everything `up` starts (emulators, servers) and everything a chaos day
starts (helper processes) is recorded the moment it exists, so a command
that fails or is interrupted half-way never leaves a process that `down`
does not know about.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "state.json"
PROJECT = "phase3ops-local"
HELPER_PREFIX = "helper:"  # components a chaos day starts: stopped by `down` even if the day was interrupted
# Where the chaos day's armed faults are, for the functions it arms (chaos_function.py).
ARMED_ENV = "PHASE3OPS_CHAOS_ARMED"
RECEIPT_LATE_ENV = "PHASE3OPS_CHAOS_RECEIPT_LATE"


@dataclass
class Component:
    name: str
    pid: int
    address: str
    log: str

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:  # a zombie of ours is not alive
            waited, _ = os.waitpid(self.pid, os.WNOHANG)
            return waited == 0
        except ChildProcessError:
            return True

    @property
    def url(self) -> str:
        return self.address if self.address.startswith("http") else f"http://{self.address}"


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
    def phase4_ledger(self) -> Path:
        """What the Phase 4 stand-in accepted, one JSON line per message."""
        return self.data_dir / "phase4-accepted.jsonl"

    @property
    def firestore_export(self) -> Path:
        """Where `down` saves the Firestore emulator's data and `up` loads it from."""
        return self.data_dir / "firestore-export"

    def record(self, key: str, component: Component) -> None:
        self.components[key] = component
        self.save()

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
    def load(cls, run_dir: Path) -> "LocalState | None":
        path = run_dir / STATE_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        components = {name: Component(**c) for name, c in data.pop("components").items()}
        return cls(**data, components=components)
