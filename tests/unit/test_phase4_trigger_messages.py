"""The Phase 4 trigger contract, field by field against the reference wire contracts."""

from __future__ import annotations

import datetime as dt
import json

from phase3ops.orchestrator.completion_store import CompletionRecord
from phase3ops.orchestrator.phase4_trigger import TriggerMessage, build_trigger_messages
from phase3ops.orchestrator.readiness import evaluate
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.specs import REPO_ROOT, write_pipeline_variant

SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
NOW = dt.datetime(2026, 11, 29, 15, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 28)
# What the running Phase 4 consumer's /process reads, and what the reference sends besides.
CONSUMER_READS = {
    "source_table",
    "analysis_date",
    "game_date",
    "success",
    "correlation_id",
    "trigger_source",
    "triggered_by",
}
REFERENCE_FIELDS = CONSUMER_READS | {
    "timestamp",
    "mode",
    "trigger_reason",
    "entities_changed",
    "is_incremental",
    "parent_execution_id",
    "parent_processor",
    "data_freshness_verified",
}


def records(metadata: dict[str, dict] | None = None) -> dict[str, CompletionRecord]:
    return {
        name: CompletionRecord(
            game_date=DAY,
            processor=name,
            status="success",
            counts=True,
            execution_id=f"{index:08x}",
            message_id=f"m{index}",
            published_at=NOW - dt.timedelta(minutes=10 - index),
            record_count=10,
            output_table=name,
            correlation_id=f"corr-{index}",
            metadata=(metadata or {}).get(name, {}),
        )
        for index, name in enumerate(SPEC.processor_names)
    }


def build(spec=SPEC, recs=None, completing=None):
    recs = recs or records()
    readiness = evaluate(spec, DAY, set(recs), NOW)
    return build_trigger_messages(spec, DAY, readiness, recs, completing, NOW)


def test_one_message_per_source_table_in_processor_order_with_the_reference_fields():
    recs = records()
    messages = build(recs=recs, completing=recs["team_defense_game_summary"])
    assert [m.part for m in messages] == [p.output_table for p in SPEC.processors]
    for message in messages:
        body = json.loads(message.data)
        assert set(body) >= REFERENCE_FIELDS
        assert set(body) - REFERENCE_FIELDS == {"trigger_id", "degraded"}  # our additions (with no gates to report)
        assert (body["data_freshness_verified"], body["degraded"]) == (True, False)
        assert body["source_table"] == message.part
        assert (body["analysis_date"], body["game_date"], body["success"]) == ("2026-11-28", "2026-11-28", True)
        assert (body["trigger_source"], body["triggered_by"], body["parent_processor"]) == (
            "orchestrator",
            "phase3_to_phase4_orchestrator",
            "Phase3Orchestrator",
        )
        assert (body["mode"], body["trigger_reason"]) == ("overnight", "all_complete")
        # Lineage: the completion that completed the date.
        assert (body["correlation_id"], body["parent_execution_id"]) == ("corr-2", "00000002")
        assert body["trigger_id"] == message.trigger_id == f"nba-phase3-to-phase4:2026-11-28:{message.part}"
        assert message.attributes == {
            "trigger_id": message.trigger_id,
            "game_date": "2026-11-28",
            "source_table": message.part,
        }


def test_the_bytes_are_stable():
    assert [m.data for m in build()] == [m.data for m in build()]


def test_entities_changed_is_the_union_of_the_incremental_runs():
    recs = records(
        {
            "player_game_summary": {"is_incremental": True, "entities_changed": ["lebron-james", "steph-curry"]},
            "upcoming_player_game_context": {
                "is_incremental": True,
                "entities_changed": ["steph-curry", "luka-doncic", None],
            },
            "team_offense_game_summary": {"is_incremental": True, "entities_changed": {"teams": ["LAL"]}},
            "upcoming_team_game_context": {
                "is_incremental": False,
                "entities_changed": ["BOS"],
            },  # a full run: not a change list
        }
    )
    body = json.loads(build(recs=recs)[0].data)
    assert body["entities_changed"] == {"players": ["lebron-james", "luka-doncic", "steph-curry"], "teams": ["LAL"]}
    assert body["is_incremental"] is True


