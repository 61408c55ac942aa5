"""`phase3ops local run-day [--date D] [--games N] [--chaos]`: one game day through the local pipeline.

Writes a deterministic game day of raw data, triggers Phase 3 through
Pub/Sub as Phase 2 would (one message per processor), and lets the running
services work: the analytics service runs the processors and publishes
their completions in the reference pipeline's format, the orchestrator
records them and triggers Phase 4, the Phase 4 stand-in accepts (or refuses)
each message by the precompute service's contract. Ends with what Phase 4
accepted per table, the health check, and the date's story (`explain`).

It knows first what the day should end with, and says so at once: a date
the rules trigger ends with one accepted message per table; a date already
triggered ends with the new runs recorded as `late` and nothing new for
Phase 4; a date no mode decides yet (two or more days ahead) ends with its
completions and no trigger. It never waits for what will not come.

`--chaos` adds the failures the system this replaces suffered (see
chaos.py), undone whatever ends the day:
- every message delivered more than once: each Phase 3 trigger is published
  twice, and a second push subscription delivers every completion again;
- processors finishing concurrently, and two instances of each processor for
  the date (the duplicate triggers), serialised by the processor locks;
- a processor instance killed mid-run: a process holds player_game_summary's
  lock and is SIGKILLed, so the service's run must take the lock over;
- a processor run that fails: upcoming_team_game_context's first run times
  out reading the warehouse, reports `failed` and is answered 500; Pub/Sub
  delivers the push again and the next run succeeds (`slo report` shows it
  in the analytics budget);
- the orchestrator killed half-way through publishing the date's Phase 4
  messages (2 of 5 sent; then restarted, as the platform would start a new
  instance, the message redelivered, and only the 3 without a receipt sent);
- a late scraper: the team box scores land 75 minutes after the rest, after
  the first team processor runs found nothing and the orchestrator decided
  the date on them (so the team tables are late data, each earning one
  follow-up, however slowly the orchestrator decides on a busy machine).

`--never-run PROCESSOR` adds the reference's most repeated failure: a
processor nobody triggers (its Phase 2 message is never sent). The day ends
as the pipeline leaves it, the date's story names the missing run, then
`reconcile --fix` re-requests it from the analytics service, Phase 4 gets
the table as a follow-up, and the health check and the story run again.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from phase3ops.analytics.synthetic import generate_game_day, write_game_day
from phase3ops.local.environment import LocalState, render_table, restart_orchestrator
from phase3ops.local.phase4_standin import accepted_counts, ledger_entries, tally
from phase3ops.orchestrator.readiness import local_today, mode_deadline, mode_for
from phase3ops.spec.pipeline import PipelineSpec, load_pipeline_spec

Say = Callable[[str], None]
LATE_TABLE = "team_boxscores"
KILLED_PROCESSOR = "player_game_summary"
WAIT_SECONDS = 240

TRIGGER, ALREADY_TRIGGERED, NO_TRIGGER = "trigger", "already_triggered", "no_trigger"


class NotRunning(RuntimeError):
    pass


@dataclass(frozen=True)
class Expectation:
    """What the day must end with, decided before it starts."""

    kind: str  # trigger | already_triggered | no_trigger
    why: str


def expectation(spec: PipelineSpec, claim: dict | None, game_date: dt.date, now: dt.datetime) -> Expectation:
    if claim is not None and claim.get("state") == "published":
        return Expectation(
            ALREADY_TRIGGERED,
            f"Phase 4 was already triggered for {game_date} ({(claim.get('decision') or {}).get('trigger_reason', '-')}, "
            f"published {claim.get('published_at')}): this day's runs will be recorded as late, and Phase 4 gets nothing new",
        )
    mode = mode_for(spec, game_date, now)
    if mode is None:
        days = (game_date - local_today(spec, now)).days
        return Expectation(
            NO_TRIGGER,
            f"{game_date} is {days} days ahead: no mode triggers it yet; the runs complete, no trigger is expected",
        )
    deadline = mode_deadline(spec, mode, game_date)
    gates = (
        f"its data gates hold the trigger until the tables have rows, or until its deadline ({deadline:%m-%d %H:%M %Z}: "
        f"then {mode.on_deadline})"
        if now < deadline
        else f"its deadline passed ({deadline:%m-%d %H:%M %Z}): a gate that fails means {mode.on_deadline}"
    )
    return Expectation(
        TRIGGER,
        f"{game_date} is {'an' if mode.name[0] in 'aeiou' else 'a'} {mode.name} date: Phase 4 must run once per message of the trigger "
        f"and of each follow-up for data that lands after it; {gates}",
    )


def the_date_is_decided(claim: dict | None, held: bool) -> bool:
    """Whether the orchestrator has decided on the date as its data stood: it wrote the trigger's
    messages into the claim (sent or not yet), or its gates held the date. A claim still being
    gated has not looked at the tables yet: data landing now would be part of the trigger, not late."""
    return held or bool(claim and claim.get("messages"))


class DayRun:
    def __init__(
        self,
        repo_root: Path,
        state: LocalState,
        game_date: dt.date,
        games: int,
        chaos: bool,
        say: Say,
        never_run: str | None = None,
    ):
        import google.cloud.pubsub_v1 as pubsub_v1
        from google.cloud import firestore

        from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse

        self.repo_root, self.state, self.game_date, self.games, self.chaos = repo_root, state, game_date, games, chaos
        self.spec: PipelineSpec = load_pipeline_spec(state.pipeline)
        self.warehouse = DuckDBWarehouse(state.warehouse)
        self.publisher, self.subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        self.firestore = firestore.Client(project=state.project)
        self.started = time.monotonic()
        self._say = say
        if never_run is not None and never_run not in self.spec.processor_names:
            raise NotRunning(
                f"--never-run: {never_run!r} is not a processor of {state.pipeline} ({', '.join(self.spec.processor_names)})"
            )
        self.never_run = never_run

    def say(self, text: str) -> None:
        self._say(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    # -- the day -------------------------------------------------------------

    def run(self) -> int:
        expected = expectation(self.spec, self._claim(), self.game_date, dt.datetime.now(dt.UTC))
        self.say(f"expect: {expected.why}")
        accepted_before = self._accepted()
        runs_before = self._runs()
        chaos = None
        if self.chaos:
            from phase3ops.local.chaos import ChaosDay

            chaos = ChaosDay(self.state, self.spec, self.game_date, self.subscriber, self.say)
        with chaos or contextlib.nullcontext():
            finished = self._play(chaos, expected, runs_before)
            self._settle()
        self._say("")
        self._say(self._progress_table())
        self._say("")
        phase4_ok = self._phase4_report(expected, accepted_before, runs_before)
        self._say("")
        if self.never_run is not None:
            self._explain()
            self._say("")
            finished = self._repair(runs_before, expected) and finished
            self._say("")
            phase4_ok = self._phase4_report(expected, accepted_before, runs_before)
            self._say("")
        health_code = self._health()
        self._say("")
        self._explain()
        return 0 if finished and phase4_ok and health_code == 0 else 1

    def _repair(self, runs_before: dict[str, int], expected: Expectation) -> bool:
        """What an on-call does when the ledger pages: reconcile --fix, which re-requests the missing run."""
        from phase3ops.checks.health import read_ledger
        from phase3ops.checks.reconcile import find_issues, fix
        from phase3ops.checks.repairs import ProcessorRepairs
        from phase3ops.orchestrator.factory import build_orchestrator

        orchestrator = build_orchestrator(self.spec, self.state.project)
        now = dt.datetime.now(dt.UTC)
        ledger = read_ledger(orchestrator, self.warehouse, now)
        # The day is played in fast forward: whatever it owes is owed now, whichever deadline is ahead.
        gaps = (
            [gap for gap in ledger.gaps(self.spec, now, lead=dt.timedelta(days=3)) if gap.game_date == self.game_date]
            if ledger is not None
            else []
        )
        self.say(
            f"reconcile --fix: {len(gaps)} owed run(s) missing for {self.game_date}: {', '.join(g.processor for g in gaps) or 'none'}"
        )
        repairs = ProcessorRepairs(self.spec, self.firestore, self.publisher, self.state.project)
        for result in fix(orchestrator, find_issues(self.spec, {}, now, gaps), now, repairs):
            self.say(f"  {result.game_date}  {'fixed' if result.ok else 'FIX FAILED'}: {result.message}")
        done = self._wait_until(
            lambda: self.never_run in self._new_runs(runs_before), f"the re-requested run of {self.never_run}"
        )
        self.never_run = None  # it ran: from here on, Phase 4 owes every table
        if done and expected.kind == TRIGGER:
            done = self._wait_until(
                self._phase4_accepted_every_table, f"Phase 4 to accept every table of {self.game_date}"
            )
        self._settle()
        return done and bool(gaps)

    def _play(self, chaos, expected: Expectation, runs_before: dict[str, int]) -> bool:
        day = generate_game_day(self.spec, self.game_date, games=self.games, seed=7, stale_scrapes=self.chaos)
        held_back = {}
        if chaos is not None:
            from phase3ops.local.chaos import FAILING_PROCESSOR

            held_back = {LATE_TABLE: day.tables[LATE_TABLE]}
            day.tables[LATE_TABLE] = []
            day.stale[LATE_TABLE] = []
            self.say(
                "chaos: every completion delivered twice; the orchestrator will die half-way through its next Phase 4 fan-out"
            )
            self.say(
                f"chaos: the first {FAILING_PROCESSOR} run will fail reading the warehouse; Pub/Sub delivers it again"
            )
        write_game_day(self.warehouse, self.spec, day)
        self.say(
            f"raw data for {self.game_date}: {day.games} games"
            + (f" ({LATE_TABLE} held back: a late scraper)" if held_back else "")
        )

        holder = chaos.hold_lock(KILLED_PROCESSOR) if chaos is not None else None
        copies = 2 if chaos is not None else 1
        triggered = [name for name in self.spec.processor_names if name != self.never_run]
        if self.never_run is not None:
            self.say(
                f"never-run: Phase 2 never triggers {self.never_run} for {self.game_date} (a processor with no trigger path)"
            )
        self._trigger_phase3(triggered, copies)
        if holder is not None:
            time.sleep(1.0)
            pid = chaos.kill_lock_holder()
            self.say(
                f"chaos: killed a {KILLED_PROCESSOR} instance holding its lock (pid {pid}); the lease runs out, the next run takes over"
            )

        if held_back:
            decides = expected.kind == TRIGGER and self._triggers_without_the_missing_run()
            self._wait_until(
                lambda: (
                    self._new_runs(runs_before) == set(triggered)
                    and (not decides or the_date_is_decided(self._claim(), self._held()))
                ),
                "the first processor runs" + (" and the orchestrator's decision on them" if decides else ""),
            )
            late_rows = [
                {**row, "scraped_at": row["scraped_at"] + dt.timedelta(minutes=75)} for row in held_back[LATE_TABLE]
            ]
            self.warehouse.write_partition(self.spec.raw_table(LATE_TABLE), self.game_date, late_rows)
            self.say(
                f"chaos: the late scraper delivered {LATE_TABLE} ({len(late_rows)} rows); Phase 2 triggers the team processors again"
            )
            self._trigger_phase3(
                [n for n in ("team_offense_game_summary", "team_defense_game_summary") if n != self.never_run], copies
            )

        if expected.kind == TRIGGER and self._triggers_without_the_missing_run():
            return self._wait_until(
                self._phase4_accepted_every_table, f"Phase 4 to accept the triggers of {self.game_date}"
            )
        return self._wait_until(
            lambda: self._new_runs(runs_before) == set(triggered), f"every processor's run for {self.game_date}"
        )

    def _triggers_without_the_missing_run(self) -> bool:
        from phase3ops.orchestrator.readiness import evaluate

        if self.never_run is None:
            return True
        return evaluate(
            self.spec,
            self.game_date,
            set(self.spec.processor_names) - {self.never_run},
            dt.datetime.now(dt.UTC),
        ).ready

    # -- steps ---------------------------------------------------------------

    def _trigger_phase3(self, processors: list[str], copies: int) -> None:
        topic = self.publisher.topic_path(self.state.project, self.spec.topics.phase3_trigger)
        for name in processors:
            for _ in range(copies):
                message = {
                    "game_date": self.game_date.isoformat(),
                    "processors": [name],
                    "correlation_id": f"local-{self.game_date}",
                }
                self.publisher.publish(topic, json.dumps(message).encode()).result(timeout=30)
        self.say(f"Phase 2 -> {self.spec.topics.phase3_trigger}: {len(processors)} processors x {copies}")

    def _records(self) -> dict[str, dict]:
        collection = self.firestore.collection(self.spec.orchestrator.collections.completions)
        refs = [collection.document(f"{self.game_date.isoformat()}_{name}") for name in self.spec.processor_names]
        # to_dict() is None exactly for the documents that do not exist.
        return {s.get("processor"): data for s in self.firestore.get_all(refs) if (data := s.to_dict()) is not None}

    def _runs(self) -> dict[str, int]:
        return {name: len(record.get("runs") or []) for name, record in self._records().items()}

    def _new_runs(self, before: dict[str, int]) -> set[str]:
        """The processors with a run recorded since the day started."""
        return {name for name, count in self._runs().items() if count > before.get(name, 0)}

    def _claim(self) -> dict | None:
        snapshot = self.firestore.document(
            self.spec.orchestrator.collections.triggers, self.game_date.isoformat()
        ).get()
        return snapshot.to_dict() if snapshot.exists else None

    def _held(self) -> bool:
        return (
            self.firestore.document(self.spec.orchestrator.collections.holds, self.game_date.isoformat()).get().exists
        )

    def _accepted(self) -> dict[str, int]:
        """What the Phase 4 stand-in accepted for the date, per source table."""
        date = self.game_date.isoformat()
        return {table: n for (day, table), n in accepted_counts(self.state.phase4_ledger).items() if day == date}

    def _phase4_accepted_every_table(self) -> bool:
        accepted = self._accepted()
        return all(accepted.get(p.output_table) for p in self.spec.processors if p.name != self.never_run)

    def _follow_ups(self) -> list[dict]:
        from google.cloud import firestore

        query = self.firestore.collection(self.spec.orchestrator.collections.followups).where(
            filter=firestore.FieldFilter("game_date", "==", self.game_date.isoformat())
        )
        # A query yields only documents that exist: none is dropped here.
        return [data for snapshot in query.stream() if (data := snapshot.to_dict()) is not None]

    def _phase4_report(self, expected: Expectation, before: dict[str, int], runs_before: dict[str, int]) -> bool:
        """Print what Phase 4 received and ran per table; True when it is what the day expected:
        its work ran exactly once for every message of the trigger and of each follow-up."""
        accepted = self._accepted()
        claim = self._claim() or {}
        published, decision = claim.get("published", {}), claim.get("decision", {})
        degraded = "  DEGRADED (a gate still failed at the deadline)" if decision.get("degraded") else ""
        self._say(
            f"Phase 4 (stand-in) for {self.game_date}: mode={decision.get('mode', '-')}  reason={decision.get('trigger_reason', '-')}{degraded}"
        )
        date = self.game_date.isoformat()
        ledger = [e for e in ledger_entries(self.state.phase4_ledger) if e.get("game_date") == date]
        counts = {table: t for (day, table), t in tally(self.state.phase4_ledger).items() if day == date}
        follow_ups = [f for f in self._follow_ups() if f.get("state") == "published"]
        late = {m["part"]: 0 for f in follow_ups for m in f.get("messages", ())}
        for f in follow_ups:
            for m in f.get("messages", ()):
                late[m["part"]] += 1
        rows = [
            (
                p.output_table,
                str(counts[p.output_table].received if p.output_table in counts else 0),
                str(accepted.get(p.output_table, 0)),
                published.get(p.output_table, {}).get("confirmed_by", "-"),
                str(late.get(p.output_table, 0)),
            )
            for p in self.spec.processors
        ]
        self._say(render_table(rows, ("source_table", "received", "work started", "confirmed by", "follow-ups")))
        if expected.kind == TRIGGER:
            sent = [m["trigger_id"] for m in claim.get("messages", ())] + [
                m["trigger_id"] for f in follow_ups for m in f.get("messages", ())
            ]
            work = collections.Counter(e["trigger_id"] for e in ledger if e.get("work_started"))
            return bool(claim) and all(work[trigger_id] == 1 for trigger_id in sent) and sum(work.values()) == len(sent)
        if expected.kind == ALREADY_TRIGGERED:
            late_runs = ", ".join(sorted(self._new_runs(runs_before))) or "no processor"
            self._say(
                f"already triggered before this day: nothing new for Phase 4 ({'unchanged' if accepted == before else 'CHANGED'}); the runs of {late_runs} were recorded late"
            )
        else:
            self._say(
                "no trigger expected for this date, and none sent"
                if not accepted
                else "a trigger was sent for a date no mode decides: unexpected"
            )
        return accepted == before

    def _wait_until(self, condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> bool:
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
        self.say(f"{what}: NOT within {timeout:.0f}s (logs: {self.state.logs_dir})")
        return False

    def _keep_orchestrator_alive(self) -> None:
        component = self.state.components["orchestrator"]
        if not component.alive():
            self.say(f"the orchestrator instance (pid {component.pid}) died; starting a new one, Pub/Sub redelivers")
            restart_orchestrator(self.repo_root, self.state, lambda _: None)

    def _settle(self, quiet_seconds: float = 4.0, timeout: float = 90.0) -> None:
        """Let duplicate deliveries and late runs finish: records unchanged and nothing new for Phase 4 for a while."""
        deadline = time.monotonic() + timeout
        last, quiet_since = None, time.monotonic()
        while time.monotonic() < deadline:
            self._keep_orchestrator_alive()
            snapshot = json.dumps(
                {n: (r["execution_id"], r["status"], len(r.get("runs", []))) for n, r in self._records().items()},
                sort_keys=True,
            )
            snapshot += json.dumps(self._accepted(), sort_keys=True)
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
        return render_table(
            rows, ("processor", "completion", "reported rows", f"rows in {self.spec.analytics.dataset}")
        )

    def _health(self) -> int:
        from phase3ops.checks.health import check_dates, header
        from phase3ops.checks.results import exit_code, render
        from phase3ops.orchestrator.factory import build_orchestrator

        orchestrator = build_orchestrator(self.spec, self.state.project)
        now = dt.datetime.now(dt.UTC)
        context, results = check_dates(
            orchestrator,
            self.warehouse,
            self.game_date,
            self.game_date,
            now,
            target="local",
            project=self.state.project,
        )
        self._say(render(results, header(context)))
        return exit_code(results)

    def _explain(self) -> None:
        from phase3ops.explain import explain_date
        from phase3ops.explain.timeline import render

        story = explain_date(
            self.spec,
            self.state.project,
            self.warehouse,
            self.game_date,
            dt.datetime.now(dt.UTC),
            ledger_entries(self.state.phase4_ledger),
        )
        self._say(
            f"The story of {self.game_date}, from what the pipeline stored (phase3ops explain {self.game_date} --local):"
        )
        self._say("")
        self._say(render(story))


def run_day(
    repo_root: Path,
    run_dir: Path,
    game_date: dt.date | None,
    games: int,
    chaos: bool,
    say: Say,
    never_run: str | None = None,
) -> int:
    state = LocalState.load(run_dir.resolve())
    if state is None:
        raise NotRunning(f"the local environment in {run_dir} is not running: run `phase3ops local up` first")
    dead = [c.name for key, c in state.components.items() if key not in state.helpers() and not c.alive()]
    if dead:
        raise NotRunning(f"not running: {', '.join(dead)}; run `phase3ops local up` (it restarts them)")
    os.environ.update(state.env)
    spec = load_pipeline_spec(state.pipeline)
    game_date = game_date or local_today(spec, dt.datetime.now(dt.UTC)) - dt.timedelta(days=1)
    with _signals_as_interrupts():
        return DayRun(repo_root, state, game_date, games, chaos, say, never_run).run()


@contextlib.contextmanager
def _signals_as_interrupts():
    """SIGTERM ends the day like Ctrl-C: through every `finally`, so chaos is undone."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
