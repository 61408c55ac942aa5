"""The pipeline spec (`pipeline.yaml`): processors, topics, mode rules and data gates.

Loaded once per process, validated against `schemas/pipeline.schema.json`
plus the semantic rules a JSON Schema cannot state (unique names, a primary
key that contains the partition column, one mode per kind of date, mode
rules that name real processors and can be met, a time zone that exists,
gates over real tables and columns with conditions that parse).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from phase3ops.spec.documents import (
    SCHEMA_DIR,
    PathPart,
    SpecDocument,
    SpecError,
    SpecProblem,
    load_schema,
    read_yaml,
    schema_comment_problem,
    schema_problems,
)
from phase3ops.spec.sql_conditions import condition_problem

PIPELINE_SCHEMA = SCHEMA_DIR / "pipeline.schema.json"
PIPELINE_FILE_NAME = "pipeline.yaml"
PIPELINE_ENV = "PHASE3OPS_PIPELINE"
PARTITION_COLUMN = "game_date"
FRESHNESS_COLUMN = "processed_at"  # Phase 3 rows: when the processor computed them
SCRAPED_COLUMN = "scraped_at"  # raw rows: when Phase 2 scraped them


@dataclass(frozen=True)
class TableSpec:
    """A warehouse table: `dataset.name`, partitioned by game_date, with a primary key."""

    dataset: str
    name: str
    primary_key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (name, BigQuery type), in table order

    @property
    def freshness_column(self) -> str:
        """Which copy of a row is the newest: processed rows by processed_at, raw scrapes by scraped_at."""
        return FRESHNESS_COLUMN if FRESHNESS_COLUMN in self.column_names else SCRAPED_COLUMN

    @property
    def qualified_name(self) -> str:
        return f"{self.dataset}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


@dataclass(frozen=True)
class Processor:
    name: str
    output_table: str
    primary_key: tuple[str, ...]
    class_name: str
    entities: str  # players | teams: where its entities_changed go in the Phase 4 trigger
    table: TableSpec
    late_data: str = (
        "follow_up"  # follow_up | ignore: what a run that changes the table after the trigger sends Phase 4
    )
    after: tuple[str, ...] = ()  # processors whose tables it reads for the same date: it waits for their completions


@dataclass(frozen=True)
class LockSettings:
    collection: str
    lease_seconds: float
    max_wait_seconds: float
    retention_hours: float


PUSH_ACK_DEADLINE_SECONDS = 600  # Pub/Sub's maximum, and its push request timeout
# Eventarc retries a failed delivery to an event-driven function with a delay "up to a maximum of
# 600 seconds" (https://cloud.google.com/eventarc/docs/retry-events).
EVENTARC_MAX_RETRY_BACKOFF_SECONDS = 600
PUSH_TIMEOUT_MARGIN_SECONDS = 30


@dataclass(frozen=True)
class ShrinkGuard:
    """What a run may do to a date that already has rows: remove at most this share of them."""

    max_removed_fraction: float = 0.2
    action: str = "hold"  # refuse | hold | alert | off


@dataclass(frozen=True)
class AnalyticsSettings:
    service_name: str
    dataset: str
    raw_dataset: str
    lock: LockSettings
    write_fences_table: str
    request_timeout_seconds: int = 540
    shrink_guard: ShrinkGuard = ShrinkGuard()

    @property
    def write_fences(self) -> TableSpec:
        """Per (Phase 3 table, game date): the newest lock token that wrote it."""
        return TableSpec(
            dataset=self.dataset,
            name=self.write_fences_table,
            primary_key=("table_name", PARTITION_COLUMN),
            columns=(
                ("table_name", "STRING"),
                (PARTITION_COLUMN, "DATE"),
                ("token", "INT64"),
                ("owner", "STRING"),
                ("execution_id", "STRING"),
                ("written_at", "TIMESTAMP"),
            ),
        )


@dataclass(frozen=True)
class ModeRule:
    """When a game date of one kind (past, today, tomorrow) is ready for Phase 4."""

    name: str
    applies_to: str  # past | today | tomorrow
    critical: tuple[str, ...]
    optional: tuple[str, ...] = ()
    expected_count: int | None = None  # None: all of critical + optional
    min_fraction: float | None = None
    deadline_day: int = 1  # relative to the game date
    deadline_time: dt.time = dt.time(10, 0)
    on_deadline: str = "hold"  # hold | trigger_degraded: a date a gate still holds at the deadline

    @property
    def expected(self) -> tuple[str, ...]:
        return (*self.critical, *self.optional)

    @property
    def all_complete_at(self) -> int:
        return self.expected_count if self.expected_count is not None else len(self.expected)

    def majority_met(self, done: int) -> bool:
        # Exact arithmetic: 3/5 must meet 0.6 (in floats, 0.6 * 5 is 3.0000000000000004).
        return (
            self.min_fraction is not None
            and bool(self.expected)
            and Fraction(done, len(self.expected)) >= Fraction(str(self.min_fraction))
        )


@dataclass(frozen=True)
class Topics:
    phase3_trigger: str
    completion: str
    phase4_trigger: str


@dataclass(frozen=True)
class Collections:
    completions: str
    triggers: str
    receipts: str
    rejected: str
    holds: str
    followups: str
    overrides: str = "phase3_overrides"
    repairs: str = "phase3_repairs"


@dataclass(frozen=True)
class OrchestratorSettings:
    function_name: str
    receipts_function_name: str
    collections: Collections
    claim_lease_seconds: int
    publish_timeout_seconds: float
    receipt_grace_seconds: float = 900


PER_TABLE, PER_DATE = "per_table", "per_date"


@dataclass(frozen=True)
class Phase4TriggerSettings:
    form: str  # per_table | per_date
    trigger_source: str
    triggered_by: str
    parent_processor: str


@dataclass(frozen=True)
class Phase4Consumer:
    """The running Phase 4 service's subscription on the Phase 4 topic: deployed by its owners, watched here."""

    subscription: str
    max_unacked_age_minutes: int = 30


