"""`local down` stops what `local` started, and nothing that merely holds one of its recorded pids now.

A pid is reused once its process has exited: a state file from yesterday's
`up` names pids that may belong to anything today. Real child processes
stand in for the components; pid reuse is simulated by a record whose start
time is not that of the process now holding the pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from phase3ops import process_table
from phase3ops.function_server import ServerError
from phase3ops.local import environment
from phase3ops.local import state as state_module
from phase3ops.local.state import PROJECT, STATE_FILE, Component, LocalState

# Reads /proc/<pid>/stat as Linux writes it; macOS and the BSDs (no such file) take the `ps` path instead.
linux_proc = pytest.mark.skipif(not process_table.has_proc(), reason="no Linux /proc on this system")
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def spawn():
    """Start sleeping processes in sessions of their own (as `local up` starts everything); kill leftovers."""
    started: list[subprocess.Popen] = []

    def start(command=SLEEPER) -> subprocess.Popen:
        process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def new_state(run_dir: Path) -> LocalState:
    return LocalState(str(run_dir), PROJECT, "", "", "", str(run_dir / "warehouse.duckdb"))


def rewrite_component(run_dir: Path, key: str, **changes) -> None:
    path = run_dir / STATE_FILE
    data = json.loads(path.read_text())
    data["components"][key].update(changes)
    path.write_text(json.dumps(data))


def wait_until_exited(pid: int) -> None:
    """Until the process has exited, not collected: its /proc entry says so (a zombie)."""
    deadline = time.monotonic() + 10
    stat = process_table.process_stat(pid)
    while stat is not None and not stat.exited and time.monotonic() < deadline:
        time.sleep(0.05)
        stat = process_table.process_stat(pid)
    assert stat is not None and stat.exited, stat


def still_running(process: subprocess.Popen) -> bool:
    time.sleep(0.2)
    return process.poll() is None


def test_down_stops_a_correctly_recorded_process(tmp_path, spawn):
    process = spawn()
    new_state(tmp_path).record("phase4", Component("phase4-standin", process.pid, "http://127.0.0.1:1", "-"))
    said: list[str] = []
    assert environment.down(tmp_path, said.append) == ["phase4-standin"]
    assert process.wait(timeout=20) is not None
    assert not (tmp_path / STATE_FILE).exists()


def test_down_leaves_alone_a_process_that_took_over_a_recorded_pid(tmp_path, spawn):
    """The recorded process exited and its pid went to another: its start time gives it away."""
    stranger = spawn()
    new_state(tmp_path).record("phase4", Component("phase4-standin", stranger.pid, "http://127.0.0.1:1", "-"))
    recorded = json.loads((tmp_path / STATE_FILE).read_text())["components"]["phase4"]
    rewrite_component(
        tmp_path,
        "phase4",
        start_time=str(int(recorded["start_time"]) - 1000)
        if recorded["start_time"].isdigit()
        else "Thu Jan  1 00:00:00 2015",
    )
    said: list[str] = []
    assert environment.down(tmp_path, said.append) == []
    assert still_running(stranger)
    assert any(f"pid {stranger.pid}" in line and "reused" in line for line in said), said


def test_down_leaves_alone_the_pid_of_a_state_file_written_before_start_times_were_recorded(tmp_path, spawn):
    """Without a start time nothing says the process is still ours: reported, never signalled."""
    stranger = spawn()
    (tmp_path / STATE_FILE).write_text(
        json.dumps(
            {
                "run_dir": str(tmp_path),
                "project": PROJECT,
                "source_pipeline": "",
                "pipeline": "",
                "spec_hash": "",
                "warehouse": str(tmp_path / "warehouse.duckdb"),
                "components": {
                    "orchestrator": {
                        "name": "orchestrator",
                        "pid": stranger.pid,
                        "address": "http://127.0.0.1:1",
                        "log": "-",
                    }
                },
            }
        )
    )
    said: list[str] = []
    assert environment.down(tmp_path, said.append) == []
    assert still_running(stranger)
    assert any(f"pid {stranger.pid}" in line and "start time" in line for line in said), said


def test_down_never_signals_a_group_its_process_does_not_lead(tmp_path, spawn):
    """A pid recorded with another process's group (here: this test's own) is not a group to stop."""
    process = spawn()
    new_state(tmp_path).record("phase4", Component("phase4-standin", process.pid, "http://127.0.0.1:1", "-"))
    rewrite_component(tmp_path, "phase4", pgid=os.getpgrp())
    said: list[str] = []
    assert environment.down(tmp_path, said.append) == []
    assert still_running(process)


def test_a_recorded_pid_of_zero_or_one_is_never_signalled(tmp_path):
    """A corrupt state file must not turn `down` into kill(0) (this process's own group) or kill(1)."""
    state = new_state(tmp_path)
    state.components = {
        "phase4": Component("phase4-standin", 0, "-", "-", "1", 0),
        "orchestrator": Component("orchestrator", 1, "-", "-", "1", 1),
    }
    state.save()
    assert environment.down(tmp_path, lambda line: None) == []


@linux_proc
def test_the_start_time_is_read_after_the_last_parenthesis(tmp_path, spawn):
    """The command name in /proc/<pid>/stat may hold spaces and parentheses of its own."""
    program = (
        "import sys, time; open('/proc/self/comm', 'w').write(') 9 9 (x'); print('named', flush=True); time.sleep(60)"
    )
    process = spawn([sys.executable, "-c", program])
    assert process.stdout.readline().strip() == b"named"
    assert ") 9 9 (x" in Path(f"/proc/{process.pid}/stat").read_text()
    start = state_module.process_start(process.pid)
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert start == state_module.ProcessStart(fields[19], process.pid)
    component = new_state(tmp_path).identified(Component("odd name", process.pid, "-", "-"))
    assert component.alive()
    assert component.stop(timeout=5) is state_module.Presence.RUNNING
    assert process.wait(timeout=10) is not None and not component.alive()


def test_without_proc_the_start_time_comes_from_ps(tmp_path, spawn, monkeypatch):
    process = spawn()
    monkeypatch.setattr(process_table, "PROC", tmp_path / "no-proc")
    start = state_module.process_start(process.pid)
    assert start is not None and start.pgid == process.pid and start.start_time
    component = new_state(tmp_path).identified(Component("sleeper", process.pid, "-", "-"))
    assert component.alive()
    replaced = Component("sleeper", process.pid, "-", "-", "Thu Jan  1 00:00:00 2015", process.pid)
    assert replaced.presence() is state_module.Presence.REPLACED and replaced.stop() is state_module.Presence.REPLACED
    assert still_running(process)


def test_status_says_a_reused_pid_is_not_the_component(tmp_path, spawn):
    stranger = spawn()
    new_state(tmp_path).record("helper:lock", Component("chaos lock holder", stranger.pid, "-", "-"))
    rewrite_component(tmp_path, "helper:lock", start_time="0")
    rows = environment.status_rows(tmp_path)
    assert ("chaos lock holder", str(stranger.pid), "-", "gone (pid reused)") in rows


@linux_proc
def test_a_group_whose_processes_have_all_exited_is_not_running_while_they_wait_to_be_collected(spawn):
    """Whoever adopted `local up`'s processes may collect them seconds after they exit; `down` need not wait."""
    process = spawn([sys.executable, "-c", "import sys; sys.stdout.write('up\\n'); sys.stdout.flush()"])
    assert process.stdout.readline().strip() == b"up"
    wait_until_exited(process.pid)  # not collected yet: kill(0) still finds the group
    os.killpg(process.pid, 0)
    assert not process_table.group_is_running(process.pid)
    assert state_module.process_start(process.pid) is None


def test_a_group_with_a_running_process_is_running(spawn):
    process = spawn()
    assert process_table.group_is_running(process.pid)
    assert still_running(process)


def test_without_proc_a_group_is_running_until_its_processes_are_collected(tmp_path, spawn, monkeypatch):
    monkeypatch.setattr(process_table, "PROC", tmp_path / "no-proc")
    process = spawn()
    assert process_table.group_is_running(process.pid)
    process.kill()
    process.wait(timeout=10)
    assert not process_table.group_is_running(process.pid)


@linux_proc
def test_a_group_whose_leader_exited_while_a_member_runs_is_running(spawn):
    """What `down` stops is the group: a shell that started something in the background and exited
    leaves it running, and the stop must go on to it."""
    leader = spawn(["sh", "-c", "sleep 60 & echo started; exit 0"])
    try:
        assert leader.stdout.readline().strip() == b"started"
        wait_until_exited(leader.pid)  # the leader is a zombie; its background sleep is not
        assert process_table.group_is_running(leader.pid)
    finally:
        os.killpg(leader.pid, signal.SIGKILL)


@linux_proc
def test_a_process_whose_first_thread_ended_while_another_runs_has_not_exited(spawn):
    """Its /proc entry says zombie, as an exited process's does; its other threads still run."""
    program = (
        "import ctypes, threading, time; threading.Thread(target=time.sleep, args=(60,)).start();"
        " print('up', flush=True); ctypes.CDLL(None).pthread_exit(None)"
    )
    process = spawn([sys.executable, "-c", program])
    assert process.stdout.readline().strip() == b"up"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the first thread did not end"
        time.sleep(0.05)
    stat = process_table.process_stat(process.pid)
    assert stat is not None and not stat.exited
    assert process_table.group_is_running(process.pid)
    assert state_module.process_start(process.pid) is not None


def test_up_starts_components_side_by_side_and_one_that_fails_leaves_the_others_recorded(tmp_path, spawn):
    """Each start is mostly waiting for a process to answer, so `up` starts them at once; one that fails
    must not cost `down` the others it started."""
    state = new_state(tmp_path)
    all_at_once = threading.Barrier(3, timeout=20)  # only passes when the three starts run together

    def starter(key: str):
        def start() -> Component:
            all_at_once.wait()
            if key == "receipts":
                raise ServerError("receipts exited with 1")
            return Component(key, spawn().pid, "http://127.0.0.1:1", "-")

        return start

    with pytest.raises(ServerError, match="receipts exited with 1"):
        environment._start_side_by_side({key: starter(key) for key in ("analytics", "receipts", "phase4")}, state)
    recorded = LocalState.load(tmp_path)
    assert recorded is not None and sorted(recorded.components) == ["analytics", "phase4"]
    said: list[str] = []
    assert sorted(environment.down(tmp_path, said.append)) == ["analytics", "phase4"]


@linux_proc
def test_down_stops_the_emulators_after_what_uses_them(tmp_path, spawn):
    """A service still shutting down may read the emulators: they stop once it has."""
    emulator = spawn()
    seen = tmp_path / "emulator-at-shutdown"
    service = spawn(
        [
            sys.executable,
            "-c",
            "import os, signal, sys, time\n"
            "def shut_down(*_):\n"
            "    time.sleep(0.5)\n"
            "    try:\n"  # a zombie has exited: its state letter is Z
            f"        exited = open('/proc/{emulator.pid}/stat').read().rsplit(')', 1)[1].split()[0] == 'Z'\n"
            "    except FileNotFoundError:\n"
            "        exited = True\n"
            "    state = 'gone' if exited else 'running'\n"
            f"    open({str(seen)!r}, 'w').write(state); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, shut_down)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
        ]
    )
    assert service.stdout is not None and service.stdout.readline() == b"ready\n"
    state = new_state(tmp_path)
    state.record("firestore", Component("firestore emulator", emulator.pid, "127.0.0.1:1", "-"))
    state.record("orchestrator", Component("orchestrator", service.pid, "http://127.0.0.1:1", "-"))
    said: list[str] = []
    assert environment.down(tmp_path, said.append) == ["orchestrator", "firestore emulator"]
    assert seen.read_text() == "running"
