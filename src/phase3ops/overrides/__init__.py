"""Audited operator overrides: `trigger --force`, `skip [--undo]`, `retrigger [--cascade N]`.

The commands go through the orchestrator's own claims, publisher and
receipts (actions.py) and record who, when, why and what in
`spec.orchestrator.collections.overrides` (records.py). Readers:

    for_date(client, spec, game_date) -> list[Override]            every override of a date, oldest first
    between(client, spec, first, last) -> dict[date, list[Override]]
    skipped(client, spec, game_date) -> dict[str, Override]        processor -> the skip in force
    skipped_between(client, spec, first, last) -> dict[date, dict[str, Override]]
    retrigger_claims(client, spec, game_date) -> list[TriggerClaim]  the date's re-trigger claims, by number
"""

from phase3ops.overrides.actions import (
    Outcome,
    Overrides,
    build_overrides,
    retrigger_claims,
    retrigger_collection,
    retrigger_key,
    retrigger_trigger_id,
)
from phase3ops.overrides.inputs import BadOverride, Operator
from phase3ops.overrides.records import (
    FORCE_TRIGGER,
    RETRIGGER,
    SKIP,
    UNSKIP,
    Override,
    between,
    effective_skips,
    for_date,
    skipped,
    skipped_between,
)

__all__ = [
    "FORCE_TRIGGER",
    "RETRIGGER",
    "SKIP",
    "UNSKIP",
    "BadOverride",
    "Operator",
    "Outcome",
    "Override",
    "Overrides",
    "between",
    "build_overrides",
    "effective_skips",
    "for_date",
    "retrigger_claims",
    "retrigger_collection",
    "retrigger_key",
    "retrigger_trigger_id",
    "skipped",
    "skipped_between",
]
