"""Ctrl-C and kill -9 during a chaos game day: what the day armed is undone, what it started is stopped.

Real processes driven by the commands a user types, against a run directory of the test's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.support.cli_process import all_pids, phase3ops, state_of
from tests.support.processes import alive, group_members
from tests.support.repo_copy import REPO_ROOT

pytestmark = [pytest.mark.emulators, pytest.mark.minutes_long(seconds=45)]


def as_from_a_terminal() -> None:
    """Ctrl-C reaches a command started from a terminal; a test run in the background (nohup, a CI
    runner's job) starts its children with SIGINT ignored, and Python would then never raise
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_chaos_is_undone_on_ctrl_c_and_a_killed_day_leaves_nothing_down_cannot_stop(tmp_path):
    run_dir = tmp_path / "local"
    assert phase3ops("local", "up", "--run-dir", str(run_dir)).returncode == 0
    env = {**{k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}, "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable,
        "-m",
        "phase3ops.cli",
        "local",
        "run-day",
        "--run-dir",
        str(run_dir),
        "--games",
        "2",
        "--chaos",
    ]
    try:
        day = subprocess.Popen(
            [*command, "--date", "2026-11-22"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=as_from_a_terminal,
        )
        assert day.stdout is not None
        output = ""
        for line in day.stdout:
            output += line
            if "chaos: killed a player_game_summary instance" in line:
                break
        day.send_signal(signal.SIGINT)
        output += day.stdout.read()
        assert day.wait(timeout=60) == 130, output
        assert "Traceback" not in output and "interrupted" in output
        assert "chaos undone: the duplicate-delivery subscription removed; the orchestrator kill disarmed" in output
        assert not (run_dir / "chaos-armed").exists()
        assert not [k for k in state_of(run_dir)["components"] if k.startswith("helper:")]
        plain = phase3ops("local", "run-day", "--run-dir", str(run_dir), "--date", "2026-11-23", "--games", "2")
        assert "exited with code 137" not in (run_dir / "logs" / "orchestrator.log").read_text()
        assert plain.stdout.rstrip().endswith("No findings: the date is consistent"), plain.stdout[-3000:]
        # The interrupted day left 2026-11-22's runs owed: the ledger says so in the next day's health check, and only that.
        failed = [
            line.split("]", 1)[1].split()[:2] for line in plain.stdout.splitlines() if line.startswith("[FAILED]")
        ]
        assert failed == [["Expected", "work"]] and "    - 2026-11-22 " in plain.stdout and plain.returncode == 1, (
            plain.stdout[-3000:]
        )

        # A run-day killed outright cannot undo anything; its helper is in the state, so `down` stops it.
        # Killed once the holder holds its lock (the day publishes Phase 2's messages right after): a holder killed
        # earlier would die by itself writing "holding" into its dead parent's pipe, and leave nothing to stop.
        day = subprocess.Popen(
            [*command, "--date", "2026-11-24"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert day.stdout is not None
        for line in day.stdout:
            if "Phase 2 -> " in line:
                break
        assert [c for k, c in state_of(run_dir)["components"].items() if k.startswith("helper:")], (
            "the chaos day never started its lock holder"
        )
        day.kill()
        day.wait(timeout=10)
        [helper] = [c for k, c in state_of(run_dir)["components"].items() if k.startswith("helper:")]
        assert alive(helper["pid"])
    finally:
        pids = all_pids(run_dir)
        down = phase3ops("local", "down", "--run-dir", str(run_dir))
    assert "Stopped chaos lock holder" in down.stdout, down.stdout
    assert not [pid for pid in pids if alive(pid) or group_members(pid)]
