"""Health check and reconciliation, through the runbook wrappers, on states built by the real components.

Raw data from the synthetic generator, processor runs through the runner,
their completions delivered to the orchestrator from the Pub/Sub emulator,
then a piece broken on purpose, then the command an on-call engineer runs.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import subprocess
from dataclasses import dataclass

import pytest
from google.cloud import firestore, pubsub_v1

from phase3ops.analytics.factory import build_runner
from phase3ops.analytics.synthetic import generate_game_day, write_game_day
from phase3ops.orchestrator.factory import build_orchestrator
from phase3ops.orchestrator.readiness import local_today
from phase3ops.pubsub_admin import ensure_orchestrator_topology, ensure_subscription
from phase3ops.spec.pipeline import PipelineSpec, load_pipeline_spec
from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse
from tests.support.call_records import Calls
from tests.support.delivery import deliver_all, pull_everything
from tests.support.repo_copy import REPO_ROOT

pytestmark = [pytest.mark.emulators, pytest.mark.minutes_long(seconds=20)]
# A fixed "today" for the dates the tests write: 2026-11-29 15:00 UTC, 10:00 in New York. The checks
# themselves read the wall clock, so every command names the window it checks (`--date`, ending there).
NOW = dt.datetime(2026, 11, 29, 15, 0, tzinfo=dt.UTC)


@dataclass
class Deployment:
    project: str
    spec: PipelineSpec
    warehouse: DuckDBWarehouse
    env: dict[str, str]
    subscriber: pubsub_v1.SubscriberClient
    completions: str
    phase4: str
    dates: list[dt.date]

    def run_processors(self, day: dt.date, processors=None) -> None:
        runner = build_runner(
            self.spec, self.project, warehouse=self.warehouse, firestore_client=firestore.Client(project=self.project)
        )
        runner.prepare()
        for name in processors or self.spec.processor_names:
            runner.run(name, day)

    def deliver(self) -> None:
        orchestrator = build_orchestrator(self.spec, self.project, warehouse=self.warehouse)
        deliver_all(self.subscriber, self.completions, orchestrator.handle_event, idle_seconds=0.5)

    def triggers(self) -> list[dict]:
        return [json.loads(m.data) for m in pull_everything(self.subscriber, self.phase4, settle_seconds=0.5)]

    def triggered_once(self, *days: dt.date) -> bool:
        """Phase 4 received exactly one message per source table of each day, and nothing else."""
        counts = collections.Counter((t["game_date"], t["source_table"]) for t in self.triggers())
        return counts == {(str(day), p.output_table): 1 for day in days for p in self.spec.processors}

    def window(self, days: int) -> tuple[str, ...]:
        """The last `days` game dates up to the fixed today, as the checks' options say it."""
        return ("--date", str(local_today(self.spec, NOW)), "--days", str(days))

    def script(self, name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO_ROOT / "scripts" / name), *args], env=self.env, capture_output=True, text=True, timeout=120
        )


@pytest.fixture
def deployment(gcp_project, emulator_hosts, tmp_path) -> Deployment:
    spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    ensure_orchestrator_topology(publisher, gcp_project, spec)
    completions = ensure_subscription(subscriber, gcp_project, spec.topics.completion, "orchestrator-trigger")
    phase4 = ensure_subscription(subscriber, gcp_project, spec.topics.phase4_trigger, "phase4-listener")
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    today = local_today(spec, NOW)
    dates = [today - dt.timedelta(days=n) for n in (3, 2, 1)]  # past dates: overnight mode
    for day in dates:
        write_game_day(warehouse, spec, generate_game_day(spec, day, games=3, seed=11))
    env = {
        **os.environ,
        **emulator_hosts,
        "GOOGLE_CLOUD_PROJECT": gcp_project,
        "PHASE3OPS_WAREHOUSE": f"duckdb:{warehouse.path}",
        "PHASE3OPS_PIPELINE": str(REPO_ROOT / "pipeline.yaml"),
        "PYTHONWARNINGS": "ignore",
    }
    deployment = Deployment(gcp_project, spec, warehouse, env, subscriber, completions, phase4, dates)
    for day in dates:
        deployment.run_processors(day)
    deployment.deliver()
    assert deployment.triggered_once(*dates)
    return deployment


