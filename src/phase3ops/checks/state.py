"""What the pipeline recorded and wrote for a range of game dates, read in a fixed number of round trips.

One query for every completion record of the range, one for every trigger
claim, one for every gate hold, one row-count query per Phase 3 table and
one for the game schedule: a year of dates costs the same nine round trips
as a day (reading per date was the slow part of the reference
reconciliation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from phase3ops.orchestrator.completion_store import CompletionRecord, CompletionStore
from phase3ops.orchestrator.gate_holds import GateHolds, Hold
from phase3ops.orchestrator.trigger_claims import TriggerClaim, TriggerClaims
from phase3ops.spec.pipeline import PipelineSpec
from phase3ops.warehouse.port import Warehouse


@dataclass
class DateState:
    game_date: dt.date
    records: dict[str, CompletionRecord] = field(default_factory=dict)
    claim: TriggerClaim | None = None
    rows: dict[str, int] = field(default_factory=dict)  # processor -> rows in its table for the date
    games: int = 0  # rows of the game schedule for the date
    hold: Hold | None = None  # what a data gate found, if it ever held the date

    @property
    def counted(self) -> set[str]:
        return {name for name, record in self.records.items() if record.counts}


def date_range(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


def read_state(
    spec: PipelineSpec,
    store: CompletionStore,
    claims: TriggerClaims,
    warehouse: Warehouse,
    first: dt.date,
    last: dt.date,
    holds: GateHolds | None = None,
) -> dict[dt.date, DateState]:
    states = {day: DateState(day) for day in date_range(first, last)}
    for day, records in store.records_between(first, last).items():
        states[day].records = records
    for day, claim in claims.claims_between(first, last).items():
        states[day].claim = claim
    for day, hold in (holds.between(first, last) if holds is not None else {}).items():
        states[day].hold = hold
    for processor in spec.processors:
        for day, count in warehouse.row_counts(processor.table, first, last).items():
            states[day].rows[processor.name] = count
    for day, count in warehouse.row_counts(spec.raw_table(spec.game_schedule_table), first, last).items():
        states[day].games = count
    return states
