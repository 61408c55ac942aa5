"""`phase3ops trigger --force | skip | retrigger` as an operator runs them, against the emulators.

With the environment `phase3ops local env` or the scheduled jobs set (the
emulators, the project, the pipeline spec), a receipts recorder on the Phase 4
topic, and the messages counted on a subscription of it. The commands that race
each other are real processes, and so is the first command of the other test;
the rest run in this process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from phase3ops.orchestrator.factory import build_orchestrator
from phase3ops.orchestrator.readiness import local_today
from phase3ops.overrides import for_date, skipped
from tests.support.cli_process import run_in_process
from tests.support.orchestration import UPGC, direct_event, handle_until_acked, wait_for_receipts
from tests.support.pipelines import exactly_once, per_date_and_table

pytestmark = pytest.mark.emulators


def phase3ops(pipeline, emulator_hosts, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_EMULATOR_HOST")
        and not k.startswith("PHASE3OPS_")
        and k not in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_ACCOUNT")
    }
    return subprocess.Popen(
        [sys.executable, "-m", "phase3ops.cli", *args],
        env={**clean, "PYTHONWARNINGS": "ignore", **pipeline_environment(pipeline, emulator_hosts, env)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(pipeline, emulator_hosts, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = phase3ops(pipeline, emulator_hosts, *args, env=env)
    stdout, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    return process.returncode, stdout, stderr


def run_here(pipeline, emulator_hosts, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`run` in this process, pointed at the same pipeline (a second of importing less a command)."""
    result = run_in_process(*args, env=pipeline_environment(pipeline, emulator_hosts, env))
    return result.returncode, result.stdout, result.stderr


def pipeline_environment(pipeline, emulator_hosts, env: dict[str, str] | None) -> dict[str, str]:
    """What points a command at the test's pipeline, as `phase3ops local env` or a scheduled job sets it."""
    return {
        **emulator_hosts,
        "GOOGLE_CLOUD_PROJECT": pipeline.project,
        "PHASE3OPS_PIPELINE": pipeline.spec.source,
        **(env or {}),
    }


@pytest.fixture
def today(pipeline) -> dt.date:
    """The commands run on the real clock: so does the orchestrator here."""
    pipeline.clock.now = dt.datetime.now(dt.UTC)
    return local_today(pipeline.spec, pipeline.clock.now)


def complete(pipeline, day: dt.date, processors) -> None:
    orchestrator = build_orchestrator(pipeline.spec, pipeline.project, clock=pipeline.clock)
    for name in processors:
        handle_until_acked(orchestrator, direct_event(name, day))


def test_force_retrigger_and_skip_from_the_command_line(pipeline, emulator_hosts, today):
    spec, day = pipeline.spec, today - dt.timedelta(days=2)
    complete(pipeline, day, [n for n in spec.processor_names if n != UPGC])
    account = {"CLOUDSDK_CORE_ACCOUNT": "ops@example.com"}

    code, out, err = run(
        pipeline, emulator_hosts, "trigger", str(day), "--force", "--reason", "UPGC retired (INC-12)", env=account
    )
    assert code == 0, out + err
    assert "trigger by ops@example.com (from CLOUDSDK_CORE_ACCOUNT): UPGC retired (INC-12)" in out
    assert f"{day}  force_trigger: published: 5 Phase 4 message(s) published under {spec.name}:{day}" in out
    assert f"recorded as {spec.orchestrator.collections.overrides}/{day}~force_trigger~" in out
    assert per_date_and_table(pipeline.triggers(at_least=5)) == exactly_once(spec, [day])
    wait_for_receipts(pipeline, [day])

    code, out, _ = run_here(pipeline, emulator_hosts, "trigger", str(day), "--force", "--reason", "again", env=account)
    assert code == 1 and "already triggered" in out and f"use `phase3ops retrigger {day}" in out
    assert pipeline.triggers() == []

    code, out, err = run_here(
        pipeline, emulator_hosts, "retrigger", str(day), "--reason", "UPGC fixed after all", "--json", env=account
    )
    assert code == 0, out + err
    [outcome] = json.loads(out)["outcomes"]
    assert (outcome["outcome"], outcome["retrigger"]) == ("published", 1)
    assert outcome["trigger_ids"] == [f"{spec.name}:{day}:{p.output_table}:retrigger-1" for p in spec.processors]
    retriggered = pipeline.triggers(at_least=5)
    assert sorted(m.attributes["trigger_id"] for m in retriggered) == sorted(outcome["trigger_ids"])

    code, out, err = run_here(
        pipeline,
        emulator_hosts,
        "skip",
        str(day),
        "TeamOffenseGameSummaryProcessor",
        "--reason",
        "feed outage",
        "--operator",
        "carol",
    )
    assert code == 0, out + err
    assert sorted(skipped(pipeline.firestore, spec, day)) == ["team_offense_game_summary"]
    assert (
        run_here(
            pipeline,
            emulator_hosts,
            "skip",
            str(day),
            "team_offense_game_summary",
            "--undo",
            "--reason",
            "back",
            env=account,
        )[0]
        == 0
    )
    code, out, _ = run_here(
        pipeline,
        emulator_hosts,
        "skip",
        str(day),
        "team_offense_game_summary",
        "--undo",
        "--reason",
        "back",
        env=account,
    )
    assert code == 1 and "nothing to undo" in out
    assert skipped(pipeline.firestore, spec, day) == {}
    assert pipeline.triggers() == []

    recorded = [(r.kind, r.outcome, r.operator, r.operator_source) for r in for_date(pipeline.firestore, spec, day)]
    assert recorded == [
        ("force_trigger", "published", "ops@example.com", "CLOUDSDK_CORE_ACCOUNT"),
        ("force_trigger", "refused", "ops@example.com", "CLOUDSDK_CORE_ACCOUNT"),
        ("retrigger", "published", "ops@example.com", "CLOUDSDK_CORE_ACCOUNT"),
        ("skip", "recorded", "carol", "--operator"),
        ("unskip", "recorded", "ops@example.com", "CLOUDSDK_CORE_ACCOUNT"),
        ("unskip", "refused", "ops@example.com", "CLOUDSDK_CORE_ACCOUNT"),
    ]


def test_two_force_commands_at_once_publish_once(pipeline, emulator_hosts, today):
    spec = pipeline.spec
    days = [today - dt.timedelta(days=offset) for offset in (3, 4, 5)]
    for day in days:
        complete(pipeline, day, [n for n in spec.processor_names if n != UPGC])

    for day in days:
        processes = [
            phase3ops(
                pipeline, emulator_hosts, "trigger", str(day), "--force", "--reason", "UPGC broken", "--operator", who
            )
            for who in ("alice", "bob")
        ]
        results = [(*p.communicate(timeout=120), p.returncode) for p in processes]
        assert sorted(code for _, _, code in results) == [0, 1], results

    assert per_date_and_table(pipeline.triggers(at_least=15)) == exactly_once(spec, days)
    for day in days:
        assert sorted(r.outcome for r in for_date(pipeline.firestore, spec, day)) == ["published", "refused"]
