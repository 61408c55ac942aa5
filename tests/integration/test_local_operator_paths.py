"""The local environment off the happy path, as a user meets it: processes that die, a run-day for a
date that needs no trigger, the runbook's health check pointed at it, `down` then `up`.

Real processes (the emulators, the Functions Framework, gunicorn) driven by
the same commands a user types, against a run directory of the test's own.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time

import pytest

from tests.support.cli_process import accepted, all_pids, phase3ops, state_of
from tests.support.processes import alive
from tests.support.repo_copy import REPO_ROOT

pytestmark = [pytest.mark.emulators, pytest.mark.minutes_long(seconds=100)]
TABLES = [
    "player_game_summary",
    "team_offense_game_summary",
    "team_defense_game_summary",
    "upcoming_player_game_context",
    "upcoming_team_game_context",
]


def test_up_repairs_whatever_died_and_the_day_knows_what_to_expect(tmp_path):
    run_dir = tmp_path / "local"
    # Run from a subfolder: the repository is found by its pipeline.yaml.
    up = phase3ops("local", "up", "--run-dir", str(run_dir), cwd=REPO_ROOT / "docs")
    assert up.returncode == 0, up.stdout + up.stderr
    started = all_pids(run_dir)
    try:
        # Every component dies once: the four processes together, then both emulators (whose restart loses
        # the topology and data that `up` must put back).
        for killed in (("analytics", "orchestrator", "receipts", "phase4"), ("pubsub", "firestore")):
            before = {key: state_of(run_dir)["components"][key]["pid"] for key in killed}
            for pid in before.values():
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            time.sleep(0.5)
            status = phase3ops("local", "status", "--run-dir", str(run_dir))
            down_rows = [row for row in status.stdout.splitlines() if "stopped" in row or "not answering" in row]
            assert status.returncode == 1 and len(down_rows) >= len(killed), status.stdout
            again = phase3ops("local", "up", "--run-dir", str(run_dir))
            assert again.returncode == 0, again.stdout + again.stderr
            after = {key: state_of(run_dir)["components"][key]["pid"] for key in killed}
            assert not [key for key in killed if after[key] == before[key]], (before, after)
            status = phase3ops("local", "status", "--run-dir", str(run_dir))
            assert status.returncode == 0 and "stale" not in status.stdout, (killed, status.stdout)

        day = "2026-11-21"
        first = phase3ops("local", "run-day", "--run-dir", str(run_dir), "--date", day, "--games", "2")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
        assert accepted(run_dir, day) == dict.fromkeys(TABLES, 1)

        clock = time.monotonic()
        again = phase3ops("local", "run-day", "--run-dir", str(run_dir), "--date", day, "--games", "2")
        assert again.returncode == 0, again.stdout[-3000:]
        assert f"expect: Phase 4 was already triggered for {day}" in again.stdout
        assert "already triggered before this day: nothing new for Phase 4 (unchanged)" in again.stdout
        assert time.monotonic() - clock < 120  # was: waited 240 s for a trigger that could not come, then exit 1
        assert accepted(run_dir, day) == dict.fromkeys(TABLES, 1)

        ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=6)).date().isoformat()
        future = phase3ops("local", "run-day", "--run-dir", str(run_dir), "--date", ahead, "--games", "2")
        assert future.returncode == 0, future.stdout[-3000:]
        assert "days ahead: no mode triggers it yet" in future.stdout.splitlines()[0]
        assert accepted(run_dir, ahead) == {}

        # `local env` is the first-class way to point the runbook's commands at the local pipeline.
        env = phase3ops("local", "env", "--run-dir", str(run_dir))
        assert env.returncode == 0 and "export FIRESTORE_EMULATOR_HOST=" in env.stdout
        check = subprocess.run(
            ["bash", "-c", f'eval "$1" && scripts/phase3_health_check.sh --date {day}', "_", env.stdout],
            cwd=REPO_ROOT,
            env={k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0 and check.stdout.rstrip().endswith("All checks passed"), (
            check.stdout + check.stderr
        )

        # down then up: Firestore's data comes back, so the warehouse's rows still have their completions.
        down = phase3ops("local", "down", "--run-dir", str(run_dir))
        assert "Saved the Firestore data" in down.stdout
        assert phase3ops("local", "up", "--run-dir", str(run_dir)).returncode == 0
        health = phase3ops("health", "--local", str(run_dir), "--date", day)
        assert health.returncode == 0 and "accuracy 100.0%" in health.stdout, health.stdout + health.stderr
    finally:
        phase3ops("local", "down", "--run-dir", str(run_dir))
    assert not [pid for pid in started if alive(pid)]
