"""The five Phase 3 processors, by the name the pipeline spec gives them."""

from __future__ import annotations

from phase3ops.analytics.processors import (
    player_game_summary,
    team_defense_game_summary,
    team_offense_game_summary,
    upcoming_player_game_context,
    upcoming_team_game_context,
)
from phase3ops.analytics.processors.base import ProcessorQuery
from phase3ops.spec.pipeline import PipelineSpec

QUERIES: dict[str, ProcessorQuery] = {
    module.QUERY.name: module.QUERY
    for module in (
        player_game_summary,
        team_offense_game_summary,
        team_defense_game_summary,
        upcoming_player_game_context,
        upcoming_team_game_context,
    )
}


class UnknownProcessor(LookupError):
    pass


def query_for(name: str) -> ProcessorQuery:
    try:
        return QUERIES[name]
    except KeyError:
        raise UnknownProcessor(
            f"no implementation for processor {name!r} (have: {', '.join(sorted(QUERIES))})"
        ) from None


def check_implemented(spec: PipelineSpec) -> None:
    """Fail at start-up, not at the first message, when the spec names a processor the code lacks."""
    missing = [name for name in spec.processor_names if name not in QUERIES]
    if missing:
        raise UnknownProcessor(f"{spec.source} names processors with no implementation: {', '.join(missing)}")
