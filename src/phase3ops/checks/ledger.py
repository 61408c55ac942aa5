"""The expected-work ledger: which (game date, processor) pairs the schedule owes and nobody has done.

A date with games in the schedule owes each processor that one of its modes
expects, from the earliest deadline among those modes (the same-day run's
processors by 13:00 on the day, the overnight run's by 10:00 the next day,
as `pipeline.yaml` declares them). A pair stays owed until the processor ran
for the date (a counted completion, or rows in its table, which completion
tracking reconciles) or an operator marked it skipped. The ledger starts at
`expected_work.since` and has no window: an old gap is reported every day
until someone resolves it (in the system this replaces, a processor nobody
triggered was missing for 7 days, another's source for 26, and both were
found by hand).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from phase3ops.checks.state import DateState
from phase3ops.orchestrator.readiness import local_today, mode_deadline
from phase3ops.spec.pipeline import PipelineSpec


@dataclass(frozen=True)
class Gap:
    """A processor the schedule owes for a date, past its due time, neither run nor skipped."""

    game_date: dt.date
    processor: str
    due: dt.datetime  # the earliest deadline of a mode that expects it
    mode: str  # that mode
    games: int
    status: str  # what the store holds for it: "no run", or the status of a run that does not count

    def describe(self, now: dt.datetime) -> str:
        late = now - self.due
        hours = late.total_seconds() / 3600
        overdue = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
        return f"{self.game_date} {self.processor}: {self.status}; owed by {self.due:%m-%d %H:%M %Z} ({self.mode}), overdue {overdue}"


def owed(spec: PipelineSpec, game_date: dt.date) -> dict[str, tuple[dt.datetime, str]]:
    """Each processor some mode expects for `game_date`, with the earliest deadline (and its mode) at which it is owed."""
    due: dict[str, tuple[dt.datetime, str]] = {}
    for mode in spec.modes:
        deadline = mode_deadline(spec, mode, game_date)
        for processor in mode.expected:
            if processor not in due or deadline < due[processor][0]:
                due[processor] = (deadline, mode.name)
    return due


def ledger_window(spec: PipelineSpec, now: dt.datetime) -> tuple[dt.date, dt.date] | None:
    """The game dates the ledger reads: from its start to the last date any deadline can have
    passed for (tomorrow's date is owed today, by the `tomorrow` mode's deadline)."""
    if spec.expected_work is None:
        return None
    last = local_today(spec, now) + dt.timedelta(days=max((-m.deadline_day for m in spec.modes), default=0))
    first = spec.expected_work.since
    return (first, last) if first <= last else None


def gaps(
    spec: PipelineSpec,
    states: Mapping[dt.date, DateState],
    skipped: Mapping[dt.date, Collection[str]],
    now: dt.datetime,
    lead: dt.timedelta = dt.timedelta(0),
) -> list[Gap]:
    """Every owed pair of `states` due by `now + lead` that neither ran nor was skipped, oldest first
    (reports use no lead: a pair is missing once due; repairs ask for it `lead` earlier)."""
    found = []
    for day, state in sorted(states.items()):
        if state.games <= 0:
            continue  # no games, nothing owed
        for processor, (due, mode) in owed(spec, day).items():
            if now + lead < due or processor in skipped.get(day, ()):
                continue
            if processor in state.counted or state.rows.get(processor, 0) > 0:
                continue
            record = state.records.get(processor)
            status = f"its last run is {record.status}" if record is not None else "no run"
            found.append(Gap(day, processor, due, mode, state.games, status))
    return sorted(found, key=lambda gap: (gap.game_date, spec.processor_names.index(gap.processor)))


@dataclass(frozen=True)
class Ledger:
    """What the ledger read: every date from its start, what each ran, and what operators skipped."""

    first: dt.date
    last: dt.date
    states: Mapping[dt.date, DateState]
    skipped: Mapping[dt.date, Collection[str]]

    def gaps(self, spec: PipelineSpec, now: dt.datetime, lead: dt.timedelta = dt.timedelta(0)) -> list[Gap]:
        return gaps(spec, self.states, self.skipped, now, lead)

    @property
    def game_dates(self) -> int:
        return sum(1 for state in self.states.values() if state.games > 0)