@dataclass(frozen=True)
class ExpectedWork:
    """The expected-work ledger: which game dates owe their processors, and how far repairs go."""

    since: dt.date
    max_repairs_per_run: int = 20
    max_repairs_per_date_processor: int = 3
    repair_lead_minutes: int = 60


@dataclass(frozen=True)
class ScraperTiming:
    table: str
    first_run_by: dt.time
    pending_claim_minutes: int


@dataclass(frozen=True)
class ScheduledCheck:
    name: str
    args: tuple[str, ...]
    schedule: str


ROWS_EXIST, GAME_COVERAGE, COLUMN_COVERAGE, NULL_RATE, RECORD_COUNT = (
    "rows_exist",
    "game_coverage",
    "column_coverage",
    "null_rate",
    "record_count",
)
BLOCK, ALERT, OFF = "block", "alert", "off"


@dataclass(frozen=True)
class Gate:
    """A check of a ready date's data in the warehouse before Phase 4 is triggered."""

    name: str
    kind: str  # rows_exist | game_coverage | column_coverage | null_rate | record_count
    action: str  # block | alert | off
    on_error: str = "closed"  # open | closed: when the date's gate query fails
    modes: tuple[str, ...] = ()  # empty: every mode
    tables: tuple[str, ...] = ()  # rows_exist (empty: the mode's), game_coverage
    table: str | None = None  # column_coverage, null_rate
    valid: str | None = None  # column_coverage
    population: str | None = None  # column_coverage
    columns: tuple[str, ...] = ()  # null_rate
    rows_per_game: tuple[tuple[str, int], ...] = ()  # record_count
    min: float | None = None  # the figure must be at least this (coverage, record_count)
    max: float | None = None  # the figure must be at most this (null_rate)
    message_field: str | None = None  # the figure, as a percentage, in every Phase 4 message

    def applies_to(self, mode: str) -> bool:
        return self.action != OFF and (not self.modes or mode in self.modes)


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    source: str
    timezone: str
    topics: Topics
    orchestrator: OrchestratorSettings
    phase4_trigger: Phase4TriggerSettings
    analytics: AnalyticsSettings
    scheduled_checks: tuple[ScheduledCheck, ...]
    scraper_timing: ScraperTiming
    game_schedule_table: str
    raw_tables: tuple[TableSpec, ...]
    processors: tuple[Processor, ...]
    modes: tuple[ModeRule, ...]
    gates: tuple[Gate, ...] = ()
    phase4_consumer: Phase4Consumer | None = None
    expected_work: ExpectedWork | None = None
    _aliases: dict[str, Processor] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        aliases = {
            _alias_key(alias): processor
            for processor in self.processors
            for alias in (processor.name, processor.output_table, processor.class_name)
        }
        object.__setattr__(self, "_aliases", aliases)

    @property
    def processor_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.processors)

    def processor(self, name: str) -> Processor:
        for processor in self.processors:
            if processor.name == name:
                return processor
        raise KeyError(name)

    @property
    def deployed_workloads(self) -> dict[str, str]:
        """Every function, service and job the infra deploys, by name -> kind."""
        workloads = {
            self.orchestrator.function_name: "function",
            self.orchestrator.receipts_function_name: "function",
            self.analytics.service_name: "service",
        }
        workloads.update({check.name: "job" for check in self.scheduled_checks})
        return workloads

    @property
    def deployed_topics(self) -> frozenset[str]:
        """Every Pub/Sub topic the infra deploys: the pipeline's three and the analytics push's dead-letter topic."""
        return frozenset(
            {
                self.topics.phase3_trigger,
                self.topics.completion,
                self.topics.phase4_trigger,
                f"{self.topics.phase3_trigger}-dead-letter",
            }
        )

    @property
    def deployed_subscriptions(self) -> frozenset[str]:
        """The Pub/Sub subscriptions the infra names: the analytics push and its dead letters.
        (The functions' Eventarc triggers create subscriptions whose names Eventarc picks.)"""
        return frozenset({f"{self.analytics.service_name}-push", f"{self.topics.phase3_trigger}-dead-letter-sub"})

    def mode(self, name: str) -> ModeRule:
        for mode in self.modes:
            if mode.name == name:
                return mode
        raise KeyError(name)

    def raw_table(self, name: str) -> TableSpec:
        for table in self.raw_tables:
            if table.name == name:
                return table
        raise KeyError(name)

    def resolve_processor(self, reported_name: str) -> Processor | None:
        """Map any name a processor reports itself by to the processor.

        Accepted: the processor name, its output table (optionally qualified
        as `dataset.table` or `project.dataset.table`), its class name, and the
        class name with an `Async` prefix (what the reference's async
        processors publish) or an `...AsyncProcessor` suffix, case-insensitively.
        """
        return self._aliases.get(_alias_key(reported_name))


