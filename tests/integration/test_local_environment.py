"""End to end: `local up`, chaos days, the health check, reconciliation, `local down`.

The same commands a newcomer runs, as subprocesses, against a run directory
of the test's own. Asserts that the Phase 4 stand-in accepted exactly one
message per source table per date (by the precompute service's contract),
zero duplicate rows, nothing to reconcile, and no process left running.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys

import pytest

from tests.support.cli_process import user_environment
from tests.support.processes import alive, group_members
from tests.support.repo_copy import REPO_ROOT

pytestmark = [pytest.mark.emulators, pytest.mark.minutes_long(seconds=150)]
DATES = ["2026-11-20", "2026-11-21"]  # two chaos days: what holds per date holds for each
NEVER_RUN_DATE = "2026-11-23"


def phase3ops(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    clean = user_environment()
    return subprocess.run(
        [sys.executable, "-m", "phase3ops.cli", *args],
        cwd=REPO_ROOT,
        env={**clean, "PYTHONWARNINGS": "ignore", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_local_environment_end_to_end(tmp_path):
    run_dir = tmp_path / "local"
    up = phase3ops("local", "up", "--run-dir", str(run_dir))
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((run_dir / "state.json").read_text())
    pids = {name: component["pid"] for name, component in state["components"].items()}
    try:
        again = phase3ops("local", "up", "--run-dir", str(run_dir))  # idempotent: reuses everything
        assert again.returncode == 0 and "Reusing the emulators" in again.stdout
        assert {n: c["pid"] for n, c in json.loads((run_dir / "state.json").read_text())["components"].items()} == pids

        for date in DATES:
            day = phase3ops("local", "run-day", "--run-dir", str(run_dir), "--date", date, "--games", "3", "--chaos")
            assert day.returncode == 0, day.stdout[-3000:] + day.stderr[-3000:] + _log_tails(run_dir)
            assert "chaos: killed a player_game_summary instance holding its lock" in day.stdout
            assert "\nAll checks passed\n" in day.stdout
            assert day.stdout.rstrip().endswith("No findings: the date is consistent")  # the date's story ends the day
            assert f"Phase 4 (stand-in) for {date}: mode=overnight" in day.stdout

        env = dict(_local_env(run_dir).items())
        orchestrator_log = (run_dir / "logs" / "orchestrator.log").read_text()
        decisions = [json.loads(line) for line in orchestrator_log.splitlines() if line.startswith("{")]
        published = [d for d in decisions if d.get("outcome") in ("triggered", "republished")]
        assert sorted(d["game_date"] for d in published) == DATES  # exactly one publish per date
        assert any(d.get("outcome") == "retry_later" for d in decisions)  # the killed instance's claim was waited out
        assert "exited with code 137" in orchestrator_log
        ledger = [json.loads(line) for line in (run_dir / "data" / "phase4-accepted.jsonl").read_text().splitlines()]
        work = collections.Counter(entry["trigger_id"] for entry in ledger if entry["work_started"])
        tables = [
            "player_game_summary",
            "team_offense_game_summary",
            "team_defense_game_summary",
            "upcoming_player_game_context",
            "upcoming_team_game_context",
        ]
        # The dates are long past their deadline: each was triggered degraded while the late scraper's team tables
        # were empty, and each team table's rows earned one follow-up. Phase 4's work ran once per message.
        late = {
            table: [e["trigger_id"] for e in ledger if e["source_table"] == table and e["follow_up"]]
            for table in tables[1:3]
        }
        assert all(len(ids) == len(DATES) for ids in late.values()), late
        assert work == {f"nba-phase3-to-phase4:{date}:{table}": 1 for date in DATES for table in tables} | {
            i: 1 for ids in late.values() for i in ids
        }
        receipts_log = (run_dir / "logs" / "receipts.log").read_text()
        assert receipts_log.count('"outcome": "recorded"') == len(DATES) * (len(tables) + 2)
        assert receipts_log.count("chaos: the receipt of") >= len(
            DATES
        )  # one receipt a day came after the claim's lease
        assert '"phase4_trigger_duplicate"' not in receipts_log
        service_log = (run_dir / "logs" / "analytics-service.log").read_text()
        assert service_log.count('"event": "lock_takeover"') == len(DATES)

        health = phase3ops("health", "--date", DATES[0], env=env)
        wide = phase3ops("health", "--date", DATES[-1], "--days", str(len(DATES)), "--json", env=env)
        assert health.returncode == 0, health.stdout + health.stderr
        report = json.loads(wide.stdout)
        assert report["metrics"]["duplicate_rows"] == 0.0
        reconcile = phase3ops("reconcile", "--days", "30", "--fix", env=env)
        assert reconcile.returncode == 0 and "No issues found - all dates are consistent" in reconcile.stdout

        # The chaos days in the error budgets: each day one processor run failed (and succeeded when delivered
        # again), and each date, long past its deadline, went out late and degraded; the duplicate deliveries,
        # the killed instances and the late receipt spent nothing.
        slo = phase3ops("slo", "report", "--local", str(run_dir), "--json")
        assert slo.returncode == 1, slo.stdout + slo.stderr
        budgets = {s["name"]: s for s in json.loads(slo.stdout)["slos"]}
        runs = budgets["analytics-push-success"]
        assert runs["bad"] == len(DATES) and runs["total"] == runs["good"] + len(DATES)
        assert sorted(tuple(e["subject"].split()[:2]) for e in runs["bad_events"]) == [
            (date, "upcoming_team_game_context") for date in DATES
        ]
        assert (budgets["orchestrator-delivery-success"]["bad"], budgets["orchestrator-delivery-success"]["total"]) == (
            0,
            runs["total"],
        )
        days = len(DATES)
        for name in ("phase4-trigger-on-time", "phase4-trigger-on-complete-data"):
            assert (budgets[name]["bad"], budgets[name]["total"], budgets[name]["state"]) == (days, days, "burning")

        # A processor nobody triggers: the story names the owed run, reconcile --fix re-requests it once,
        # Phase 4 gets its table as a follow-up, and the day ends healthy.
        lost = phase3ops(
            "local",
            "run-day",
            "--run-dir",
            str(run_dir),
            "--date",
            NEVER_RUN_DATE,
            "--games",
            "2",
            "--never-run",
            "team_defense_game_summary",
        )
        assert lost.returncode == 0, lost.stdout[-4000:] + lost.stderr[-3000:] + _log_tails(run_dir)
        first_story, _, after_repair = lost.stdout.partition("reconcile --fix: 1 owed run(s) missing")
        assert "owed run missing: team_defense_game_summary (no run;" in first_story
        assert (
            "team_defense_game_summary: requested: asked nba-phase3-analytics-processors to run it (attempt 1"
            in after_repair
        )
        assert "\nAll checks passed\n" in after_repair and after_repair.rstrip().endswith(
            "No findings: the date is consistent"
        )
        assert "reconcile --fix re-requested the run (attempt 1" in after_repair  # the story tells the repair
    finally:
        down = phase3ops("local", "down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [name for name, pid in pids.items() if alive(pid)]
    assert not [pid for pid in pids.values() if group_members(pid)]  # children too (the emulators' JVMs, workers)
    assert not (run_dir / "state.json").exists()


def _local_env(run_dir) -> dict[str, str]:
    state = json.loads((run_dir / "state.json").read_text())
    components = state["components"]
    return {
        "FIRESTORE_EMULATOR_HOST": components["firestore"]["address"],
        "PUBSUB_EMULATOR_HOST": components["pubsub"]["address"],
        "GOOGLE_CLOUD_PROJECT": state["project"],
        "PHASE3OPS_PIPELINE": state["pipeline"],
        "PHASE3OPS_WAREHOUSE": f"duckdb:{state['warehouse']}",
    }


def _log_tails(run_dir, lines: int = 60) -> str:
    """What the services said last, for a day that did not end as it should."""
    tails = []
    for log in sorted((run_dir / "logs").glob("*.log")):
        if "emulator" not in log.name:
            tails.append(f"\n--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
    return "".join(tails)
