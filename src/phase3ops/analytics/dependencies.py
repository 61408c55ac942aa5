"""`after:`: a processor that reads another Phase 3 table for the same date waits until that table is complete.

The system this replaces once ran the player summary 92 minutes before the
team tables it reads existed, and published usage rates of 600-1,275 %. A
processor that declares `after: [...]` in pipeline.yaml runs only once each
of them has a counting completion for the date; until then its push is
answered 503, so Pub/Sub delivers it again with backoff (and the expected-work
ledger reports it if that never happens).
"""

from __future__ import annotations

import datetime as dt

from phase3ops.orchestrator.completion_store import record_document_id
from phase3ops.spec.pipeline import Processor


class WaitingForDependencies(RuntimeError):
    """A processor's declared dependencies have not completed for the date yet: try again later."""


class CompletedDependencies:
    """Reads the orchestrator's completion records: a dependency is complete when its record counts."""

    def __init__(self, client, completions_collection: str):
        self._client = client
        self._collection = client.collection(completions_collection)

    def missing(self, processor: Processor, game_date: dt.date) -> list[str]:
        if not processor.after:
            return []
        refs = [self._collection.document(record_document_id(game_date, name)) for name in processor.after]
        complete = {
            snapshot.get("processor")
            for snapshot in self._client.get_all(refs)
            if snapshot.exists and snapshot.get("counts")
        }
        return [name for name in processor.after if name not in complete]
