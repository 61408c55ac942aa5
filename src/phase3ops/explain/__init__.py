"""`phase3ops explain DATE`: the story of one game date, from what the pipeline stored.

story.py reads it (Firestore and the warehouse) into events and summaries
and judges it; timeline.py renders it for people.
"""

from __future__ import annotations

import datetime as dt

from phase3ops.explain.story import DateStory, read_story
from phase3ops.spec.pipeline import PipelineSpec
from phase3ops.warehouse.port import Warehouse


def explain_date(spec: PipelineSpec, project: str, warehouse: Warehouse, game_date: dt.date, now: dt.datetime) -> DateStory:
    """The story of `game_date` in `project` (the emulators when their variables are set)."""
    from phase3ops import cloud
    from phase3ops.orchestrator.factory import build_orchestrator

    db = cloud.firestore_client(cloud.project_id(project))
    orchestrator = build_orchestrator(spec, project, firestore_client=db)
    return read_story(spec, orchestrator.store, orchestrator.claims, db, warehouse, game_date, now, orchestrator.holds, orchestrator.followups)