def test_nothing_incremental_sends_an_empty_union():
    body = json.loads(build()[0].data)
    assert (body["entities_changed"], body["is_incremental"]) == ({}, False)


def test_without_a_completing_run_the_newest_counting_run_is_the_lineage():
    body = json.loads(build()[0].data)
    assert body["parent_execution_id"] == "00000004"


def test_the_per_date_form(tmp_path):
    spec = load_pipeline_spec(write_pipeline_variant(tmp_path, {"spec.phase4_trigger.form": "per_date"}))
    [message] = build(spec=spec)
    body = json.loads(message.data)
    assert message.trigger_id == body["trigger_id"] == "nba-phase3-to-phase4:2026-11-28"
    assert body["completed_tables"] == [p.output_table for p in spec.processors]
    assert set(body["executions"]) == set(spec.processor_names)
    assert "source_table" not in body and "source_table" not in message.attributes


def test_the_gates_verdict_travels_with_every_message():
    from phase3ops.gates.evaluate import GateReport, GateResult

    report = GateReport(
        (
            GateResult("data_exists", "rows_exist", "block", False, 0.6, 1.0, "team_offense_game_summary: 0 rows"),
            GateResult(
                "minutes_coverage",
                "column_coverage",
                "block",
                True,
                0.9312,
                0.8,
                "...",
                message_field="minutes_coverage_pct",
            ),
            GateResult("minutes_coverage_warning", "column_coverage", "alert", True, 0.9312, 0.9, "..."),
        )
    )
    recs = records()
    readiness = evaluate(SPEC, DAY, set(recs), NOW)
    degraded = build_trigger_messages(SPEC, DAY, readiness, recs, None, NOW, report, degraded=True)
    body = json.loads(degraded[0].data)
    assert (body["data_freshness_verified"], body["degraded"], body["minutes_coverage_pct"]) == (False, True, 93.1)
    assert body["failing_gates"] == ["data_exists"]
    assert body["gates"]["data_exists"] == {"passed": False, "figure": 0.6, "threshold": 1.0}
    passed = GateReport(report.results[1:])
    body = json.loads(build_trigger_messages(SPEC, DAY, readiness, recs, None, NOW, passed)[0].data)
    assert (body["data_freshness_verified"], body["degraded"], body["failing_gates"]) == (True, False, [])


def test_a_union_of_changes_too_large_to_store_is_sent_as_a_full_run():
    """The claim stores every message of the date, each with the union: five completions
    with the largest metadata the orchestrator accepts would outgrow a Firestore document.
    Past the bound Phase 4 is told to process everything, which an incremental consumer
    always may do."""
    players = [f"player-{i:05d}-" + "x" * 40 for i in range(4000)]  # about 200 KiB: within one completion's bound
    body = json.loads(
        build(
            recs=records(
                {
                    "player_game_summary": {"is_incremental": True, "entities_changed": players[:2000]},
                    "upcoming_player_game_context": {"is_incremental": True, "entities_changed": players[2000:]},
                }
            )
        )[0].data
    )

    assert (body["entities_changed"], body["is_incremental"]) == ({}, False)
    messages = build(recs=records({"player_game_summary": {"is_incremental": True, "entities_changed": players}}))
    assert sum(len(json.dumps(m.to_document())) for m in messages) < 900 * 1024


def test_a_claim_keeps_the_very_bytes_it_publishes_and_reads_claims_kept_as_a_map():
    [first, *_] = build()
    document = first.to_document()
    assert document["data"].encode("utf-8") == first.data  # a recovery re-sends these bytes
    assert TriggerMessage.from_document(document) == first
    # A claim written by the version before (body kept as a map) is still read whole after a deploy.
    legacy = {**{k: v for k, v in document.items() if k != "data"}, "body": dict(first.body)}
    assert TriggerMessage.from_document(legacy).data == first.data
