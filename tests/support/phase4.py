"""Phase 4's side of the hand-off in tests: the stand-in's /process, duplicate guard installed, fed real messages.

Every message that reached the Phase 4 topic (pulled from a listener
subscription) is pushed to the stand-in as Pub/Sub would push it; an answer
of 409 (the same message still being worked on) is pushed again, as Pub/Sub
redelivers. What counts is what the stand-in's ledger says: per (game date,
source table), messages received and how many times Phase 4's work ran.
"""

from __future__ import annotations

import base64
import collections
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import firestore

from phase3ops.local.phase4_standin import TableTally, create_app, tally

# One Phase 4 trigger body as the orchestrator sends it (per_table form, with its trigger id).
TRIGGER_BODY: dict[str, Any] = {
    "source_table": "player_game_summary",
    "analysis_date": "2026-11-28",
    "game_date": "2026-11-28",
    "success": True,
    "correlation_id": "corr-1",
    "trigger_source": "orchestrator",
    "triggered_by": "phase3_to_phase4_orchestrator",
    "trigger_id": "nba-phase3-to-phase4:2026-11-28:player_game_summary",
}


def push_envelope(message) -> dict:
    return {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
        },
        "subscription": "projects/test/subscriptions/phase4-precompute",
    }


class Phase4:
    def __init__(self, project: str, ledger: Path):
        self.ledger = ledger
        self._client = create_app(ledger, firestore_client=firestore.Client(project=project)).test_client()

    def deliver(self, messages) -> None:
        for message in messages:
            for _ in range(50):
                answer = self._client.post("/process", json=push_envelope(message))
                if answer.status_code != 409:
                    break
            assert 200 <= answer.status_code < 300, answer.get_json()

    def tally(self) -> dict[tuple[str, str], TableTally]:
        return tally(self.ledger)


@dataclass(frozen=True)
class HandOff:
    """What one scenario did to Phase 4, over all its trials."""

    published: dict[tuple[str, str], int]  # distinct messages per (date, table) on the Phase 4 topic
    work: dict[tuple[str, str], int]  # times Phase 4's work ran per (date, table)

    @property
    def duplicate_messages(self) -> int:
        return sum(n - 1 for n in self.published.values() if n > 1)

    @property
    def dates_with_duplicate_messages(self) -> int:
        return len({day for (day, _), n in self.published.items() if n > 1})

    @property
    def duplicate_work(self) -> int:
        return sum(n - 1 for n in self.work.values() if n > 1)

    def lost(self, expected: dict[tuple[str, str], int]) -> list[tuple[str, str]]:
        return sorted(key for key in expected if not self.work.get(key))


def hand_off(project: str, ledger: Path, messages) -> HandOff:
    """Push every message to Phase 4 with its guard; count what was published and what ran."""
    published: collections.Counter = collections.Counter()
    seen = set()
    for message in messages:
        if message.message_id in seen:
            continue
        seen.add(message.message_id)
        body = json.loads(message.data)
        published[(body["game_date"], body.get("source_table", "date"))] += 1
    phase4 = Phase4(project, ledger)
    phase4.deliver(messages)
    return HandOff(dict(published), {key: t.work_started for key, t in phase4.tally().items()})
