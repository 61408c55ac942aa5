"""Start and stop the real Firestore and Pub/Sub emulators from the Google Cloud CLI.

Used by the test fixtures, the benchmarks and the local environment. Each emulator
runs in its own process group (gcloud -> shell -> java), so stopping it
stops the JVM too and leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from phase3ops import process_table

FIRESTORE = "firestore"
PUBSUB = "pubsub"

_COMMANDS = {
    FIRESTORE: ["emulators", "firestore", "start"],
    PUBSUB: ["beta", "emulators", "pubsub", "start"],
}
ENV_VARS = {FIRESTORE: "FIRESTORE_EMULATOR_HOST", PUBSUB: "PUBSUB_EMULATOR_HOST"}
# The emulators' JVMs spend most of their CPU compiling hot code with C2, which a short-lived local
# emulator never earns back: with the client compiler only, the Firestore emulator used 7.3 s of CPU
# instead of 13.4 s for the same 6,000 operations, and finished them sooner (2 cores). Applied unless
# the user set JVM options of their own.
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:CICompilerCount=1 -XX:+UseSerialGC"
JVM_OPTIONS_ENV = "JDK_JAVA_OPTIONS"


class EmulatorError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def answers(host_port: str, timeout: float = 1.0) -> bool:
    """Both emulators answer `GET /` with 200 "Ok" once they accept requests."""
    try:
        with urllib.request.urlopen(f"http://{host_port}/", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@dataclass
class Emulator:
    kind: str
    host_port: str
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {ENV_VARS[self.kind]: self.host_port}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_process_group(self.process.pid, timeout)
        self.process.wait(timeout=timeout)


def stop_process_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the group, then SIGKILL whatever is still there."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    # Zombies of our own children are collected here; others' wait on their parent, which may
    # be slow to collect them, and are not counted (process_table).
    try:
        while os.waitpid(-pgid, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    return process_table.group_is_running(pgid)


def gcloud_path() -> str:
    path = shutil.which("gcloud")
    if path is None:
        raise EmulatorError(
            "the Google Cloud CLI (gcloud) is not on PATH; install it with the "
            "'cloud-firestore-emulator' and 'pubsub-emulator' components (and Java)"
        )
    return path


def start_emulator(
    kind: str, log_dir: Path, port: int | None = None, timeout: float = 90.0, extra_args: tuple[str, ...] = ()
) -> Emulator:
    log_dir.mkdir(parents=True, exist_ok=True)
    host_port = f"127.0.0.1:{port or free_port()}"
    log_path = log_dir / f"{kind}-emulator.log"
    command = [gcloud_path(), *_COMMANDS[kind], f"--host-port={host_port}", *extra_args, "--quiet"]
    env = emulator_environment(os.environ)
    with open(log_path, "ab") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    emulator = Emulator(kind, host_port, log_path, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorError(f"the {kind} emulator exited with {process.returncode}:\n{_tail(log_path)}")
        if answers(host_port):
            return emulator
        time.sleep(0.2)
    emulator.stop()
    raise EmulatorError(f"the {kind} emulator did not answer on {host_port} within {timeout:.0f}s:\n{_tail(log_path)}")


def emulator_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The emulator's environment: this one, with JVM_OPTIONS unless JVM options are set already."""
    env = dict(environ)
    if not (env.get("JAVA_TOOL_OPTIONS") or env.get(JVM_OPTIONS_ENV)):
        env[JVM_OPTIONS_ENV] = JVM_OPTIONS
    return env


def start_both(log_dir: Path) -> dict[str, Emulator]:
    """Start Firestore and Pub/Sub side by side (each takes a few seconds of JVM start-up)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {kind: pool.submit(start_emulator, kind, log_dir) for kind in (FIRESTORE, PUBSUB)}
        started: dict[str, Emulator] = {}
        errors = []
        for kind, future in futures.items():
            try:
                started[kind] = future.result()
            except Exception as exc:  # stop the one that did start before reporting
                errors.append(exc)
    if errors:
        for emulator in started.values():
            emulator.stop()
        raise errors[0]
    return started


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def export_firestore(host_port: str, project: str, directory: Path, timeout: float = 60.0) -> Path:
    """Save the Firestore emulator's data for `project` (its export API); returns the
    metadata file that `gcloud emulators firestore start --import-data` reads."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(
        f"http://{host_port}/emulator/v1/projects/{project}:export",
        data=json.dumps(
            {"database": f"projects/{project}/databases/(default)", "export_directory": str(directory)}
        ).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout):
        pass
    saved = latest_firestore_export(directory)
    if saved is None:
        raise EmulatorError(f"the Firestore emulator wrote no export to {directory}")
    return saved


def latest_firestore_export(directory: Path) -> Path | None:
    """The newest export's metadata file under `directory`, if any."""
    exports = (
        sorted(directory.glob("*/*.overall_export_metadata"), key=lambda p: p.stat().st_mtime)
        if directory.is_dir()
        else []
    )
    return exports[-1] if exports else None
