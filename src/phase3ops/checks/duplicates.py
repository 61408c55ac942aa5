"""Duplicate rows: at most one row per primary key, as pipeline.yaml defines the key, in every Phase 3 table."""

from __future__ import annotations

import json

from phase3ops.checks.context import CheckContext
from phase3ops.checks.results import CheckResult, Status

NAME = "duplicates"
TITLE = "Duplicate rows"
EXPLANATION = (
    "Phase 4 reads each (game date, key) once; a duplicate double-counts a player or team. Counted by each "
    "table's own primary key from pipeline.yaml (the reference check used another key and missed them)."
)


def run(context: CheckContext) -> CheckResult:
    findings, details, total = [], [], 0
    fixes = []
    for processor in context.spec.processors:
        counts = context.warehouse.duplicate_counts(processor.table, context.first, context.last)
        duplicates = {day: n for day, n in counts.items() if n}
        total += sum(duplicates.values())
        key = ", ".join(processor.primary_key)
        details.append(f"{processor.table.qualified_name} by ({key}): {sum(duplicates.values())} duplicates")
        for day, count in sorted(duplicates.items()):
            findings.append(f"{processor.table.qualified_name} {day}: {count} rows beyond one per ({key})")
            message = json.dumps({"game_date": day.isoformat(), "processors": [processor.name]})
            fixes.append(f"gcloud pubsub topics publish {context.spec.topics.phase3_trigger} --message '{message}'")
    return CheckResult(
        NAME,
        TITLE,
        Status.FAILED if findings else Status.OK,
        f"{len(context.spec.processors)} tables, {total} duplicate rows",
        EXPLANATION,
        "rerun the processor for the date (its MERGE keeps one row per key): " + "; ".join(fixes[:3]) if fixes else "",
        findings,
        details,
        {"duplicate_rows": float(total)},
    )
