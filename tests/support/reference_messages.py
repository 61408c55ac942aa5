"""Completion messages exactly as the reference pipeline's processors publish them.

Built field by field from `shared/reference/reference-wire-contracts.md`
(the unified publisher's `_build_message`, filled in by the analytics base
class): class names as `processor_name` (the async context processor as
`AsyncUpcomingPlayerGameContextProcessor`), an 8-hex `execution_id`, keys whose
value is None dropped before publishing, `error_type` the string "str" on a
failure, and metadata that may itself hold nulls.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

# processor -> the class names the reference publishes it as (production first)
CLASS_NAMES = {
    "player_game_summary": ("PlayerGameSummaryProcessor",),
    "team_offense_game_summary": ("TeamOffenseGameSummaryProcessor",),
    "team_defense_game_summary": ("TeamDefenseGameSummaryProcessor",),
    "upcoming_player_game_context": ("AsyncUpcomingPlayerGameContextProcessor", "UpcomingPlayerGameContextProcessor"),
    "upcoming_team_game_context": ("UpcomingTeamGameContextProcessor",),
}
# Every name form a processor reaches the orchestrator by: class name, table name, Async-prefixed class.
NAME_FORMS = ("class", "async_class", "table")


def reported_name(processor: str, form: str) -> str:
    base = CLASS_NAMES[processor][-1]
    return {"class": base, "async_class": f"Async{base}", "table": processor}[form]


def reference_completion(
    processor: str,
    game_date: dt.date | str,
    status: str = "success",
    form: str = "class",
    correlation_id: str | None = None,
    record_count: int = 120,
    metadata: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    message = {
        "processor_name": reported_name(processor, form),
        "phase": "phase_3_analytics",
        "execution_id": uuid.uuid4().hex[:8],
        "correlation_id": correlation_id,
        "game_date": str(game_date),
        "output_table": processor,
        "output_dataset": "nba_analytics",
        "status": status,
        "record_count": record_count if status in ("success", "partial") else 0,
        "records_failed": 3 if status == "partial" else 0,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "duration_seconds": 12.5,
        "parent_processor": None,
        "trigger_source": "pubsub",
        "trigger_message_id": None,
        "error_message": "BigQuery timeout" if status == "failed" else None,
        "error_type": "str" if status == "failed" else None,
        "metadata": metadata
        if metadata is not None
        else {"is_incremental": False, "entities_changed": None, "skip_reason": None},
        **extra,
    }
    return {k: v for k, v in message.items() if v is not None}