def test_a_healthy_pipeline_passes_every_check(deployment):
    result = deployment.script("phase3_health_check.sh", *deployment.window(4), "--verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]  # status words are padded
    assert lines[-1] == "All checks passed"
    assert any(line.startswith("[OK] Completion tracking") and "accuracy 100.0%" in line for line in lines)
    assert any(line.startswith("[OK] Duplicate rows") and "5 tables, 0 duplicate rows" in line for line in lines)
    assert any(line.startswith("[OK] Scraper timing") for line in lines)
    assert any(line.startswith("[SKIPPED] Deployment state") for line in lines)
    assert "\x1b[" not in result.stdout  # no colour codes for grep to trip over
    reconcile = deployment.script("reconcile_phase3_completion.py", *deployment.window(4))
    assert (
        reconcile.returncode == 0 and reconcile.stdout.splitlines()[-1] == "No issues found - all dates are consistent"
    )


def test_rows_without_a_completion_are_found_and_repaired_with_exactly_one_trigger(deployment):
    day = deployment.dates[-1] + dt.timedelta(days=1) - dt.timedelta(days=5)  # a fresh past date
    write_game_day(deployment.warehouse, deployment.spec, generate_game_day(deployment.spec, day, games=2, seed=12))
    deployment.run_processors(day)
    deployment.subscriber.seek(request={"subscription": deployment.completions, "time": dt.datetime.now(dt.UTC)})
    # A backfill: player_game_summary's completion never reached the orchestrator.
    orchestrator = build_orchestrator(deployment.spec, deployment.project, warehouse=deployment.warehouse)
    for name in deployment.spec.processor_names[1:]:
        orchestrator.store.record(*_completion(deployment.spec, name, day, deployment.warehouse))

    health = deployment.script("phase3_health_check.sh", "--date", str(day))
    assert health.returncode == 1
    assert f"- {day} player_game_summary: wrote" in health.stdout and "(tracking failure)" in health.stdout
    assert "Fix: scripts/reconcile_phase3_completion.py --days 1 --fix" in health.stdout
    assert "2 checks failed:" in health.stdout  # completion tracking, and a game date left untriggered

    dry = deployment.script("reconcile_phase3_completion.py", "--date", str(day))
    assert dry.returncode == 1
    assert f"{day}  completion missing for a table with rows: player_game_summary wrote" in dry.stdout
    assert f"{day}  complete but untriggered:" in dry.stdout
    assert deployment.triggers() == []  # a dry run publishes nothing

    fixed = deployment.script("reconcile_phase3_completion.py", "--date", str(day), "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"{day}  fixed: Phase 4 triggered" in fixed.stdout
    assert deployment.triggered_once(day)

    again = deployment.script("reconcile_phase3_completion.py", "--date", str(day), "--fix")
    assert again.returncode == 0 and "No issues found - all dates are consistent" in again.stdout
    assert deployment.triggers() == []
    assert deployment.script("phase3_health_check.sh", "--date", str(day)).returncode == 0


def test_a_stale_pending_claim_is_reported_then_finished_once(deployment):
    day = deployment.dates[0] - dt.timedelta(days=3)
    write_game_day(deployment.warehouse, deployment.spec, generate_game_day(deployment.spec, day, games=2, seed=13))
    deployment.run_processors(day)
    deployment.subscriber.seek(request={"subscription": deployment.completions, "time": dt.datetime.now(dt.UTC)})
    orchestrator = build_orchestrator(deployment.spec, deployment.project, warehouse=deployment.warehouse)
    for name in deployment.spec.processor_names:
        orchestrator.store.record(*_completion(deployment.spec, name, day, deployment.warehouse))
    # An instance claimed the date an hour ago and died before publishing.
    crashed = build_orchestrator(deployment.spec, deployment.project, warehouse=deployment.warehouse)

    def killed(messages, deadline=None):
        raise SystemExit("the instance was killed between claim and publish")

    crashed.publisher.publish_all = killed  # type: ignore[method-assign]  # the crash under test
    with pytest.raises(SystemExit):
        crashed.advance(day, owner="crashed-instance")
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    crashed.claims.document(day).update(
        {"claimed_at": an_hour_ago, "lease_started_at": an_hour_ago}
    )  # an hour has passed

    health = deployment.script("phase3_health_check.sh", "--date", str(day))
    assert health.returncode == 1 and "pending for 60 min (limit 30)" in health.stdout
    assert "pending trigger claim" in deployment.script("reconcile_phase3_completion.py", "--date", str(day)).stdout
    fixed = deployment.script("reconcile_phase3_completion.py", "--date", str(day), "--fix")
    assert fixed.returncode == 0 and "Phase 4 republished" in fixed.stdout
    assert deployment.triggered_once(day)
    assert deployment.script("reconcile_phase3_completion.py", "--date", str(day), "--fix").returncode == 0
    assert deployment.triggers() == []


def test_duplicates_are_counted_by_each_tables_primary_key(deployment):
    day = deployment.dates[1]
    table = deployment.spec.processor("team_defense_game_summary").table
    rows = deployment.warehouse.query(f"SELECT * FROM `{table.dataset}.{table.name}` WHERE game_date = DATE '{day}'")
    deployment.warehouse.append(table, rows[:2])
    result = deployment.script("phase3_health_check.sh", *deployment.window(4))
    assert result.returncode == 1
    assert (
        f"- nba_analytics.team_defense_game_summary {day}: 2 rows beyond one per (game_date, team_abbr)"
        in result.stdout
    )
    assert "[FAILED] Duplicate rows" in " ".join(result.stdout.split())


def test_a_late_first_scrape_fails_in_the_same_day_and_time_zone(deployment):
    day = deployment.dates[0] - dt.timedelta(days=1)
    late = generate_game_day(deployment.spec, day, games=2, seed=14)
    seven_am = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(7, 5), dt.timezone(dt.timedelta(hours=-5)))
    for rows in late.tables.values():
        for row in rows:
            row["scraped_at"] = seven_am
    write_game_day(deployment.warehouse, deployment.spec, late)
    result = deployment.script("phase3_health_check.sh", "--date", str(day), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    [timing] = [c for c in report["checks"] if c["name"] == "scraper_timing"]
    assert timing["status"] == "failed" and "after 06:00" in timing["findings"][0]
    on_time = deployment.script("phase3_health_check.sh", "--date", str(deployment.dates[0]), "--json")
    assert [c["status"] for c in json.loads(on_time.stdout)["checks"] if c["name"] == "scraper_timing"] == ["ok"]


def test_a_game_date_left_untriggered_fails_and_a_date_without_games_owes_nothing(deployment):
    game_day = deployment.dates[0] - dt.timedelta(days=2)  # games scraped, processors never ran, deadline long past
    write_game_day(
        deployment.warehouse, deployment.spec, generate_game_day(deployment.spec, game_day, games=2, seed=15)
    )
    off_day = game_day - dt.timedelta(days=1)  # nothing at all: an off-day

    result = deployment.script("phase3_health_check.sh", "--date", str(game_day), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    [check] = [c for c in report["checks"] if c["name"] == "game_day_triggers"]
    assert check["status"] == "failed"
    due = game_day + dt.timedelta(days=1)
    assert check["findings"] == [
        f"{game_day}: 2 games, trigger deadline {due:%m-%d} 10:00 (overnight) passed, Phase 4 not triggered (no trigger claim)"
    ]
    assert report["metrics"]["untriggered_game_dates"] == 1.0

    quiet = json.loads(deployment.script("phase3_health_check.sh", "--date", str(off_day), "--json").stdout)
    assert [c["status"] for c in quiet["checks"] if c["name"] == "game_day_triggers"] == ["ok"]
    assert quiet["metrics"]["untriggered_game_dates"] == 0.0


def test_could_not_check_is_exit_2_never_a_pass(deployment):
    broken = dict(deployment.env, PHASE3OPS_WAREHOUSE="oracle://nope")
    result = subprocess.run(
        [str(REPO_ROOT / "scripts/phase3_health_check.sh")], env=broken, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "PHASE3OPS_WAREHOUSE='oracle://nope'" in result.stderr
    missing = {k: v for k, v in deployment.env.items() if k != "GOOGLE_CLOUD_PROJECT"}
    result = subprocess.run(
        [str(REPO_ROOT / "scripts/reconcile_phase3_completion.py"), "--days", "2"],
        env=missing,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "GOOGLE_CLOUD_PROJECT" in result.stderr


def test_a_year_is_read_in_the_same_round_trips_as_a_day(deployment):
    from phase3ops.checks import state as state_module

    orchestrator = build_orchestrator(deployment.spec, deployment.project, warehouse=deployment.warehouse)
    calls = Calls()
    for obj, name in (
        (orchestrator.store, "records_between"),
        (orchestrator.claims, "claims_between"),
        (deployment.warehouse, "row_counts"),
    ):
        calls.watch(name, obj, name)
    last = deployment.dates[-1]
    one_day = state_module.read_state(
        deployment.spec, orchestrator.store, orchestrator.claims, deployment.warehouse, last, last
    )
    day_calls = calls.total()
    calls.clear()
    year = state_module.read_state(
        deployment.spec,
        orchestrator.store,
        orchestrator.claims,
        deployment.warehouse,
        last - dt.timedelta(days=364),
        last,
    )
    assert len(year) == 365 and len(one_day) == 1
    # Records, claims, each table, the schedule.
    assert calls.total() == day_calls == 3 + len(deployment.spec.processors)
    assert year[last].counted == one_day[last].counted == set(deployment.spec.processor_names)


def _completion(spec, processor, day, warehouse):
    from phase3ops.orchestrator.messages import Completion, Delivery

    rows = warehouse.row_counts(spec.processor(processor).table, day, day).get(day, 0)
    completion = Completion(processor, processor, day, "success", f"test-{processor}-{day}", None, processor, rows)
    return completion, Delivery(f"test:{processor}:{day}", dt.datetime.now(dt.UTC), {}, b"")
