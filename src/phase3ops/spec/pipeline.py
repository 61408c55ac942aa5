"""The pipeline spec (`pipeline.yaml`): processors, topics and mode rules.

Loaded once per process, validated against `schemas/pipeline.schema.json`
plus the semantic rules a JSON Schema cannot state (unique names, a primary
key that contains the partition column, one mode per kind of date, a
critical set when a mode needs one, a time zone that exists).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phase3ops.spec.documents import (
    SCHEMA_DIR,
    SpecDocument,
    SpecError,
    SpecProblem,
    load_schema,
    read_yaml,
    schema_comment_problem,
    schema_problems,
)

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
    critical: bool
    table: TableSpec


@dataclass(frozen=True)
class LockSettings:
    collection: str
    lease_seconds: float
    max_wait_seconds: float
    retention_hours: float


@dataclass(frozen=True)
class AnalyticsSettings:
    service_name: str
    dataset: str
    raw_dataset: str
    lock: LockSettings


@dataclass(frozen=True)
class ModeRule:
    name: str
    applies_to: str  # past | today | tomorrow
    requires: str  # all | critical
    majority_threshold: float | None = None


@dataclass(frozen=True)
class Topics:
    phase3_trigger: str
    completion: str
    phase4_trigger: str


@dataclass(frozen=True)
class Collections:
    completions: str
    triggers: str
    rejected: str


@dataclass(frozen=True)
class OrchestratorSettings:
    function_name: str
    collections: Collections
    receipts_subscription: str | None
    claim_lease_seconds: int
    publish_timeout_seconds: int
    trigger_deadline: dt.time


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


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    source: str
    timezone: str
    topics: Topics
    orchestrator: OrchestratorSettings
    analytics: AnalyticsSettings
    scheduled_checks: tuple[ScheduledCheck, ...]
    scraper_timing: ScraperTiming
    raw_tables: tuple[TableSpec, ...]
    processors: tuple[Processor, ...]
    modes: tuple[ModeRule, ...]
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

    @property
    def critical_processors(self) -> frozenset[str]:
        return frozenset(p.name for p in self.processors if p.critical)

    def processor(self, name: str) -> Processor:
        for processor in self.processors:
            if processor.name == name:
                return processor
        raise KeyError(name)

    @property
    def deployed_workloads(self) -> dict[str, str]:
        """Every function, service and job the infra deploys, by name -> kind."""
        workloads = {self.orchestrator.function_name: "function", self.analytics.service_name: "service"}
        workloads.update({check.name: "job" for check in self.scheduled_checks})
        return workloads

    def raw_table(self, name: str) -> TableSpec:
        for table in self.raw_tables:
            if table.name == name:
                return table
        raise KeyError(name)

    def resolve_processor(self, reported_name: str) -> Processor | None:
        """Map any name a processor reports itself by to the processor.

        Accepted: the processor name, its output table (optionally qualified
        as `dataset.table` or `project.dataset.table`), its class name, and the
        class name's `...AsyncProcessor` variant, case-insensitively.
        """
        return self._aliases.get(_alias_key(reported_name))


def _alias_key(name: str) -> str:
    text = name.strip().rsplit(".", 1)[-1]
    text = re.sub(r"AsyncProcessor$", "Processor", text)
    return re.sub(r"[^a-z0-9]", "", text.lower())


def locate_pipeline_spec(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The spec to use: an explicit path, then $PHASE3OPS_PIPELINE, then the
    nearest `pipeline.yaml` in the working directory or one of its parents."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(PIPELINE_ENV)
    if from_env:
        return Path(from_env)
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
    if not any(p["critical"] for p in processors):
        for index, mode in enumerate(modes):
            if mode["requires"] == "critical":
                problems.append(
                    document.problem(
                        ["spec", "modes", index, "requires"],
                        "requires the critical set, but no processor has critical: true",
                    )
                )

    try:
        zoneinfo.ZoneInfo(spec["timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(document.problem(["spec", "timezone"], f"unknown time zone {spec['timezone']!r}"))

    raw_names = [t["name"] for t in spec["raw_tables"]]
    if spec["scraper_timing"]["table"] not in raw_names:
        problems.append(
            document.problem(["spec", "scraper_timing", "table"], f"{spec['scraper_timing']['table']!r} is not a raw table ({', '.join(raw_names)})")
        )

    orchestrator = spec["orchestrator"]
    lease = orchestrator.get("claim_lease_seconds", 60)
    publish_timeout = orchestrator.get("publish_timeout_seconds", 20)
    if lease <= publish_timeout:
        problems.append(
            document.problem(
                ["spec", "orchestrator", "claim_lease_seconds"],
                f"must be longer than publish_timeout_seconds ({publish_timeout}); "
                "otherwise a slow publish can be taken over and published twice",
            )
        )
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
            document.problem(["spec", section, index, "columns"], f"must have {PARTITION_COLUMN}: DATE (the partition column)")
        )
    for key in table["primary_key"]:
        if key not in columns:
            problems.append(
                document.problem(["spec", section, index, "primary_key"], f"primary key column {key!r} is not in columns")
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
    return PipelineSpec(
        name=data["metadata"]["name"],
        source=document.file,
        timezone=spec["timezone"],
        topics=Topics(**spec["topics"]),
        orchestrator=OrchestratorSettings(
            function_name=orchestrator["function_name"],
            collections=Collections(**orchestrator["collections"]),
            receipts_subscription=orchestrator.get("receipts_subscription"),
            claim_lease_seconds=orchestrator.get("claim_lease_seconds", 60),
            publish_timeout_seconds=orchestrator.get("publish_timeout_seconds", 20),
            trigger_deadline=dt.time.fromisoformat(orchestrator.get("trigger_deadline", "10:00")),
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
        ),
        scheduled_checks=tuple(ScheduledCheck(c["name"], tuple(c["args"]), c["schedule"]) for c in spec["scheduled_checks"]),
        scraper_timing=ScraperTiming(
            table=spec["scraper_timing"]["table"],
            first_run_by=dt.time.fromisoformat(spec["scraper_timing"]["first_run_by"]),
            pending_claim_minutes=spec["scraper_timing"].get("pending_claim_minutes", 30),
        ),
        raw_tables=tuple(_table(analytics["raw_dataset"], t["name"], t) for t in spec["raw_tables"]),
        processors=tuple(
            Processor(
                name=p["name"],
                output_table=p["output_table"],
                primary_key=tuple(p["primary_key"]),
                class_name=p["class_name"],
                critical=p["critical"],
                table=_table(analytics["dataset"], p["output_table"], p),
            )
            for p in spec["processors"]
        ),
        modes=tuple(
            ModeRule(
                name=m["name"],
                applies_to=m["applies_to"],
                requires=m["requires"],
                majority_threshold=m.get("majority_threshold"),
            )
            for m in spec["modes"]
        ),
    )
