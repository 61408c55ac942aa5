"""The words the orchestrator's log lines and stored records carry: what it decided about a delivery
(`jsonPayload.outcome`) and what became of a completion's record (`jsonPayload.record`).

Alert rules and the SLOs' log filters match these words, and `validate` checks them without a Firestore
client, so they live apart from the code that reads and writes Firestore.
"""

from __future__ import annotations

import enum

# Decision outcomes, as logged in jsonPayload.outcome (alert filters match them).
TRIGGERED = "triggered"  # this delivery claimed the date and published the trigger
REPUBLISHED = "republished"  # recovered a stale claim and published what had not gone out
CONFIRMED_BY_RECEIPT = "confirmed_by_receipt"  # a stale claim's messages all had receipts: nothing re-sent
WAITING = "waiting"  # the date is not complete yet for its mode
ALREADY_TRIGGERED = "already_triggered"
LATE = "late"  # a run the published trigger did not include (a re-run or backfill after it)
REJECTED = "rejected"
RETRY_LATER = "retry_later"  # another delivery is busy with the date (a live claim, contention): raised for redelivery
PUBLISH_FAILED = "publish_failed"  # raised for redelivery
HELD = "held"  # ready, but a data gate blocks it: recorded and acknowledged; evaluated again later
FOLLOWED_UP = "followed_up"  # a late run changed its table: Phase 4 was sent one follow-up message for it
POISONED = "poisoned"  # kept failing past the bound: stored as poison and acknowledged (pages)


class RecordOutcome(str, enum.Enum):
    RECORDED = "recorded"  # first completion of this processor for this date
    UPDATED = "updated"  # a newer run of the processor replaced the record
    DUPLICATE = "duplicate"  # a redelivery of what is already recorded
    SUPERSEDED = "superseded"  # an older run arriving after a newer one: kept out
    KEPT_SUCCESS = "kept_success"  # a failed/no_data run after a success: history only, the success counts
    STALE_TOKEN = "refused_stale_token"  # written under a lock token a newer run superseded: refused
