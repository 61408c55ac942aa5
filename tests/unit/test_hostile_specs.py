"""Hostile inputs: spec files, alert filters and `pulumi preview --json` output that once crashed or hung.

Every one must end in the module's own error, naming where the problem is
(file:line, the filter's character, the JSON path), and quickly: never a
traceback, never an expansion that runs for minutes. The fuzz tests at the
end hold the same line for any input at all.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phase3ops.alerts.lints import LintContext, runbook_section_exists
from phase3ops.alerts.specs import load_alert_specs
from phase3ops.drift.changes import MAX_COUNT, UNATTRIBUTED, PreviewParseError, parse_preview
from phase3ops.filters.language import (
    MONITORING,
    FilterSyntaxError,
    label_restrictions,
    logging_filter_problems,
    monitoring_filter_problems,
    parse_logging_filter,
    parse_monitoring_filter,
)
from phase3ops.filters.vocabulary import MAX_NESTING
from phase3ops.plan.stack_config import load_stack_config
from phase3ops.spec.documents import (
    SCHEMA_DIR,
    SpecError,
    load_schema,
    parse_yaml,
    schema_problems,
    schema_registry,
    to_plain,
)
from phase3ops.validate import validate
from phase3ops.warehouse import sql
from tests.support.repo_copy import REPO_ROOT, copy_specs

CORPUS = Path(__file__).resolve().parent.parent / "alerts_corpus"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture
def repo(tmp_path) -> Path:
    return copy_specs(tmp_path)


def only_problem(error: pytest.ExceptionInfo[SpecError]):
    [problem] = error.value.problems
    return problem


# -- YAML the reader refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    "character", ["\x07", "\x00", "\x1b", "\ud800"], ids=["bell", "nul", "escape", "lone-surrogate"]
)
def test_a_control_character_is_invalid_yaml_at_its_line(character):
    with pytest.raises(SpecError) as error:
        parse_yaml(f"a: 1\nb: x{character}y\n", "spec.yaml")
    problem = only_problem(error)
    assert (problem.file, problem.line) == ("spec.yaml", 2)
    assert problem.message.startswith("invalid YAML: character #x")


def line_of(path: Path, fragment: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), start=1) if fragment in line)


def test_validate_reports_a_control_character_in_the_pipeline_spec(repo):
    pipeline = repo / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text().replace("name: nba-phase3-to-phase4", "name: nba-phase3\x07-to-phase4"))
    problems = validate(repo, stacks=[]).problems
    assert [(p.file, p.line) for p in problems if "invalid YAML" in p.message] == [
        (str(pipeline), line_of(pipeline, "\x07"))
    ]


def test_plan_reports_a_control_character_in_a_stack_file(repo):
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("us-west2", "us-west2\x1b[0m", 1))
    with pytest.raises(SpecError) as error:
        load_stack_config(repo, "dev")
    problem = only_problem(error)
    assert problem.file.endswith("Pulumi.dev.yaml") and problem.line == line_of(stack, "\x1b")
    assert "invalid YAML" in problem.message


def alias_bomb(levels: int) -> str:
    """`levels` lines, each a list of 9 aliases of the line above: 9**levels values once expanded, in ~40 bytes a line."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_its_first_alias_before_anything_expands():
    # Nine levels are 387 million values: expanding them would take minutes and gigabytes.
    with pytest.raises(SpecError) as error:
        parse_yaml(alias_bomb(9), "bomb.yaml")
    problem = only_problem(error)
    assert problem.line == 2 and "alias *a0 repeats a mapping or sequence" in problem.message


def test_validate_refuses_an_alias_bomb_in_an_alert_rule(repo):
    (repo / "alerts" / "bomb.yaml").write_text("apiVersion: phase3ops/v1\nkind: AlertRule\n" + alias_bomb(6))
    problems = validate(repo, stacks=[]).problems
    assert [(Path(p.file).name, p.line) for p in problems if "alias" in p.message] == [("bomb.yaml", 4)]


@pytest.mark.parametrize(
    "text, line",
    [
        ("base: &base {team: a}\nrule:\n  <<: *base\n", 3),  # a merge key is an alias of a mapping too
        ("loop: &loop [*loop]\n", 1),  # an alias inside its own anchor: a cycle
    ],
    ids=["merge-key", "cycle"],
)
def test_aliases_of_collections_are_refused(text, line):
    with pytest.raises(SpecError) as error:
        parse_yaml(text, "spec.yaml")
    assert only_problem(error).line == line


