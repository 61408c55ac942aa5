"""Audited operator overrides: `trigger --force`, `skip [--undo]`, `retrigger [--cascade N]`.

The commands go through the orchestrator's own claims, publisher and
receipts (actions.py) and record who, when, why and what in
`spec.orchestrator.collections.overrides` (records.py). Readers:

    for_date(client, spec, game_date) -> list[Override]            every override of a date, oldest first
    between(client, spec, first, last) -> dict[date, list[Override]]
    skipped(client, spec, game_date) -> dict[str, Override]        processor -> the skip in force
    skipped_between(client, spec, first, last) -> dict[date, dict[str, Override]]
    retrigger_claims(client, spec, game_date) -> list[TriggerClaim]  the date's re-trigger claims, by number

The names below load their module on first use (PEP 562): the command's
argument parser reads `inputs` without importing the Firestore client.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "actions": (
        "Outcome",
        "Overrides",
        "build_overrides",
        "retrigger_claims",
        "retrigger_collection",
        "retrigger_key",
        "retrigger_trigger_id",
    ),
    "inputs": ("BadOverride", "Operator"),
    "records": (
        "FORCE_TRIGGER",
        "RETRIGGER",
        "SKIP",
        "UNSKIP",
        "Override",
        "between",
        "effective_skips",
        "for_date",
        "skipped",
        "skipped_between",
    ),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
