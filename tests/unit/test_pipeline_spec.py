"""The pipeline spec: the shipped file loads; every malformed variant fails with all its problems located."""

from __future__ import annotations

import pytest

from phase3ops.spec.documents import SpecError
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.specs import DELETE, REPO_ROOT, write_pipeline_variant


def problems_of(path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_pipeline_spec(path)
    return [str(p) for p in caught.value.problems]


def test_shipped_spec_describes_the_five_processors():
    spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
    assert spec.processor_names == (
        "player_game_summary",
        "team_offense_game_summary",
        "team_defense_game_summary",
        "upcoming_player_game_context",
        "upcoming_team_game_context",
    )
    assert spec.timezone == "America/New_York"
    assert spec.processor("player_game_summary").primary_key == ("game_date", "player_lookup")
    assert spec.processor("team_offense_game_summary").primary_key == ("game_date", "team_abbr")
    assert {m.name: (m.applies_to, m.critical) for m in spec.modes} == {
        "overnight": ("past", ("player_game_summary", "upcoming_player_game_context")),
        "same_day": ("today", ("upcoming_player_game_context",)),
        "tomorrow": ("tomorrow", ("upcoming_player_game_context",)),
    }
    assert spec.phase4_trigger.form == "per_table"
    assert spec.orchestrator.receipts_function_name == "phase4-trigger-receipts"


def test_every_schema_error_is_reported_at_once_with_line_and_path(tmp_path):
    path = write_pipeline_variant(
        tmp_path,
        {
            "spec.processors.1.entities": "games",
            "spec.processors.3.primary_key": [],
            "spec.modes.0.min_fraction": 1.5,
            "spec.topics.completion": "x",
        },
    )
    lines = path.read_text().splitlines()
    problems = problems_of(path)

    assert len(problems) == 4, problems
    expectations = {
        "spec.processors[1].entities: 'games' is not one of 'players', 'teams'": "entities: games",
        "spec.processors[3].primary_key: [] should be non-empty": "primary_key: []",
        "spec.modes[0].min_fraction: 1.5 is greater than the maximum of 1": "min_fraction: 1.5",
        "spec.topics.completion: 'x' does not match": "completion: x",
    }
    for message, source_text in expectations.items():
        [problem] = [p for p in problems if message in p]
        line = int(problem.split(":")[1])
        assert source_text in lines[line - 1], (problem, lines[line - 1])
        assert problem.startswith(f"{path}:{line}: ")


def test_unknown_keys_are_named_with_the_allowed_ones(tmp_path):
    path = write_pipeline_variant(tmp_path, {"spec.processors.0.critcal": True})
    [problem] = problems_of(path)
    assert "spec.processors[0]" in problem
    assert "'critcal' was unexpected" in problem
    assert "allowed: after, class_name, columns, entities, late_data, name, output_table, primary_key" in problem


def test_semantic_rules_are_checked_together(tmp_path):
    path = write_pipeline_variant(
        tmp_path,
        {
            "spec.processors.1.name": "player_game_summary",
            "spec.processors.2.primary_key": ["team_abbr"],
            "spec.modes.2.applies_to": "today",
            "spec.timezone": "America/Nowhere",
            "spec.orchestrator.claim_lease_seconds": 10,
            "spec.orchestrator.publish_timeout_seconds": 10,
        },
    )
    problems = problems_of(path)
    assert len(problems) == 6, problems
    joined = "\n".join(problems)
    assert "spec.modes[0].optional[0]: 'team_offense_game_summary' is not a processor" in joined  # renamed away
    assert "spec.processors[1].name: 'player_game_summary' is already used by processors[0]" in joined
    assert "spec.processors[2].primary_key: must include 'game_date'" in joined
    assert "spec.modes[2].applies_to: 'today' is already used by modes[1]" in joined
    assert "spec.timezone: unknown time zone 'America/Nowhere'" in joined
    assert "spec.orchestrator.claim_lease_seconds: must be at least twice publish_timeout_seconds (10)" in joined


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"spec.modes.0.critical": ["player_game_summry"]},
            "spec.modes[0].critical[0]: 'player_game_summry' is not a processor",
        ),
        (
            {"spec.modes.1.optional": ["upcoming_player_game_context"]},
            "spec.modes[1].optional[0]: 'upcoming_player_game_context' is already critical in this mode",
        ),
        (
            {"spec.modes.1.expected_count": 3},
            "spec.modes[1].expected_count: 3 can never be met: critical + optional name only 2 processors",
        ),
        (
            {"spec.modes.2.critical": [], "spec.modes.2.optional": []},
            "spec.modes[2]: names no processor: the rule can never be met",
        ),
    ],
)
def test_a_mode_rule_that_can_never_be_met_is_refused(tmp_path, changes, expected):
    path = write_pipeline_variant(tmp_path, changes)
    problems = problems_of(path)
    assert [p for p in problems if expected in p], problems


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("# yaml-language-server: $schema=x\napiVersion: phase3ops/v1\nspec:\n  topics: [unclosed\n")
    [problem] = problems_of(path)
    assert "invalid YAML" in problem
    assert problem.split(":")[1] in {"4", "5"}