def test_an_anchor_defined_twice_is_refused_at_its_second_definition():
    """YAML lets a later anchor shadow an earlier one, so an alias silently takes whichever came last: in a
    spec that is a copy-paste mistake. It was a warning on stderr naming "<file>", never the spec."""
    text = "a: &name phase3\nb: &name phase4\nc: *name\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing on stderr: the problem is the answer
        with pytest.raises(SpecError) as error:
            parse_yaml(text, "spec.yaml")
    problem = only_problem(error)
    assert (problem.file, problem.line) == ("spec.yaml", 2)
    assert "anchor &name is defined again (first on line 1)" in problem.message


def test_aliases_of_a_scalar_stay_allowed():
    assert parse_yaml("a: &name phase3\nb: *name\n", "spec.yaml").data == {"a": "phase3", "b": "phase3"}


@pytest.mark.parametrize(
    "text, line",
    [
        ("a: " + "[" * 1000 + "]" * 1000, 1),
        ("".join(f"{'  ' * depth}k{depth}:\n" for depth in range(200)) + "  " * 200 + "leaf\n", 65),
    ],
    ids=["flow", "block"],
)
def test_nesting_deeper_than_the_bound_is_refused_at_its_line(text, line):
    with pytest.raises(SpecError) as error:
        parse_yaml(text, "deep.yaml")
    problem = only_problem(error)
    assert problem.line == line and "nested more than 64 levels deep" in problem.message


def test_to_plain_never_recurses():
    deep: list = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    plain = to_plain(deep)
    depth = 0
    while plain:
        plain, depth = plain[0], depth + 1
    assert depth == 100_000


@pytest.mark.parametrize(
    "text",
    ["a: 1" + "0" * 5000, "a: !!float abc", "a: 2024-13-45"],
    ids=["integer-of-5000-digits", "tagged-float", "month-13"],
)
def test_a_value_python_cannot_convert_is_invalid_yaml(text):
    with pytest.raises(SpecError) as error:
        parse_yaml(text, "spec.yaml")
    assert only_problem(error).message.startswith("invalid YAML: a value cannot be read")


@pytest.mark.parametrize("text", ["? - b: ", "? - {b: 1}\n: x"], ids=["found-by-hypothesis", "flow"])
def test_a_key_that_holds_a_mapping_inside_a_list_is_invalid_yaml(text):
    """ruamel reads such a key as a list it cannot hash and raised TypeError out of `validate`."""
    with pytest.raises(SpecError) as error:
        parse_yaml(text, "spec.yaml")
    assert "key" in only_problem(error).message


def test_an_oversized_spec_file_is_refused_before_parsing():
    with pytest.raises(SpecError) as error:
        parse_yaml("a: [" + "1, " * 100_000 + "]", "big.yaml")
    assert "a spec file may be at most 256,000" in only_problem(error).message


# -- ECMA patterns ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, value, matches",
    [
        ("^[a-z]+$", "abc", True),
        ("^[a-z]+$", "abc\n", False),
        ("^a$|^b$", "b\n", False),
        (r"^a\$$", "a$", True),
        (r"^a\$$", "a$\n", False),
        ("^[$a]+$", "$a$", True),
        (r"^[\]$]+$", "]$", True),
    ],
)
def test_a_schema_pattern_has_ecma_semantics(pattern, value, matches):
    document = parse_yaml(f"value: {json.dumps(value)}\n", "spec.yaml")
    problems = schema_problems(document, {"properties": {"value": {"type": "string", "pattern": pattern}}})
    assert (problems == []) is matches, problems


def test_validate_refuses_a_name_with_a_trailing_newline(repo):
    channels = repo / "alerts" / "channels.yaml"
    channels.write_text(channels.read_text().replace("team: data-platform", 'team: "data-platform\\n"', 1))
    problems = [p for p in validate(repo, stacks=[]).problems if p.path == "channels[0].team"]
    assert [p.line for p in problems] == [line_of(channels, "data-platform")]
    assert "'data-platform\\n' does not match" in problems[0].message


def test_a_pattern_reached_through_a_ref_has_ecma_semantics_too(repo):
    overrides = repo / "alerts" / "stacks" / "dev.yaml"
    overrides.write_text(overrides.read_text().replace("  orchestrator-errors:", '  "orchestrator-errors\\n":'))
    with pytest.raises(SpecError) as error:
        load_alert_specs(repo / "alerts", "dev")
    assert any(p.path == "rules" and "does not match" in p.message for p in error.value.problems), error.value


