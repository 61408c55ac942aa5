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

import random
import time
from typing import Any, Callable, TypeVar

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


def compare_and_set(ref, decide: Callable[[Any], tuple[Result, Write]], attempts: int = ATTEMPTS) -> Result:
    for attempt in range(attempts):
        snapshot = ref.get()
        result, write = decide(snapshot)
        if write is None:
            return result
        try:
            if snapshot.exists:
                ref.update(write, option=firestore.Client.write_option(last_update_time=snapshot.update_time))
            else:
                ref.create(write)
            return result
        except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound):
            time.sleep(random.uniform(0, _BACKOFF_SECONDS * 2**attempt))  # someone wrote in between: read again
    raise Contended(f"{ref.path} changed between read and write {attempts} times in a row")
