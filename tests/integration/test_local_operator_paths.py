"""The local environment off the happy path, as a user meets it: processes that die, Ctrl-C, specs
with mistakes, a run-day for a date that needs no trigger, `down` then `up`.

Real processes (the emulators, the Functions Framework, gunicorn) driven by
the same commands a user types, against a run directory of the test's own.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli_process import phase3ops, state_of
from tests.support.processes import alive, group_members
from tests.support.repo_copy import REPO_ROOT, copy_specs

pytestmark = pytest.mark.emulators
TABLES = [
    "player_game_summary",
    "team_offense_game_summary",
    "team_defense_game_summary",
    "upcoming_player_game_context",
    "upcoming_team_game_context",
]


def accepted(run_dir: Path, date: str) -> dict[str, int]:
    ledger = run_dir / "data" / "phase4-accepted.jsonl"
    entries = [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []
    return dict(collections.Counter(e["source_table"] for e in entries if e["game_date"] == date))


def all_pids(run_dir: Path) -> list[int]:
    return [c["pid"] for c in state_of(run_dir)["components"].values()]


def test_up_repairs_whatever_died_and_the_day_knows_what_to_expect(tmp_path):
    run_dir = tmp_path / "local"
    # Run from a subfolder: the repository is found by its pipeline.yaml.
    up = phase3ops("local", "up", "--run-dir", str(run_dir), cwd=REPO_ROOT / "docs")
    assert up.returncode == 0, up.stdout + up.stderr
    started = all_pids(run_dir)
    try:
        for key in ("analytics", "orchestrator", "receipts", "phase4", "pubsub", "firestore"):
            os.killpg(os.getpgid(state_of(run_dir)["components"][key]["pid"]), signal.SIGKILL)
            time.sleep(0.5)
            status = phase3ops("local", "status", "--run-dir", str(run_dir))
            assert status.returncode == 1 and ("stopped" in status.stdout or "not answering" in status.stdout), (
                status.stdout
            )
            again = phase3ops("local", "up", "--run-dir", str(run_dir))
            assert again.returncode == 0, again.stdout + again.stderr
            status = phase3ops("local", "status", "--run-dir", str(run_dir))
            assert status.returncode == 0 and "stale" not in status.stdout, (key, status.stdout)

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


def test_a_broken_spec_starts_nothing_and_an_edited_one_is_applied(tmp_path):
    repo = copy_specs(tmp_path / "repo")
    run_dir = tmp_path / "local"
    spec = repo / "pipeline.yaml"
    good = spec.read_text()
    spec.write_text(good.replace("min_fraction: 0.6", "min_fraction: 6", 1))
    line = next(n for n, text in enumerate(spec.read_text().splitlines(), 1) if "min_fraction: 6" in text)

    broken = phase3ops("local", "up", "--repo", str(repo), "--run-dir", str(run_dir))
    assert broken.returncode == 2
    assert (
        f"{spec}:{line}: spec.modes[0].min_fraction: 6 is greater than the maximum of 1" in broken.stderr
    )  # the user's file and line
    assert not (run_dir / "state.json").exists() or not state_of(run_dir)["components"]  # nothing was started

    spec.write_text(good)
    try:
        assert phase3ops("local", "up", "--repo", str(repo), "--run-dir", str(run_dir)).returncode == 0
        before = {k: c["pid"] for k, c in state_of(run_dir)["components"].items()}
        spec.write_text(good.replace("max_wait_seconds: 120", "max_wait_seconds: 90"))
        edited = phase3ops("local", "up", "--repo", str(repo), "--run-dir", str(run_dir))
        assert edited.returncode == 0 and "changed: regenerating" in edited.stdout, edited.stdout
        after = {k: c["pid"] for k, c in state_of(run_dir)["components"].items()}
        assert {k for k in before if before[k] != after[k]} == {
            "analytics",
            "orchestrator",
            "receipts",
        }  # what reads the spec
        assert "max_wait_seconds: 90" in (run_dir / "pipeline.yaml").read_text()

        # A spec the schema accepts but a service cannot run: `up` stops part-way and says what it left running.
        unimplemented = good.replace("  processors:\n", "  processors:\n" + _unimplemented_processor(), 1)
        spec.write_text(unimplemented)
        partial = phase3ops("local", "up", "--repo", str(repo), "--run-dir", str(run_dir))
        assert partial.returncode == 2, partial.stdout + partial.stderr
        assert "local up failed:" in partial.stderr and "left running: firestore emulator" in partial.stderr
        assert "`phase3ops local down` stops them" in partial.stderr
    finally:
        pids = all_pids(run_dir) if (run_dir / "state.json").exists() else []
        down = phase3ops("local", "down", "--run-dir", str(run_dir))
    assert down.returncode == 0
    assert not [pid for pid in pids if alive(pid)]


def _unimplemented_processor() -> str:
    """A sixth processor the spec allows and no module implements: the analytics service cannot start."""
    return (
        "    - name: team_pace_summary\n"
        "      output_table: team_pace_summary\n"
        "      primary_key: [game_date, team_abbr]\n"
        "      class_name: TeamPaceSummaryProcessor\n"
        "      entities: teams\n"
        "      columns:\n"
        "        game_date: DATE\n"
        "        team_abbr: STRING\n"
        "        processed_at: TIMESTAMP\n"
    )
