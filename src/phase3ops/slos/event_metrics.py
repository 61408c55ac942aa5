"""The events an SLI counts, each defined twice in one place: as the log-based metric Cloud Monitoring
counts, and as the same events read back from what the pipeline stored.

Cloud Monitoring counts an SLO's events from time series; `phase3ops slo report` must count the
same events from Firestore (the local environment and the tests have no Cloud Monitoring). Each
`EventMetric` pairs the Logging filter of its log-based counter with the function that finds
those events in the stored claims, completion records and refused messages, and
`tests/integration/test_slo_event_metrics.py` runs the real orchestrator, matches its log lines
against every filter and asserts both counts agree.

One event per fact: a game date's trigger is counted when it went out (the claim's
`published_at`, the log line of the delivery that sent it), a processor run when its completion
was recorded (a redelivered completion is a duplicate in both), a refused completion when it
was stored as rejected or poison.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from phase3ops.orchestrator.outcomes import CONFIRMED_BY_RECEIPT, REPUBLISHED, TRIGGERED, RecordOutcome
from phase3ops.orchestrator.outcomes import REJECTED as REJECTED_OUTCOME
from phase3ops.orchestrator.readiness import decided_deadline, minutes_before
from phase3ops.rejected_kinds import POISON, REJECTED
from phase3ops.spec.pipeline import PipelineSpec

if TYPE_CHECKING:  # the stored forms these read; their modules need a Firestore client, validate does not
    from phase3ops.orchestrator.completion_store import CompletionRecord
    from phase3ops.orchestrator.trigger_claims import TriggerClaim

ORCHESTRATOR_HANDLER = "phase3-to-phase4-orchestrator"


@dataclass(frozen=True)
class Event:
    at: dt.datetime
    subject: str  # what it is about, for people: "2026-03-01", "2026-03-01 player_game_summary exec-7"


@dataclass
class StoredHistory:
    """What the pipeline stored that the SLIs count: every published claim, every completion record
    (with its runs) and every message the orchestrator refused, over the dates read."""

    spec: PipelineSpec
    claims: list[TriggerClaim] = field(default_factory=list)
    records: list[CompletionRecord] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # documents of the rejected collection


@dataclass(frozen=True)
class EventMetric:
    name: str  # the log-based metric: logging.googleapis.com/user/<name>, `log:<name>` in an SLO
    description: str
    filter: str  # Cloud Logging query language
    stored: Callable[[StoredHistory], list[Event]]

    @property
    def reference(self) -> str:
        return f"log:{self.name}"


# Sent by the function, the held-dates job or a reconciliation repair: not scoped to one workload.
_SENT = 'jsonPayload.event="phase3_completion" AND jsonPayload.outcome=({})'.format(
    " OR ".join(f'"{outcome}"' for outcome in (TRIGGERED, REPUBLISHED, CONFIRMED_BY_RECEIPT))
)
_ORCHESTRATOR = f'resource.type="cloud_run_revision" AND resource.labels.service_name="{ORCHESTRATOR_HANDLER}"'
# A completion the store took (recorded, updated, kept in the history): a redelivery is `duplicate`.
_RECORDED = (
    'jsonPayload.event="phase3_completion" AND jsonPayload.record:* '
    f'AND NOT jsonPayload.record="{RecordOutcome.DUPLICATE.value}"'
)
_REFUSED = (
    f'(jsonPayload.event="phase3_completion" AND jsonPayload.outcome="{REJECTED_OUTCOME}") '
    'OR jsonPayload.event="poison_message"'
)


def _sent_triggers(history: StoredHistory) -> list[tuple[TriggerClaim, Event]]:
    return [
        (claim, Event(claim.published_at, _trigger_subject(history, claim)))
        for claim in history.claims
        if claim.is_published and claim.published_at is not None
    ]


def _minutes_before_deadline(history: StoredHistory, claim: TriggerClaim) -> float:
    assert claim.published_at is not None  # only sent triggers are asked
    deadline = decided_deadline(history.spec, claim.decision.get("mode"), claim.game_date)
    return minutes_before(deadline, claim.published_at)  # as the log line rounds it


def _on_time(history: StoredHistory, claim: TriggerClaim) -> bool:
    return _minutes_before_deadline(history, claim) >= 0


def _trigger_subject(history: StoredHistory, claim: TriggerClaim) -> str:
    """'2026-11-20: sent 1 d 4 h after its overnight deadline, degraded'."""
    minutes = _minutes_before_deadline(history, claim)
    hours, rest = divmod(round(abs(minutes)), 60)
    days, hours = divmod(hours, 24)
    span = " ".join(
        part
        for part in (
            f"{days} d" if days else "",
            f"{hours} h" if hours else "",
            f"{rest} min" if rest or not (days or hours) else "",
        )
        if part
    )
    degraded = ", degraded" if claim.decision.get("degraded") else ""
    mode = claim.decision.get("mode") or "latest"
    return f"{claim.game_date}: sent {span} {'before' if minutes >= 0 else 'after'} its {mode} deadline{degraded}"


def _runs(history: StoredHistory) -> list[tuple[dict[str, Any], Event]]:
    found = []
    for record in history.records:
        for run in record.runs:
            if isinstance(run.get("published_at"), dt.datetime):
                subject = f"{record.game_date} {record.processor} {run.get('execution_id', '?')}"
                found.append((run, Event(run["published_at"], subject)))
    return found


def _refused(history: StoredHistory) -> list[Event]:
    return [
        Event(
            document["rejected_at"], f"{document.get('game_date') or '?'} refused: {document.get('reason', '')}"[:120]
        )
        for document in history.refused
        if document.get("handler") == ORCHESTRATOR_HANDLER
        and document.get("kind") in (REJECTED, POISON)
        and isinstance(document.get("rejected_at"), dt.datetime)
    ]


EVENT_METRICS: dict[str, EventMetric] = {
    metric.name: metric
    for metric in (
        EventMetric(
            "phase3_phase4_triggers",
            "Game dates whose Phase 4 trigger went out (one per date)",
            _SENT,
            lambda history: [event for _, event in _sent_triggers(history)],
        ),
        EventMetric(
            "phase3_phase4_triggers_on_time",
            "Game dates whose Phase 4 trigger went out by the deadline of the mode it was decided in",
            f"{_SENT} AND jsonPayload.minutes_before_deadline>=0",
            lambda history: [event for claim, event in _sent_triggers(history) if _on_time(history, claim)],
        ),
        EventMetric(
            "phase3_phase4_triggers_complete",
            "Game dates whose Phase 4 trigger went out on data that passed every gate (not degraded)",
            f"{_SENT} AND jsonPayload.degraded=false",
            lambda history: [event for claim, event in _sent_triggers(history) if not claim.decision.get("degraded")],
        ),
        EventMetric(
            "phase3_processor_runs",
            "Phase 3 processor runs whose completion the orchestrator recorded (redeliveries not counted)",
            f"{_ORCHESTRATOR} AND {_RECORDED}",
            lambda history: [event for _, event in _runs(history)],
        ),
        EventMetric(
            "phase3_processor_runs_failed",
            "Phase 3 processor runs that reported failure",
            f'{_ORCHESTRATOR} AND {_RECORDED} AND jsonPayload.status="failed"',
            lambda history: [event for run, event in _runs(history) if run.get("status") == "failed"],
        ),
        EventMetric(
            "phase3_completion_deliveries",
            "Completion messages the orchestrator took in or refused (redeliveries of a recorded run not counted)",
            f"{_ORCHESTRATOR} AND (({_RECORDED}) OR {_REFUSED})",
            lambda history: [event for _, event in _runs(history)] + _refused(history),
        ),
        EventMetric(
            "phase3_completions_refused",
            "Completion messages the orchestrator refused: malformed (rejected) or failing past the bound (poison)",
            f"{_ORCHESTRATOR} AND ({_REFUSED})",
            _refused,
        ),
    )
}


def event_metric(reference: str) -> EventMetric | None:
    """The event metric a `log:<name>` reference names, if it is one."""
    return EVENT_METRICS.get(reference.removeprefix("log:")) if reference.startswith("log:") else None