def test_sql_identifiers_refuse_a_trailing_newline():
    with pytest.raises(ValueError, match="not a safe identifier"):
        sql.quote("nba_analytics", "games\n")


# -- alert filters ---------------------------------------------------------------------------


def test_a_monitoring_filter_with_an_unclosed_quote_is_a_problem_not_a_traceback():
    assert monitoring_filter_problems('metric.type="run.googleapis.com/request_count') == [
        "at character 13: unbalanced quote: the string '\"run.googleapis.com/requ' is never closed"
    ]


def test_validate_reports_an_unclosed_quote_in_a_monitoring_filter_at_its_line(repo):
    case = CORPUS / "fail" / "filter-parenthesis-never-closed.yaml"
    (repo / "alerts" / case.name).write_text(case.read_text().replace('class="4xx"', 'class="4xx)'))
    [problem] = validate(repo, stacks=[]).problems
    assert (problem.path, problem.line) == ("spec.conditions[0].threshold.filter", 15)
    assert "unbalanced quote" in problem.message


@pytest.mark.parametrize("quote", ["\u201c", "\u201d", "\u2018", "\u2019"])
@pytest.mark.parametrize(
    "problems", [logging_filter_problems, monitoring_filter_problems], ids=["logging", "monitoring"]
)
def test_typographic_quotes_are_named(problems, quote):
    assert problems(f"resource.type={quote}gce_instance{quote}") == [
        f'at character 15: "{quote}" is a typographic quote: strings take straight double quotes (")'
    ]


NESTED = {
    "parentheses": "(" * 1000 + 'metric.type="x"' + ")" * 1000,
    "not-chain": "NOT " * 1000 + 'metric.type="x"',
    "minus-chain": "- " * 1000 + "x",
    "function-calls": "f(" * 1000 + "x" + ")" * 1000,
    "value-lists": "severity=" + "(" * 1000 + "ERROR" + ")" * 1000,
}


@pytest.mark.parametrize("text", NESTED.values(), ids=NESTED.keys())
def test_deep_nesting_is_a_syntax_error_not_a_recursion_error(text):
    with pytest.raises(FilterSyntaxError, match=f"nested more than {MAX_NESTING} levels deep"):
        parse_logging_filter(text)
    assert any("nested more than" in p for p in logging_filter_problems(text))


@pytest.mark.parametrize("text", [NESTED["parentheses"], NESTED["not-chain"]], ids=["parentheses", "not-chain"])
def test_deep_nesting_is_a_problem_in_a_monitoring_filter(text):
    with pytest.raises(FilterSyntaxError, match="nested more than"):
        parse_monitoring_filter(text)
    [problem] = monitoring_filter_problems(text)
    assert "nested more than" in problem


def test_nesting_up_to_the_bound_still_parses():
    parse_monitoring_filter("(" * MAX_NESTING + 'metric.type="x"' + ")" * MAX_NESTING)
    parse_logging_filter("NOT " * MAX_NESTING + "x")


@pytest.mark.parametrize("text", ["", "   \n  "], ids=["empty", "blank"])
def test_an_empty_filter_is_a_problem(text):
    assert logging_filter_problems(text) == monitoring_filter_problems(text) == ["at character 1: the filter is empty"]


def test_an_extremely_long_filter_is_refused_with_its_length():
    text = 'metric.type="' + "a" * 1_000_000 + '"'
    assert monitoring_filter_problems(text) == [
        "at character 20001: the filter is 1,000,014 characters long; at most 20,000 are read (no filter can deploy that long)"
    ]


def test_problems_quote_at_most_a_short_excerpt_of_the_filter():
    text = "x" * 19_000 + "("
    for message in logging_filter_problems(text) + monitoring_filter_problems(text):
        assert len(message) < 1_200


def test_a_regex_python_cannot_read_does_not_crash_the_label_check():
    [restriction] = label_restrictions(
        'resource.labels.service_name = monitoring.regex.full_match("\\\\pL(")', MONITORING
    )
    assert restriction.admits("nba-phase3-analytics-processors")


# -- runbook links ---------------------------------------------------------------------------


