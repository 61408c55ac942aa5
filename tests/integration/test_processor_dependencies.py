"""`after:` holds a processor until what it reads is complete for the date, against the emulators and DuckDB."""

from __future__ import annotations

import datetime as dt

import google.cloud.pubsub_v1 as pubsub_v1
import pytest
from google.cloud import firestore

from phase3ops.analytics.dependencies import WaitingForDependencies
from phase3ops.analytics.factory import build_runner
from phase3ops.analytics.synthetic import generate_game_day, write_game_day
from phase3ops.orchestrator.factory import build_orchestrator
from phase3ops.pubsub_admin import ensure_orchestrator_topology
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.orchestration import direct_event, handle_until_acked
from tests.support.single_process_duckdb import SingleProcessDuckDB
from tests.support.specs import write_pipeline_variant

pytestmark = pytest.mark.emulators
DAY = dt.date(2026, 11, 28)
READS = ["team_offense_game_summary", "team_defense_game_summary"]


@pytest.fixture
def runner_and_orchestrator(gcp_project, tmp_path):
    # As the reference's player summary reads the team tables for its usage rate.
    spec = load_pipeline_spec(write_pipeline_variant(tmp_path, {"spec.processors.0.after": READS}))
    ensure_orchestrator_topology(pubsub_v1.PublisherClient(), gcp_project, spec)
    warehouse = SingleProcessDuckDB(tmp_path / "warehouse.duckdb")
    write_game_day(warehouse, spec, generate_game_day(spec, DAY, games=2, seed=3))
    db = firestore.Client(project=gcp_project)
    runner = build_runner(spec, gcp_project, warehouse=warehouse, firestore_client=db)
    runner.prepare()
    return spec, runner, build_orchestrator(spec, gcp_project, firestore_client=db, warehouse=warehouse)


def test_a_processor_waits_until_every_table_it_reads_has_a_counting_completion(runner_and_orchestrator):
    _spec, runner, orchestrator = runner_and_orchestrator
    with pytest.raises(WaitingForDependencies, match="reads team_offense_game_summary, team_defense_game_summary"):
        runner.run("player_game_summary", DAY)
    handle_until_acked(orchestrator, direct_event("team_offense_game_summary", DAY))
    handle_until_acked(orchestrator, direct_event("team_defense_game_summary", DAY, status="failed"))
    with pytest.raises(WaitingForDependencies, match=r"reads team_defense_game_summary,? not complete"):
        runner.run("player_game_summary", DAY)  # a failed run does not count
    handle_until_acked(orchestrator, direct_event("team_defense_game_summary", DAY))
    assert runner.run("player_game_summary", DAY).status == "success"
    assert runner.run("team_offense_game_summary", DAY).status == "success"  # declares nothing: never waits


def test_a_cycle_or_an_unknown_name_in_after_is_refused_at_its_line(tmp_path):
    from phase3ops.spec.documents import SpecError

    with pytest.raises(SpecError, match=r"processors\[0\]\.after\[0\]: 'nope' is not a processor"):
        load_pipeline_spec(write_pipeline_variant(tmp_path, {"spec.processors.0.after": ["nope"]}))
    cyclic = {
        "spec.processors.0.after": ["team_offense_game_summary"],
        "spec.processors.1.after": ["player_game_summary"],
    }
    with pytest.raises(
        SpecError, match="waits in a cycle: player_game_summary -> team_offense_game_summary -> player_game_summary"
    ):
        load_pipeline_spec(write_pipeline_variant(tmp_path, cyclic))
