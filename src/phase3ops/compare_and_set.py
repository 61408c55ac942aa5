"""Read, decide, write one Firestore document without a transaction.

Firestore's server-side transactions lock what they read. An instance killed
inside one (the platform scaling it in, a crash, the chaos day) leaves those
locks until they time out: measured on the emulator, a minute during which
every later transaction on the document fails with "Transaction lock
timeout", so a date's completions and its stale trigger claim could not be
touched. Here the write is conditional instead: an update only if the
document's update time is still the one read, a create only if it is still
absent. A dead writer holds nothing; a writer that loses a race reads again.
One winner per version of the document, as with a transaction. The
orchestrator's records and claims and the processor locks all write this way.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

Result = TypeVar("Result")
# What to write after reading: None (nothing), or the fields to set. On a
# document that exists they are applied with update() (top-level fields are
# replaced whole); on one that does not, they are its content.
Write = dict[str, Any] | None

ATTEMPTS = 10
_BACKOFF_SECONDS = 0.01


class Contended(RuntimeError):
    """The document changed between every read and write: others keep writing it."""


@dataclass(frozen=True)
class Written:
    """What a caller knows of its own write.

    `update_time` is the document's version after it (Firestore's commit
    time): the precondition of the writer's next conditional write.
    `sent_at` is the writer's monotonic clock just before the write was
    sent; whatever the write started (a lease) started no earlier, so a
    deadline measured from it is never later than the one readers see.
    """

    update_time: dt.datetime
    sent_at: float


def compare_and_set(ref, decide: Callable[[Any], tuple[Result, Write]], attempts: int = ATTEMPTS) -> Result:
    return compare_and_set_written(ref, decide, attempts)[0]


def compare_and_set_written(
    ref, decide: Callable[[Any], tuple[Result, Write]], attempts: int = ATTEMPTS
) -> tuple[Result, Written | None]:
    """`compare_and_set`, also saying what was written (None when `decide` wrote nothing)."""
    for attempt in range(attempts):
        snapshot = ref.get()
        result, write = decide(snapshot)
        if write is None:
            return result, None
        sent_at = time.monotonic()
        try:
            if snapshot.exists:
                written = ref.update(write, option=firestore.Client.write_option(last_update_time=snapshot.update_time))
            else:
                written = ref.create(write)
            return result, Written(written.update_time, sent_at)
        except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound):
            time.sleep(random.uniform(0, _BACKOFF_SECONDS * 2**attempt))  # someone wrote in between: read again
    raise Contended(f"{ref.path} changed between read and write {attempts} times in a row")


def update_if_unchanged(ref, fields: dict[str, Any], since: Written) -> Written | None:
    """Apply `fields` only if nobody wrote the document after `since` (the caller's own last
    write); the new `Written`, or None when someone did."""
    sent_at = time.monotonic()
    try:
        written = ref.update(fields, option=firestore.Client.write_option(last_update_time=since.update_time))
    except (gexc.FailedPrecondition, gexc.NotFound):
        return None
    return Written(written.update_time, sent_at)