@pytest.fixture
def rule_and_context(repo):
    (repo / "outside.md").write_text("# Secret\n")
    rule = load_alert_specs(repo / "alerts").rules[0]

    def linting(runbook: str) -> list:
        spec = {**rule.spec, "documentation": {**rule.spec["documentation"], "runbook": runbook}}
        return runbook_section_exists(dataclasses.replace(rule, spec=spec), LintContext(frozenset(), {}, repo))

    return repo, linting


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlink"])
def test_a_runbook_outside_docs_is_a_problem(rule_and_context, how):
    repo, linting = rule_and_context
    if how == "dot-dot":
        runbook = "docs/../outside.md#secret"
    elif how == "absolute":
        runbook = f"{repo / 'outside.md'}#secret"
    else:
        (repo / "docs" / "link.md").symlink_to(repo / "outside.md")
        runbook = "docs/link.md#secret"
    [problem] = linting(runbook)
    assert problem.path == "spec.documentation.runbook" and "is not inside docs/" in problem.message


def test_a_runbook_inside_docs_is_still_checked(rule_and_context):
    _, linting = rule_and_context
    assert linting("docs/runbook.md#analytics-service-5xx") == []
    assert "has no section" in linting("docs/runbook.md#nowhere")[0].message


# -- stack config ----------------------------------------------------------------------------


def test_a_plaintext_value_for_a_declared_secret_is_a_problem_at_its_line(repo):
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  phase3-orchestration:slackOncallToken: xoxb-not-a-secret-anymore\n")
    with pytest.raises(SpecError) as error:
        load_stack_config(repo, "dev")
    problem = only_problem(error)
    assert problem.file.endswith("Pulumi.dev.yaml") and problem.line == len(stack.read_text().splitlines())
    assert "declared secret in Pulumi.yaml but written here in plain text" in problem.message
    assert "xoxb" not in problem.message  # never repeat the secret


def test_an_encrypted_secret_is_fine(repo):
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + "  phase3-orchestration:slackOncallToken:\n    secure: v1:abc==\n")
    config = load_stack_config(repo, "dev")
    assert "phase3-orchestration:slackOncallToken" in config.secret_keys
    assert config.secrets_not_in_stack_file == ["phase3-orchestration:slackDataQualityToken"]


@pytest.mark.parametrize("text", ["config: [a, b]\n", "just text\n"], ids=["config-a-list", "a-scalar"])
def test_a_stack_file_of_the_wrong_shape_is_a_problem(repo, text):
    (repo / "Pulumi.dev.yaml").write_text(text)
    with pytest.raises(SpecError) as error:
        load_stack_config(repo, "dev")
    assert "must be a mapping" in only_problem(error).message


# -- SQL -------------------------------------------------------------------------------------


def test_qualify_tables_leaves_string_literals_and_comments_alone():
    statement = (
        "SELECT '`raw.games`' AS a, \"it\\\"s `raw.games`\" AS b, '''x ''`raw.games`''' AS c FROM `raw.games`  -- `raw.games`\n"
        "JOIN `raw.teams` USING (id) # `raw.games`\n/* `raw.games` */ WHERE note = 'it\\'s `raw.games`'"
    )
    assert sql.qualify_tables(statement, "proj") == (
        "SELECT '`raw.games`' AS a, \"it\\\"s `raw.games`\" AS b, '''x ''`raw.games`''' AS c FROM `proj.raw.games`  -- `raw.games`\n"
        "JOIN `proj.raw.teams` USING (id) # `raw.games`\n/* `raw.games` */ WHERE note = 'it\\'s `raw.games`'"
    )


# -- pulumi preview --json of the wrong shape ------------------------------------------------