def test_duplicate_keys_are_an_error(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("# yaml-language-server: $schema=x\napiVersion: phase3ops/v1\napiVersion: phase3ops/v1\n")
    [problem] = problems_of(path)
    assert "invalid YAML" in problem and "duplicate key" in problem


def test_missing_schema_comment_is_reported(tmp_path):
    path = write_pipeline_variant(tmp_path)
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    problems = problems_of(path)
    assert problems == [f"{path}:1: <document>: the first line must be '# yaml-language-server: $schema=<schema path>'"]


def test_missing_file_and_missing_required_sections(tmp_path):
    assert "--pipeline names a file that does not exist" in problems_of(tmp_path / "absent.yaml")[0]
    path = write_pipeline_variant(tmp_path, {"spec.modes": DELETE, "spec.orchestrator.collections": DELETE})
    problems = problems_of(path)
    assert any("spec: 'modes' is a required property" in p for p in problems)
    assert any("spec.orchestrator: 'collections' is a required property" in p for p in problems)


def test_located_through_environment_variable(tmp_path, monkeypatch):
    path = write_pipeline_variant(tmp_path, {"metadata.name": "from-env"})
    monkeypatch.setenv("PHASE3OPS_PIPELINE", str(path))
    assert load_pipeline_spec().name == "from-env"


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"spec.analytics.request_timeout_seconds": 580},
            "spec.analytics.request_timeout_seconds: 580 s leaves less than 30 s before the push ack deadline (600 s)",
        ),
        (
            {"spec.analytics.lock.max_wait_seconds": 540},
            "spec.analytics.lock.max_wait_seconds: 540 s must be shorter than request_timeout_seconds (540 s)",
        ),
        ({"spec.game_schedule.table": "calendar"}, "spec.game_schedule.table: 'calendar' is not a raw table"),
        (
            {"spec.scheduled_checks.0.args": ["drift"]},
            "spec.scheduled_checks[0].args[0]: 'drift' is not one of 'health', 'reconcile', 'holds'",
        ),
    ],
)
def test_a_request_must_end_before_pubsub_gives_up_on_it(tmp_path, changes, expected):
    problems = problems_of(write_pipeline_variant(tmp_path, changes))
    assert [p for p in problems if expected in p], problems