def _alias_key(name: str) -> str:
    text = name.strip().rsplit(".", 1)[-1]
    text = re.sub(r"AsyncProcessor$", "Processor", text)
    text = re.sub(r"^Async(?=[A-Z])", "", text)
    return re.sub(r"[^a-z0-9]", "", text.lower())


def locate_pipeline_spec(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The spec to use: an explicit path, then $PHASE3OPS_PIPELINE, then the
    nearest `pipeline.yaml` in the working directory or one of its parents."""
    for given, source in ((explicit, "--pipeline"), (os.environ.get(PIPELINE_ENV), f"${PIPELINE_ENV}")):
        if not given:
            continue
        path = Path(given)
        if path.is_dir():
            if (path / PIPELINE_FILE_NAME).is_file():
                return path / PIPELINE_FILE_NAME
            raise SpecError(
                [SpecProblem(str(path), None, "", f"{source} names a directory without a {PIPELINE_FILE_NAME}")]
            )
        if not path.is_file():
            raise SpecError([SpecProblem(str(path), None, "", f"{source} names a file that does not exist")])
        return path
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / PIPELINE_FILE_NAME
        if candidate.is_file():
            return candidate
    raise SpecError(
        [
            SpecProblem(
                PIPELINE_FILE_NAME,
                None,
                "",
                f"no {PIPELINE_FILE_NAME} in {here} or its parents; pass --pipeline or set ${PIPELINE_ENV}",
            )
        ]
    )


def load_pipeline_spec(path: str | os.PathLike[str] | None = None) -> PipelineSpec:
    document = read_yaml(locate_pipeline_spec(path))
    problems = list(schema_problems(document, load_schema(PIPELINE_SCHEMA)))
    comment = schema_comment_problem(document)
    if comment:
        problems.append(comment)
    if problems:
        raise SpecError(problems)
    problems = semantic_problems(document)
    if problems:
        raise SpecError(problems)
    return _build(document)


def semantic_problems(document: SpecDocument) -> list[SpecProblem]:
    spec = document.data["spec"]
    problems: list[SpecProblem] = []

    def duplicates(items: list[dict[str, Any]], field: str, section: str) -> None:
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            value = item[field]
            if value in seen:
                problems.append(
                    document.problem(
                        ["spec", section, index, field],
                        f"{value!r} is already used by {section}[{seen[value]}]",
                    )
                )
            seen.setdefault(value, index)

    duplicates(spec["raw_tables"], "name", "raw_tables")
    for index, table in enumerate(spec["raw_tables"]):
        if table["columns"].get(SCRAPED_COLUMN) != "TIMESTAMP":
            problems.append(
                document.problem(
                    ["spec", "raw_tables", index, "columns"],
                    f"must have {SCRAPED_COLUMN}: TIMESTAMP; processors read the newest scrape of each row",
                )
            )
    for section in ("raw_tables", "processors"):
        for index, table in enumerate(spec[section]):
            problems.extend(_table_problems(document, section, index, table))

    processors = spec["processors"]
    problems.extend(_dependency_problems(document, processors))
    duplicates(processors, "name", "processors")
    duplicates(processors, "output_table", "processors")
    duplicates(processors, "class_name", "processors")
    for index, processor in enumerate(processors):
        if processor["columns"].get(FRESHNESS_COLUMN) != "TIMESTAMP":
            problems.append(
                document.problem(
                    ["spec", "processors", index, "columns"],
                    f"must have {FRESHNESS_COLUMN}: TIMESTAMP; duplicates keep the newest row by it",
                )
            )

    modes = spec["modes"]
    duplicates(modes, "name", "modes")
    duplicates(modes, "applies_to", "modes")
    known = [p["name"] for p in processors]
    for index, mode in enumerate(modes):
        problems.extend(_mode_problems(document, index, mode, known))

    try:
        zoneinfo.ZoneInfo(spec["timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(document.problem(["spec", "timezone"], f"unknown time zone {spec['timezone']!r}"))

    raw_names = [t["name"] for t in spec["raw_tables"]]
    for section in ("scraper_timing", "game_schedule"):
        if spec[section]["table"] not in raw_names:
            problems.append(
                document.problem(
                    ["spec", section, "table"],
                    f"{spec[section]['table']!r} is not a raw table ({', '.join(raw_names)})",
                )
            )
    analytics = spec["analytics"]
    output_tables = [p["output_table"] for p in processors]
    if analytics["write_fences_table"] in output_tables:
        problems.append(
            document.problem(["spec", "analytics", "write_fences_table"], "must not be a processor's output table")
        )
    timeout = analytics.get("request_timeout_seconds", 540)
    if timeout + PUSH_TIMEOUT_MARGIN_SECONDS > PUSH_ACK_DEADLINE_SECONDS:
        problems.append(
            document.problem(
                ["spec", "analytics", "request_timeout_seconds"],
                f"{timeout} s leaves less than {PUSH_TIMEOUT_MARGIN_SECONDS} s before the push ack deadline "
                f"({PUSH_ACK_DEADLINE_SECONDS} s): a run would be redelivered while it still runs",
            )
        )
    max_wait = analytics["lock"].get("max_wait_seconds", 120)
    if max_wait >= timeout:
        problems.append(
            document.problem(
                ["spec", "analytics", "lock", "max_wait_seconds"],
                f"{max_wait} s must be shorter than request_timeout_seconds ({timeout} s): the wait alone would outlive the request",
            )
        )

    problems.extend(_gate_problems(document, spec.get("gates", []), processors, [m["name"] for m in modes]))

    orchestrator = spec["orchestrator"]
    lease = orchestrator.get("claim_lease_seconds", 60)
    publish_timeout = orchestrator.get("publish_timeout_seconds", 20)
    if lease < 2 * publish_timeout:
        problems.append(
            document.problem(
                ["spec", "orchestrator", "claim_lease_seconds"],
                f"must be at least twice publish_timeout_seconds ({publish_timeout}); otherwise a publish "
                "still in flight can be taken over and sent twice",
            )
        )
    grace = orchestrator.get("receipt_grace_seconds", 900)
    if grace < publish_timeout:
        problems.append(
            document.problem(
                ["spec", "orchestrator", "receipt_grace_seconds"],
                f"must be at least publish_timeout_seconds ({publish_timeout}): a publish still in flight when the "
                "lease ends can land that much later, and recovery must see its receipt rather than send it again",
            )
        )
    if orchestrator["receipts_function_name"] == orchestrator["function_name"]:
        problems.append(
            document.problem(
                ["spec", "orchestrator", "receipts_function_name"],
                "must differ from function_name: the receipts are recorded by a function of their own",
            )
        )
    return problems


def deployed_receipt_grace_problems(spec: PipelineSpec, receipts_timeout_seconds: int) -> list[SpecProblem]:
    """A deployed receipts function is retried by Eventarc: its receipt can come as late as its
    timeout plus the longest retry backoff after a failed delivery. A grace shorter than that
    gives up on a receipt that is still coming, and the message goes out twice."""
    horizon = receipts_timeout_seconds + EVENTARC_MAX_RETRY_BACKOFF_SECONDS
    grace = spec.orchestrator.receipt_grace_seconds
    if grace >= horizon:
        return []
    document = read_yaml(Path(spec.source))
    return [
        document.problem(
            ["spec", "orchestrator", "receipt_grace_seconds"],
            f"{grace:g} s is shorter than the deployed receipts function's retry horizon: its timeout "
            f"(functionTimeoutSeconds, {receipts_timeout_seconds} s) plus Eventarc's longest retry backoff "
            f"({EVENTARC_MAX_RETRY_BACKOFF_SECONDS} s) = {horizon} s",
        )
    ]


def _dependency_problems(document: SpecDocument, processors: list[dict[str, Any]]) -> list[SpecProblem]:
    """`after:` names known processors, never the processor itself, and never closes a cycle
    (a cycle would hold its processors for ever)."""
    problems: list[SpecProblem] = []
    names = [p["name"] for p in processors]
    graph = {p["name"]: list(p.get("after", ())) for p in processors}
    for index, processor in enumerate(processors):
        for position, name in enumerate(processor.get("after", ())):
            where: list[PathPart] = ["spec", "processors", index, "after", position]
            if name not in names:
                problems.append(document.problem(where, f"{name!r} is not a processor of this pipeline"))
            elif name == processor["name"]:
                problems.append(document.problem(where, "a processor cannot wait for itself"))
    for index, processor in enumerate(processors):
        path = _cycle_from(processor["name"], graph)
        if path and processor["name"] == min(path):  # report each cycle once
            problems.append(
                document.problem(
                    ["spec", "processors", index, "after"], "waits in a cycle: " + " -> ".join(path + [path[0]])
                )
            )
    return problems


def _cycle_from(start: str, graph: dict[str, list[str]]) -> list[str]:
    """A cycle through `start` in the `after:` graph, as the list of its processors, or []."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for following in graph.get(node, ()):
            if following == start and len(path) > 1:
                return path
            if following not in seen and following in graph and following != node:
                seen.add(following)
                stack.append((following, path + [following]))
    return []


def _mode_problems(document: SpecDocument, index: int, mode: dict[str, Any], known: list[str]) -> list[SpecProblem]:
    """A rule that names an unknown processor, names one twice, or can never be met."""
    problems = []
    seen: dict[str, str] = {}
    for section in ("critical", "optional"):
        for position, name in enumerate(mode.get(section, [])):
            where: list[PathPart] = ["spec", "modes", index, section, position]
            if name not in known:
                problems.append(document.problem(where, f"{name!r} is not a processor ({', '.join(known)})"))
            elif name in seen:
                problems.append(document.problem(where, f"{name!r} is already {seen[name]} in this mode"))
            seen.setdefault(name, section)
    expected = len(mode.get("critical", [])) + len(mode.get("optional", []))
    if expected == 0:
        problems.append(document.problem(["spec", "modes", index], "names no processor: the rule can never be met"))
    elif mode.get("expected_count", expected) > expected:
        problems.append(
            document.problem(
                ["spec", "modes", index, "expected_count"],
                f"{mode['expected_count']} can never be met: critical + optional name only {expected} processors",
            )
        )
    return problems


# Fields each gate kind reads; any other kind-specific field is a mistake worth saying so.
_GATE_FIELDS = {
    ROWS_EXIST: {"tables"},
    GAME_COVERAGE: {"tables", "min"},
    COLUMN_COVERAGE: {"table", "valid", "population", "min"},
    NULL_RATE: {"table", "columns", "max"},
    RECORD_COUNT: {"rows_per_game", "min"},
}
_MESSAGE_FIELDS_TAKEN = {
    "source_table",
    "analysis_date",
    "game_date",
    "success",
    "correlation_id",
    "trigger_source",
    "triggered_by",
    "timestamp",
    "entities_changed",
    "is_incremental",
    "mode",
    "trigger_reason",
    "parent_execution_id",
    "parent_processor",
    "trigger_id",
    "data_freshness_verified",
    "degraded",
    "gates",
    "failing_gates",
    "is_follow_up",
    "follows_trigger_id",
    "completed_processors",
    "completed_tables",
    "executions",
}


def _gate_problems(
    document: SpecDocument, gates: list[dict[str, Any]], processors: list[dict[str, Any]], modes: list[str]
) -> list[SpecProblem]:
    """Gates over tables that exist, columns they have, conditions that parse, modes that exist."""
    problems: list[SpecProblem] = []
    tables = {p["output_table"]: list(p["columns"]) for p in processors}
    seen: dict[str, int] = {}
    fields_seen: dict[str, int] = {}
    for index, gate in enumerate(gates):
        where: list[PathPart] = ["spec", "gates", index]
        if gate["name"] in seen:
            problems.append(
                document.problem([*where, "name"], f"{gate['name']!r} is already used by gates[{seen[gate['name']]}]")
            )
        seen.setdefault(gate["name"], index)
        for field_name in sorted(set(gate) & set().union(*_GATE_FIELDS.values()) - _GATE_FIELDS[gate["kind"]]):
            problems.append(document.problem([*where, field_name], f"does not apply to a {gate['kind']} gate"))
        for position, mode in enumerate(gate.get("modes", [])):
            if mode not in modes:
                problems.append(
                    document.problem([*where, "modes", position], f"{mode!r} is not a mode ({', '.join(modes)})")
                )
        named_tables: list[tuple[list[PathPart], str]] = [
            (["tables", i], t) for i, t in enumerate(gate.get("tables", []))
        ]
        named_tables += [(["rows_per_game", t], t) for t in gate.get("rows_per_game", {})]
        if "table" in gate:
            named_tables.append((["table"], gate["table"]))
        for path, table in named_tables:
            if table not in tables:
                problems.append(
                    document.problem(
                        [*where, *path], f"{table!r} is not a processor's output table ({', '.join(tables)})"
                    )
                )
        columns = tables.get(gate.get("table", ""), [])
        if columns:
            for position, column in enumerate(gate.get("columns", [])):
                if column not in columns:
                    problems.append(
                        document.problem(
                            [*where, "columns", position], f"{column!r} is not a column of {gate['table']}"
                        )
                    )
            for key in ("valid", "population"):
                if key in gate and (why := condition_problem(gate[key], columns)):
                    problems.append(document.problem([*where, key], why))
        if "message_field" in gate:
            field_name = gate["message_field"]
            if field_name in _MESSAGE_FIELDS_TAKEN:
                problems.append(
                    document.problem(
                        [*where, "message_field"], f"{field_name!r} is a field the Phase 4 message already carries"
                    )
                )
            elif field_name in fields_seen:
                problems.append(
                    document.problem(
                        [*where, "message_field"], f"{field_name!r} is already gates[{fields_seen[field_name]}]'s"
                    )
                )
            fields_seen.setdefault(field_name, index)
    return problems


def _table_problems(document: SpecDocument, section: str, index: int, table: dict[str, Any]) -> list[SpecProblem]:
    problems = []
    columns = table["columns"]
    if PARTITION_COLUMN not in table["primary_key"]:
        problems.append(
            document.problem(
                ["spec", section, index, "primary_key"],
                f"must include {PARTITION_COLUMN!r}: writes and duplicate checks are per game date",
            )
        )
    if columns.get(PARTITION_COLUMN) != "DATE":
        problems.append(
            document.problem(
                ["spec", section, index, "columns"], f"must have {PARTITION_COLUMN}: DATE (the partition column)"
            )
        )
    for key in table["primary_key"]:
        if key not in columns:
            problems.append(
                document.problem(
                    ["spec", section, index, "primary_key"], f"primary key column {key!r} is not in columns"
                )
            )
    return problems


def _table(dataset: str, name: str, data: dict[str, Any]) -> TableSpec:
    return TableSpec(
        dataset=dataset,
        name=name,
        primary_key=tuple(data["primary_key"]),
        columns=tuple(data["columns"].items()),
    )


def _build(document: SpecDocument) -> PipelineSpec:
    data = document.data
    spec = data["spec"]
    orchestrator = spec["orchestrator"]
    analytics = spec["analytics"]
    lock = analytics["lock"]
    trigger = spec["phase4_trigger"]
    return PipelineSpec(
        name=data["metadata"]["name"],
        source=document.file,
        timezone=spec["timezone"],
        topics=Topics(**spec["topics"]),
        orchestrator=OrchestratorSettings(
            function_name=orchestrator["function_name"],
            receipts_function_name=orchestrator["receipts_function_name"],
            collections=Collections(**orchestrator["collections"]),
            claim_lease_seconds=orchestrator.get("claim_lease_seconds", 60),
            publish_timeout_seconds=orchestrator.get("publish_timeout_seconds", 20),
            receipt_grace_seconds=orchestrator.get("receipt_grace_seconds", 900),
        ),
        phase4_trigger=Phase4TriggerSettings(
            form=trigger["form"],
            trigger_source=trigger.get("trigger_source", "orchestrator"),
            triggered_by=trigger.get("triggered_by", "phase3_to_phase4_orchestrator"),
            parent_processor=trigger.get("parent_processor", "Phase3Orchestrator"),
        ),
        analytics=AnalyticsSettings(
            service_name=analytics["service_name"],
            dataset=analytics["dataset"],
            raw_dataset=analytics["raw_dataset"],
            lock=LockSettings(
                collection=lock["collection"],
                lease_seconds=lock.get("lease_seconds", 60),
                max_wait_seconds=lock.get("max_wait_seconds", 120),
                retention_hours=lock.get("retention_hours", 24),
            ),
            write_fences_table=analytics["write_fences_table"],
            request_timeout_seconds=analytics.get("request_timeout_seconds", 540),
            shrink_guard=ShrinkGuard(**analytics.get("shrink_guard", {})),
        ),
        scheduled_checks=tuple(
            ScheduledCheck(c["name"], tuple(c["args"]), c["schedule"]) for c in spec["scheduled_checks"]
        ),
        scraper_timing=ScraperTiming(
            table=spec["scraper_timing"]["table"],
            first_run_by=dt.time.fromisoformat(spec["scraper_timing"]["first_run_by"]),
            pending_claim_minutes=spec["scraper_timing"].get("pending_claim_minutes", 30),
        ),
        game_schedule_table=spec["game_schedule"]["table"],
        raw_tables=tuple(_table(analytics["raw_dataset"], t["name"], t) for t in spec["raw_tables"]),
        processors=tuple(
            Processor(
                name=p["name"],
                output_table=p["output_table"],
                primary_key=tuple(p["primary_key"]),
                class_name=p["class_name"],
                entities=p["entities"],
                table=_table(analytics["dataset"], p["output_table"], p),
                late_data=p.get("late_data", "follow_up"),
                after=tuple(p.get("after", ())),
            )
            for p in spec["processors"]
        ),
        modes=tuple(
            ModeRule(
                name=m["name"],
                applies_to=m["applies_to"],
                critical=tuple(m["critical"]),
                optional=tuple(m.get("optional", ())),
                expected_count=m.get("expected_count"),
                min_fraction=m.get("min_fraction"),
                deadline_day=m["deadline"]["day"],
                deadline_time=dt.time.fromisoformat(m["deadline"]["time"]),
                on_deadline=m.get("on_deadline", "hold"),
            )
            for m in spec["modes"]
        ),
        gates=tuple(_gate(g) for g in spec.get("gates", [])),
        phase4_consumer=Phase4Consumer(**spec["phase4_consumer"]) if "phase4_consumer" in spec else None,
        expected_work=_expected_work(spec["expected_work"]) if "expected_work" in spec else None,
    )


def _expected_work(data: dict[str, Any]) -> ExpectedWork:
    return ExpectedWork(
        since=dt.date.fromisoformat(data["since"]),
        max_repairs_per_run=data.get("max_repairs_per_run", 20),
        max_repairs_per_date_processor=data.get("max_repairs_per_date_processor", 3),
        repair_lead_minutes=data.get("repair_lead_minutes", 60),
    )


def _gate(data: dict[str, Any]) -> Gate:
    return Gate(
        name=data["name"],
        kind=data["kind"],
        action=data["action"],
        on_error=data.get("on_error", "closed"),
        modes=tuple(data.get("modes", ())),
        tables=tuple(data.get("tables", ())),
        table=data.get("table"),
        valid=data.get("valid"),
        population=data.get("population"),
        columns=tuple(data.get("columns", ())),
        rows_per_game=tuple(data.get("rows_per_game", {}).items()),
        min=data.get("min"),
        max=data.get("max"),
        message_field=data.get("message_field"),
    )