MALFORMED_PREVIEWS = {
    '{"steps": [null]}': "steps[0] must be a JSON object",
    '{"steps": 1}': "steps must be a JSON array",
    '{"steps": [{"urn": 1}]}': "steps[0].urn must be a string",
    '{"steps": [{"op": []}]}': "steps[0].op must be a string",
    '{"steps": [{"op": "update", "oldState": "x", "newState": {}}]}': "steps[0].oldState must be a JSON object",
    '{"steps": [{"op": "update", "oldState": {"inputs": 1}, "newState": {"inputs": {}}}]}': "steps[0].oldState.inputs must be",
    '{"steps": [{"op": "update", "detailedDiff": true, "oldState": {"a": 1}, "newState": {"b": 1}}]}': "steps[0].detailedDiff must be",
    '{"steps": [{"op": "update", "diffReasons": [null], "oldState": {"a": 1}, "newState": {"b": 1}}]}': "steps[0].diffReasons[0] must be",
    '{"steps": [{"op": "refresh", "oldState": {"outputs": 1}, "newState": {"outputs": {}}}]}': "steps[0].oldState.outputs must be",
    '{"changeSummary": 19}': "changeSummary must be a JSON object",
    '{"changeSummary": {"update": null}}': "changeSummary.update must be a whole number",
    '{"changeSummary": {"update": "x"}}': "changeSummary.update must be a whole number",
    '{"resOutputsEvent": null}': "line 1: resOutputsEvent must be a JSON object",
    '{"resOutputsEvent": {"metadata": 1}}': "line 1: resOutputsEvent.metadata must be",
    '{"resOutputsEvent": {"metadata": {"op": "update", "old": "x"}}}': "line 1: resOutputsEvent.metadata.old must be",
    '{"resOutputsEvent": {"metadata": {"op": "update", "diffs": 1}}}': "line 1: resOutputsEvent.metadata.diffs must be",
    '{"summaryEvent": null}': "line 1: summaryEvent must be a JSON object",
    '{"summaryEvent": {"resourceChanges": {"same": []}}}': "line 1: summaryEvent.resourceChanges.same must be",
    '{"summaryEvent": {}}\n{"diagnosticEvent": {"severity": "error", "message": 5}}': "line 2: diagnosticEvent.message must be",
    '5\n{"summaryEvent": {}}': "line 1: an engine event must be a JSON object",
    "[" * 100_000 + "]" * 100_000: "nested too deeply",
    '{"steps": ' + "[" * 500 + "]" * 500 + "}": "nested more than 100 levels deep",
    '{"changeSummary": {"update": 1' + "0" * 5000 + "}}": "cannot be read",
}


@pytest.mark.parametrize(
    "text, message", MALFORMED_PREVIEWS.items(), ids=lambda v: v[:50] if isinstance(v, str) else None
)
def test_a_malformed_preview_is_refused_naming_the_json_path(text, message):
    with pytest.raises(PreviewParseError, match=re.escape(message)):
        parse_preview(text)


def test_a_huge_summary_count_is_one_change():
    result = parse_preview(json.dumps({"steps": [], "changeSummary": {"update": MAX_COUNT - 1}}))
    assert [(c.op, c.kind, c.count) for c in result.changes] == [("update", UNATTRIBUTED, MAX_COUNT - 1)]


@pytest.mark.parametrize("count", [3_000_000, MAX_COUNT + 1, -1, 1.5, True, "3"])
def test_a_summary_count_must_be_a_whole_number_within_bounds(count):
    with pytest.raises(PreviewParseError, match=r"changeSummary\.update must be a whole number from 0 to 1,000,000"):
        parse_preview(json.dumps({"changeSummary": {"update": count}}))


# -- fuzzing: any input at all ends in the module's own error --------------------------------

YAML_PIECES = st.sampled_from(
    [
        "a",
        "b: ",
        "1",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        ": ",
        "&x ",
        "*x",
        "<<: ",
        "? ",
        "!!str ",
        "!!map ",
        "'",
        '"',
        "#",
        "|",
        ">-",
        "\n",
        "  ",
        "\t",
        "---",
        "...",
        "\x07",
        "\\",
        "%YAML 1.2\n",
        "\ufeff",
        "ü",
    ]
)


def assert_parses_or_refuses(text: str) -> None:
    try:
        document = parse_yaml(text, "fuzz.yaml")
    except SpecError as error:
        assert error.problems and all(p.file == "fuzz.yaml" for p in error.problems)
        return
    document.data  # noqa: B018 - reading the data must not fail either
    schema_problems(document, load_schema(SCHEMA_DIR / "pipeline.schema.json"))


@FUZZ
@given(st.text())
def test_parse_yaml_on_any_text(text):
    assert_parses_or_refuses(text)


@FUZZ
@given(st.lists(YAML_PIECES, max_size=40).map("".join))
def test_parse_yaml_on_yaml_shaped_text(text):
    assert_parses_or_refuses(text)


FILTER_PIECES = st.sampled_from(
    [
        "metric.type",
        "resource.labels.x",
        "severity",
        "=",
        "!=",
        "<",
        ">=",
        ":",
        "=~",
        "!~",
        "(",
        ")",
        ",",
        " ",
        "AND",
        "OR",
        "NOT",
        "-",
        "--",
        "\n",
        '"',
        '"a"',
        '"\\',
        "x",
        "1",
        "-1",
        ".",
        "one_of(",
        "monitoring.regex.full_match(",
        "log_id(",
        "\u201c",
        "\u2019",
        "~",
        "!",
        "\\",
    ]
)


