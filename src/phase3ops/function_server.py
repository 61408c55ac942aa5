"""Serve the orchestrator function locally with the Functions Framework.

The same framework Cloud Functions gen2 runs in production. A Pub/Sub push
subscription on the emulator posts each completion to it; the framework
turns the push request into the `messagePublished` CloudEvent the function
receives in the cloud, and answers 500 when the function raises, so the
emulator redelivers.
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


class FunctionServerError(RuntimeError):
    pass


@dataclass
class FunctionServer:
    url: str
    log_path: Path
    process: subprocess.Popen

    def push_endpoint(self, project: str, topic: str) -> str:
        # The framework reads the topic from the path to fill the CloudEvent's source.
        return f"{self.url}/projects/{project}/topics/{topic}"

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process_group(self.process.pid, timeout=10)
            self.process.wait(timeout=10)


def start_function_server(
    repo_root: Path, env: dict[str, str], log_path: Path, port: int | None = None, timeout: float = 30.0
) -> FunctionServer:
    port = port or free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        f"--source={repo_root / FUNCTION_SOURCE}",
        f"--target={FUNCTION_TARGET}",
        "--signature-type=cloudevent",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"PYTHONWARNINGS": "ignore::FutureWarning", **os.environ, **env},
            cwd=repo_root,
            start_new_session=True,
        )
    server = FunctionServer(f"http://127.0.0.1:{port}", log_path, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FunctionServerError(f"the function server exited with {process.returncode}; see {log_path}")
        if _listening(server.url):
            return server
        time.sleep(0.1)
    server.stop()
    raise FunctionServerError(f"the function server did not start within {timeout:.0f}s; see {log_path}")


def _listening(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is serving; a GET is not a valid event
    except (urllib.error.URLError, ConnectionError, OSError):
        return False
    return True
