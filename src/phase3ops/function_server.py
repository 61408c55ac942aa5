"""Serve the pipeline's HTTP workloads locally: the orchestrator and the
receipts recorder with the Functions Framework (what Cloud Functions gen2
runs), the analytics service with gunicorn (what its image runs), and the
Phase 4 stand-in with gunicorn.

A Pub/Sub push subscription on the emulator posts to them; the Functions
Framework turns the push request into the `messagePublished` CloudEvent the
function receives in the cloud, and answers 500 when the function raises, so
the emulator redelivers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from phase3ops.emulators import free_port, stop_process_group

FUNCTION_SOURCE = Path("functions/orchestrator/main.py")
FUNCTION_TARGET = "handle_phase3_completion"
RECEIPTS_TARGET = "record_phase4_trigger_receipt"
SERVICE_APP = "phase3ops.analytics.service:create_app_from_environment()"
PHASE4_STANDIN_APP = "phase3ops.local.phase4_standin:create_app_from_environment()"


class ServerError(RuntimeError):
    pass


@dataclass
class Server:
    url: str
    log_path: Path
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def push_endpoint(self, project: str, topic: str) -> str:
        # The Functions Framework reads the topic from the path to fill the CloudEvent's source.
        return f"{self.url}/projects/{project}/topics/{topic}"

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process_group(self.process.pid, timeout=10)
            self.process.wait(timeout=10)


def start_server(
    command: list[str],
    env: dict[str, str],
    log_path: Path,
    cwd: Path,
    url: str,
    ready_path: str = "",
    timeout: float = 60.0,
) -> Server:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"PYTHONWARNINGS": "ignore::FutureWarning", **os.environ, **env},
            cwd=cwd,
            start_new_session=True,
        )
    server = Server(url, log_path, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(
                f"{command[2] if len(command) > 2 else command[0]} exited with {process.returncode}; see {log_path}"
            )
        if listening(url + ready_path):
            return server
        time.sleep(0.1)
    server.stop()
    raise ServerError(f"{url} did not answer within {timeout:.0f}s; see {log_path}")


def start_function_server(
    repo_root: Path,
    env: dict[str, str],
    log_path: Path,
    port: int | None = None,
    source: Path | None = None,
    target: str = FUNCTION_TARGET,
) -> Server:
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        f"--source={source or repo_root / FUNCTION_SOURCE}",
        f"--target={target}",
        "--signature-type=cloudevent",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    return start_server(command, env, log_path, repo_root, f"http://127.0.0.1:{port}")


def start_gunicorn(app: str, repo_root: Path, env: dict[str, str], log_path: Path, port: int | None = None) -> Server:
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--threads",
        "8",
        "--timeout",
        "0",
        app,
    ]
    return start_server(command, env, log_path, repo_root, f"http://127.0.0.1:{port}", ready_path="/healthz")


def start_analytics_service(
    repo_root: Path, env: dict[str, str], log_path: Path, port: int | None = None, app: str = SERVICE_APP
) -> Server:
    return start_gunicorn(app, repo_root, env, log_path, port)


def listening(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is serving (a GET is not a valid event)
    except (urllib.error.URLError, ConnectionError, OSError):
        return False
    return True
