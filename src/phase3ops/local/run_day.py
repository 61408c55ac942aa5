"""`phase3ops local run-day [--date D] [--games N] [--chaos]`: one game day through the local pipeline.

Writes a deterministic game day of raw data, triggers Phase 3 through
Pub/Sub as Phase 2 would (one message per processor), and lets the running
services work: the analytics service runs the processors and publishes
their completions in the reference pipeline's format, the orchestrator
records them and triggers Phase 4, the Phase 4 stand-in accepts (or refuses)
each message by the precompute service's contract. Ends with what Phase 4
accepted per table and the health check.

`--chaos` adds the failures the system this replaces suffered:
- every message delivered more than once: each Phase 3 trigger is published
  twice, and a second push subscription delivers every completion again;
- processors finishing concurrently, and two instances of each processor for
  the date (the duplicate triggers), serialised by the processor locks;
- a processor instance killed mid-run: a process holds player_game_summary's
  lock and is SIGKILLed, so the service's run must take the lock over;
- the orchestrator killed half-way through publishing the date's Phase 4
  messages (2 of 5 sent; then restarted, as the platform would start a new
  instance, the message redelivered, and only the 3 without a receipt sent);
- a late scraper: the team box scores land 75 minutes after the rest, after
  the first team processor runs found nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

from phase3ops.analytics.synthetic import generate_game_day, write_game_day
from phase3ops.local.environment import (
    DUPLICATE_SUBSCRIPTION,
    LocalState,
    render_table,
    restart_orchestrator,
)
from phase3ops.local.phase4_standin import accepted_counts
from phase3ops.orchestrator.readiness import local_today
from phase3ops.spec.pipeline import PipelineSpec, load_pipeline_spec

Say = Callable[[str], None]
LATE_TABLE = "team_boxscores"
KILLED_PROCESSOR = "player_game_summary"


class NotRunning(RuntimeError):
    pass


class DayRun:
    def __init__(self, repo_root: Path, state: LocalState, game_date: dt.date, games: int, chaos: bool, say: Say):
        from google.cloud import firestore, pubsub_v1

        from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse

        self.repo_root, self.state, self.game_date, self.games, self.chaos = repo_root, state, game_date, games, chaos
        self.spec: PipelineSpec = load_pipeline_spec(state.pipeline)
        self.warehouse = DuckDBWarehouse(state.warehouse)
        self.publisher, self.subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        self.firestore = firestore.Client(project=state.project)
        self.started = time.monotonic()
        self._say = say

    def say(self, text: str) -> None:
        self._say(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    # -- the day -------------------------------------------------------------

    def run(self) -> int:
        day = generate_game_day(self.spec, self.game_date, games=self.games, seed=7, stale_scrapes=self.chaos)
        held_back = {}
        if self.chaos:
            held_back = {LATE_TABLE: day.tables[LATE_TABLE]}
            day.tables[LATE_TABLE] = []
            day.stale[LATE_TABLE] = []
            self._duplicate_completion_deliveries(on=True)
            self.state.chaos_armed_file.write_text(str(self.game_date))
            self.say("chaos: every completion delivered twice; the orchestrator will die half-way through its next Phase 4 fan-out")
        write_game_day(self.warehouse, self.spec, day)
        self.say(f"raw data for {self.game_date}: {day.games} games" + (f" ({LATE_TABLE} held back: a late scraper)" if held_back else ""))

        rogue = self._hold_lock(KILLED_PROCESSOR) if self.chaos else None
        copies = 2 if self.chaos else 1
        self._trigger_phase3(self.spec.processor_names, copies)
        if rogue is not None:
            time.sleep(1.0)
            rogue.send_signal(signal.SIGKILL)
            rogue.wait(timeout=10)
            self.say(f"chaos: killed a {KILLED_PROCESSOR} instance holding its lock (pid {rogue.pid}); the lease runs out, the next run takes over")

        if held_back:
            self._wait_until(lambda: len(self._records()) == len(self.spec.processor_names), "the first processor runs", 120)
            late_rows = [{**row, "scraped_at": row["scraped_at"] + dt.timedelta(minutes=75)} for row in held_back[LATE_TABLE]]
            self.warehouse.write_partition(self.spec.raw_table(LATE_TABLE), self.game_date, late_rows)
            self.say(f"chaos: the late scraper delivered {LATE_TABLE} ({len(late_rows)} rows); Phase 2 triggers the team processors again")
            self._trigger_phase3(["team_offense_game_summary", "team_defense_game_summary"], copies)

        triggered = self._wait_until(self._phase4_accepted_every_table, f"Phase 4 to accept the triggers of {self.game_date}", 240)
        self._settle()
        if self.chaos:
            self._duplicate_completion_deliveries(on=False)
        self._say("")
        self._say(self._progress_table())
        self._say("")
        accepted_once = self._phase4_table()
        self._say("")
        health_code = self._health()
        return 0 if triggered and accepted_once and health_code == 0 else 1

    # -- steps ---------------------------------------------------------------

    def _trigger_phase3(self, processors: list[str], copies: int) -> None:
        topic = self.publisher.topic_path(self.state.project, self.spec.topics.phase3_trigger)
        for name in processors:
            for _ in range(copies):
                message = {"game_date": self.game_date.isoformat(), "processors": [name], "correlation_id": f"local-{self.game_date}"}
                self.publisher.publish(topic, json.dumps(message).encode()).result(timeout=30)
        self.say(f"Phase 2 -> {self.spec.topics.phase3_trigger}: {len(processors)} processors x {copies}")

    def _hold_lock(self, processor: str) -> subprocess.Popen:
        lock = self.spec.analytics.lock
        program = textwrap.dedent(f"""
            import datetime as dt, time
            from google.cloud import firestore
            from phase3ops.locking.lease_lock import LeaseLocks
            locks = LeaseLocks(firestore.Client(project={self.state.project!r}), {lock.collection!r}, lease_seconds={lock.lease_seconds})
            lease = locks.acquire({processor!r}, dt.date.fromisoformat({self.game_date.isoformat()!r}), owner="chaos-doomed-instance")
            lease.start_renewing()
            print("holding", flush=True)
            time.sleep(600)
        """)
        process = subprocess.Popen(
            [sys.executable, "-c", program],
            env={**os.environ, **self.state.env, "PYTHONWARNINGS": "ignore"},
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        if process.stdout.readline().strip() != "holding":
            process.kill()
            raise RuntimeError("the chaos lock holder did not start")
        return process

    def _duplicate_completion_deliveries(self, on: bool) -> None:
        from google.api_core import exceptions as gexc

        from phase3ops.pubsub_admin import ensure_subscription

        path = self.subscriber.subscription_path(self.state.project, DUPLICATE_SUBSCRIPTION)
        if on:
            endpoint = f"{self.state.components['orchestrator'].address}/projects/{self.state.project}/topics/{self.spec.topics.completion}"
            ensure_subscription(self.subscriber, self.state.project, self.spec.topics.completion, DUPLICATE_SUBSCRIPTION, push_endpoint=endpoint)
        else:
            try:
                self.subscriber.delete_subscription(request={"subscription": path})
            except gexc.NotFound:
                pass

    def _records(self) -> dict[str, dict]:
        collection = self.firestore.collection(self.spec.orchestrator.collections.completions)
        refs = [collection.document(f"{self.game_date.isoformat()}_{name}") for name in self.spec.processor_names]
        return {s.get("processor"): s.to_dict() for s in self.firestore.get_all(refs) if s.exists}

    def _accepted(self) -> dict[str, int]:
        """What the Phase 4 stand-in accepted for the date, per source table."""
        date = self.game_date.isoformat()
        return {table: n for (day, table), n in accepted_counts(self.state.phase4_ledger).items() if day == date}

    def _phase4_accepted_every_table(self) -> bool:
        accepted = self._accepted()
        return all(accepted.get(p.output_table) for p in self.spec.processors)

    def _phase4_table(self) -> bool:
        """Print what Phase 4 accepted per table; True when every table exactly once."""
        accepted = self._accepted()
        claim = self.firestore.collection(self.spec.orchestrator.collections.triggers).document(self.game_date.isoformat()).get()
        published = (claim.to_dict() or {}).get("published", {}) if claim.exists else {}
        decision = (claim.to_dict() or {}).get("decision", {}) if claim.exists else {}
        self._say(f"Phase 4 (stand-in) accepted for {self.game_date}: mode={decision.get('mode', '-')}  reason={decision.get('trigger_reason', '-')}")
        rows = [
            (p.output_table, str(accepted.get(p.output_table, 0)), published.get(p.output_table, {}).get("confirmed_by", "-"))
            for p in self.spec.processors
        ]
        self._say(render_table(rows, ("source_table", "accepted", "confirmed by")))
        return all(accepted.get(p.output_table) == 1 for p in self.spec.processors)

    def _wait_until(self, condition: Callable[[], bool], what: str, timeout: float) -> bool:
        self.say(f"waiting for {what} ...")
        deadline = time.monotonic() + timeout
        last_report = 0.0
        while time.monotonic() < deadline:
            self._keep_orchestrator_alive()
            if condition():
                self.say(f"{what}: done")
                return True
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                done = {name: r["status"] for name, r in self._records().items()}
                self.say("  completions: " + (", ".join(f"{n}={s}" for n, s in sorted(done.items())) or "none yet"))
            time.sleep(0.5)
        self.say(f"{what}: NOT within {timeout:.0f}s")
        return False

    def _keep_orchestrator_alive(self) -> None:
        component = self.state.components["orchestrator"]
        if not component.alive():
            self.say(f"the orchestrator instance (pid {component.pid}) died; starting a new one, Pub/Sub redelivers")
            restart_orchestrator(self.repo_root, self.state, lambda _: None)

    def _settle(self, quiet_seconds: float = 4.0, timeout: float = 90.0) -> None:
        """Let duplicate deliveries and late runs finish: records unchanged and no new trigger for a while."""
        deadline = time.monotonic() + timeout
        last, quiet_since = None, time.monotonic()
        while time.monotonic() < deadline:
            self._keep_orchestrator_alive()
            snapshot = json.dumps({n: (r["execution_id"], r["status"]) for n, r in self._records().items()}, sort_keys=True) + json.dumps(
                self._accepted(), sort_keys=True
            )
            if snapshot != last:
                last, quiet_since = snapshot, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_seconds:
                return
            time.sleep(0.5)

    def _progress_table(self) -> str:
        records = self._records()
        rows = []
        for processor in self.spec.processors:
            record = records.get(processor.name, {})
            count = self.warehouse.row_counts(processor.table, self.game_date, self.game_date).get(self.game_date, 0)
            rows.append((processor.name, record.get("status", "-"), str(record.get("record_count", "-")), str(count)))
        return render_table(rows, ("processor", "completion", "reported rows", f"rows in {self.spec.analytics.dataset}"))

    def _health(self) -> int:
        from phase3ops.checks.health import check_dates, header
        from phase3ops.checks.results import exit_code, render
        from phase3ops.orchestrator.factory import build_orchestrator

        orchestrator = build_orchestrator(self.spec, self.state.project)
        now = dt.datetime.now(dt.timezone.utc)
        context, results = check_dates(
            orchestrator, self.warehouse, self.game_date, self.game_date, now, target="local", project=self.state.project
        )
        self._say(render(results, header(context)))
        return exit_code(results)


def run_day(repo_root: Path, run_dir: Path, game_date: dt.date | None, games: int, chaos: bool, say: Say) -> int:
    state = LocalState.load(run_dir.resolve())
    if state is None or not all(c.alive() for c in state.components.values()):
        raise NotRunning(f"the local environment in {run_dir} is not running: run `phase3ops local up` first")
    os.environ.update(state.env)
    spec = load_pipeline_spec(state.pipeline)
    game_date = game_date or local_today(spec, dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=1)
    return DayRun(repo_root, state, game_date, games, chaos, say).run()
