"""Reading what the SLIs count from Firestore: claims, completion records and refused messages,
in three queries whatever the window."""

from __future__ import annotations

import datetime as dt

from phase3ops.orchestrator.completion_store import CompletionStore
from phase3ops.orchestrator.trigger_claims import TriggerClaims
from phase3ops.slos.event_metrics import StoredHistory
from phase3ops.spec.pipeline import PipelineSpec

# A trigger or a run counted in the window may be for a game date well before it (a repair, a
# backfill): game dates this far back are read.
GAME_DATES_BEFORE_WINDOW = dt.timedelta(days=31)


def read_history(
    spec: PipelineSpec, store: CompletionStore, claims: TriggerClaims, start: dt.datetime, end: dt.datetime
) -> StoredHistory:
    first, last = (start - GAME_DATES_BEFORE_WINDOW).date(), end.date() + dt.timedelta(days=1)
    return StoredHistory(
        spec,
        claims=list(claims.claims_between(first, last).values()),
        records=[
            record for by_processor in store.records_between(first, last).values() for record in by_processor.values()
        ],
        refused=store.rejected.refused_between(start, end),
    )