def assert_filter_parses_or_refuses(text: str) -> None:
    for parse in (parse_logging_filter, parse_monitoring_filter):
        try:
            parse(text)
        except FilterSyntaxError as error:
            assert 0 <= error.offset <= max(len(text), 20_000)
    for problems in (logging_filter_problems, monitoring_filter_problems):
        assert all(isinstance(p, str) for p in problems(text))
    for language in ("Logging", MONITORING):
        for restriction in label_restrictions(text, language):
            restriction.admits("nba-phase3-analytics-processors")


@FUZZ
@given(st.text())
def test_the_filter_parsers_on_any_text(text):
    assert_filter_parses_or_refuses(text)


@FUZZ
@given(st.lists(FILTER_PIECES, max_size=60).map(" ".join) | st.lists(FILTER_PIECES, max_size=60).map("".join))
def test_the_filter_parsers_on_text_of_the_grammars_tokens(text):
    assert_filter_parses_or_refuses(text)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def shaped(keys: list[str], values: st.SearchStrategy) -> st.SearchStrategy:
    """Objects with some of `keys`, so the fuzzing reaches the fields the parser reads."""
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))


OPS = st.sampled_from(["same", "create", "update", "delete", "replace", "refresh", "read", "import"])
STATES = shaped(["type", "inputs", "outputs"], JSON_VALUES | shaped(["a", "b"], JSON_VALUES)) | JSON_VALUES
STEPS = shaped(
    ["urn", "op", "type", "oldState", "newState", "detailedDiff", "diffReasons", "replaceReasons"], OPS | STATES
)
COUNTS = shaped(["same", "update", "delete"], st.integers(-5, 5) | JSON_VALUES) | JSON_VALUES
DIGESTS = shaped(["steps", "changeSummary", "diagnostics"], st.lists(STEPS | JSON_VALUES, max_size=4) | COUNTS)
METADATA = shaped(["op", "urn", "type", "old", "new", "detailedDiff", "diffs"], OPS | STATES)
EVENTS = shaped(
    ["resOutputsEvent", "summaryEvent", "diagnosticEvent", "resourcePreEvent"],
    shaped(["metadata", "resourceChanges", "severity", "message"], METADATA | COUNTS | JSON_VALUES) | JSON_VALUES,
)


def assert_preview_parses_or_refuses(text: str) -> None:
    try:
        result = parse_preview(text)
    except PreviewParseError:
        return
    assert all(isinstance(c.op, str) and c.count >= 1 for c in result.changes)


@FUZZ
@given(JSON_VALUES)
def test_parse_preview_on_any_json(value):
    assert_preview_parses_or_refuses(json.dumps(value))


@FUZZ
@given(DIGESTS | st.lists(EVENTS | JSON_VALUES, min_size=1, max_size=4))
def test_parse_preview_on_json_shaped_like_a_preview(value):
    text = "\n".join(json.dumps(e) for e in value) if isinstance(value, list) else json.dumps(value)
    assert_preview_parses_or_refuses(text)


ALERT_SCHEMAS = REPO_ROOT / "alerts" / "schema"
DASHBOARD_SCHEMAS = REPO_ROOT / "dashboards" / "schema"
SLO_SCHEMAS = REPO_ROOT / "slos" / "schema"
SCHEMAS = [
    (SCHEMA_DIR / "pipeline.schema.json", None),
    (SCHEMA_DIR / "drift-allowlist.schema.json", None),
    *((path, schema_registry(ALERT_SCHEMAS)) for path in sorted(ALERT_SCHEMAS.glob("*.schema.json"))),
    *((path, schema_registry(DASHBOARD_SCHEMAS)) for path in sorted(DASHBOARD_SCHEMAS.glob("*.schema.json"))),
    *((path, schema_registry(SLO_SCHEMAS)) for path in sorted(SLO_SCHEMAS.glob("*.schema.json"))),
]
SPEC_SHAPED = shaped(
    ["apiVersion", "kind", "metadata", "spec", "channels", "rules", "stack", "slos"],
    JSON_VALUES | shaped(["name", "labels"], JSON_VALUES),
)


@FUZZ
@given(JSON_VALUES | SPEC_SHAPED)
def test_schema_validation_on_any_document(value):
    try:
        document = parse_yaml(json.dumps(value), "fuzz.yaml")
    except SpecError:
        return
    for path, registry in SCHEMAS:
        for problem in schema_problems(document, load_schema(path), registry):
            assert problem.file == "fuzz.yaml" and len(problem.message) < 2_000