# A gate spec that cannot be evaluated is refused where it is written, with everything else wrong in it.
GATE_MISTAKES = [
    ({"spec.gates.2.valid": "minutes >"}, "spec.gates[2].valid: not a SQL expression", "valid: minutes >"),
    (
        {"spec.gates.2.population": "NOT played"},
        "spec.gates[2].population: names columns the table does not have: played",
        "population: NOT played",
    ),
    (
        {"spec.gates.2.valid": "minutes > (SELECT 1)"},
        "spec.gates[2].valid: must be an expression over the table's columns",
        "valid: minutes > (SELECT 1)",
    ),
    (
        {"spec.gates.1.tables": ["player_summary"]},
        "spec.gates[1].tables[0]: 'player_summary' is not a processor's output table",
        "- player_summary",
    ),
    (
        {"spec.gates.4.columns": ["minutes", "minuts"]},
        "spec.gates[4].columns[1]: 'minuts' is not a column of player_game_summary",
        "- minuts",
    ),
    ({"spec.gates.1.modes": ["nightly"]}, "spec.gates[1].modes[0]: 'nightly' is not a mode", "- nightly"),
    (
        {"spec.gates.1.name": "data_exists"},
        "spec.gates[1].name: 'data_exists' is already used by gates[0]",
        "name: data_exists",
    ),
    ({"spec.gates.0.columns": ["minutes"]}, "spec.gates[0].columns: does not apply to a rows_exist gate", "columns:"),
    (
        {"spec.gates.2.message_field": "source_table"},
        "spec.gates[2].message_field: 'source_table' is a field the Phase 4 message already carries",
        "message_field: source_table",
    ),
    ({"spec.gates.1.min": 80}, "spec.gates[1].min: 80 is greater than the maximum of 1", "min: 80"),
    (
        {"spec.gates.1.action": "warn"},
        "spec.gates[1].action: 'warn' is not one of 'block', 'alert', 'off'",
        "action: warn",
    ),
    ({"spec.gates.2.min": DELETE}, "spec.gates[2]: 'min' is a required property", "- name: minutes_coverage"),
    (
        {"spec.modes.0.on_deadline": "page"},
        "spec.modes[0].on_deadline: 'page' is not one of 'hold', 'trigger_degraded'",
        "on_deadline: page",
    ),
    ({"spec.modes.1.deadline": DELETE}, "spec.modes[1]: 'deadline' is a required property", "- name: same_day"),
]


@pytest.mark.parametrize(
    "changes, expected, source_text",
    GATE_MISTAKES,
    ids=[m[1].split(":")[0] + "-" + m[1].split(": ")[1][:30] for m in GATE_MISTAKES],
)
def test_a_bad_gate_or_deadline_fails_at_its_file_and_line(tmp_path, changes, expected, source_text):
    path = write_pipeline_variant(tmp_path, changes)
    problems = problems_of(path)
    matching = [p for p in problems if expected in p]
    assert len(matching) == 1, problems
    [problem] = matching
    line = int(problem.split(":")[1])
    assert source_text in path.read_text().splitlines()[line - 1], (problem, source_text)


def test_each_reader_of_a_spec_text_gets_a_document_of_its_own():
    """Texts are parsed once and copied: merging a stack's overrides into one copy must not reach the next."""
    from phase3ops.spec.documents import parse_yaml

    text = "kind: AlertRule\nspec:\n  enabled: true\n  channels:\n    - oncall\n    - {name: team}\n  empty: {}\n"
    first = parse_yaml(text, "alerts/a.yaml")
    first.root["spec"]["enabled"] = False
    first.root["spec"]["channels"].append("another")
    first.root["spec"]["channels"][1]["name"] = "changed"
    first.root["spec"]["empty"]["added"] = 1
    second = parse_yaml(text, "alerts/b.yaml")
    assert second.data["spec"] == {"enabled": True, "channels": ["oncall", {"name": "team"}], "empty": {}}
    assert second.file == "alerts/b.yaml"
    assert [second.line_of(["spec", key]) for key in ("enabled", "channels", "empty")] == [3, 4, 7]
    assert second.line_of(["spec", "channels", 1, "name"]) == 6


def test_a_text_that_does_not_parse_is_reported_at_each_file_that_holds_it():
    from phase3ops.spec.documents import parse_yaml

    for name in ("alerts/a.yaml", "alerts/b.yaml"):
        with pytest.raises(SpecError) as refused:
            parse_yaml("kind: [unclosed\n", name)
        assert [problem.file for problem in refused.value.problems] == [name]
