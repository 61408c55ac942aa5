"""`phase3ops explain DATE`: the story of one game date, from what the pipeline stored.

story.py reads it (Firestore and the warehouse) into events and summaries
and judges it; timeline.py renders it for people.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from phase3ops.explain.story import DateStory, read_story
from phase3ops.spec.pipeline import PipelineSpec
from phase3ops.warehouse.port import Warehouse


def explain_date(
    spec: PipelineSpec,
    project: str,
    warehouse: Warehouse,
    game_date: dt.date,
    now: dt.datetime,
    phase4_entries: list[dict[str, Any]] | None = None,
) -> DateStory:
    """The story of `game_date` in `project` (the emulators when their variables are set); `phase4_entries`:
    what Phase 4 did with each message, where its record is readable (the local stand-in's ledger)."""
    from phase3ops import cloud
    from phase3ops.orchestrator.factory import build_orchestrator
    from phase3ops.overrides import effective_skips, for_date

    db = cloud.firestore_client(cloud.project_id(project))
    orchestrator = build_orchestrator(spec, project, firestore_client=db)
    overrides = for_date(db, spec, game_date)
    return read_story(
        spec,
        orchestrator.store,
        orchestrator.claims,
        db,
        warehouse,
        game_date,
        now,
        orchestrator.holds,
        orchestrator.followups,
        overrides=[o.as_document() for o in overrides],
        skipped=set(effective_skips(overrides)),
        phase4_entries=phase4_entries,
    )
