"""Run one processor for one game date: lock, compute, de-duplicate, MERGE, publish, release.

Any failure on the way publishes nothing and raises, so the request fails
and Pub/Sub redelivers it; the MERGE is idempotent, so the retry converges.
A run that finds no rows writes no rows (an empty computation never wipes a
date) and publishes `no_data`, which the orchestrator records but does not
count.

Every write is fenced by the lock's token, in the same transaction as the
MERGE (or, for no rows, as the fence's own advance): a run whose lease was
taken over while it paused (a GC pause, a frozen VM) is refused by the
warehouse and publishes nothing, so neither its rows nor its completion can
overwrite its successor's.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from phase3ops.analytics.completions import CompletionPublisher
from phase3ops.analytics.dedup import keep_newest
from phase3ops.analytics.processors import check_implemented, query_for
from phase3ops.locking.lease_lock import LeaseLocks, LockLost
from phase3ops.spec.pipeline import FRESHNESS_COLUMN, PipelineSpec
from phase3ops.warehouse.port import Warehouse, WriteFence, WriteFenced

log = logging.getLogger("phase3ops.analytics")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class RunResult:
    processor: str
    game_date: dt.date
    status: str
    record_count: int
    duplicates_dropped: int
    execution_id: str
    lock_token: int
    message_id: str


class ProcessorRunner:
    def __init__(
        self,
        spec: PipelineSpec,
        warehouse: Warehouse,
        locks: LeaseLocks,
        completions: CompletionPublisher,
        clock: Callable[[], dt.datetime] = utc_now,
    ):
        check_implemented(spec)
        self.spec = spec
        self.warehouse = warehouse
        self.locks = locks
        self.completions = completions
        self.clock = clock

    def prepare(self) -> None:
        """Create the output tables and the write fences that do not exist yet (once, at start-up)."""
        self.warehouse.ensure_tables([*(p.table for p in self.spec.processors), self.spec.analytics.write_fences])

    def run(
        self, processor_name: str, game_date: dt.date, correlation_id: str | None = None, trigger_message_id: str | None = None
    ) -> RunResult:
        processor = self.spec.processor(processor_name)
        query = query_for(processor_name)
        execution_id = f"{processor_name}-{game_date:%Y%m%d}-{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        with self.locks.acquire(processor_name, game_date) as lease:
            computed = self.warehouse.query(query.sql(self.spec, game_date))
            processed_at = self.clock()
            rows = keep_newest(({**row, FRESHNESS_COLUMN: processed_at} for row in computed), processor.primary_key)
            lease.ensure_current()  # cheap early exit; the fence below is what guarantees it
            fence = WriteFence(self.spec.analytics.write_fences, lease.token, lease.owner, execution_id)
            try:
                self.warehouse.write_partition(processor.table, game_date, rows, fence=fence)
            except WriteFenced as exc:
                log.warning(
                    "%s %s: superseded by a newer lock holder; nothing written, nothing published",
                    processor.name,
                    game_date,
                    extra={"event": "write_fenced", "processor": processor.name, "game_date": game_date.isoformat(), "token": lease.token, "owner": lease.owner, "execution_id": execution_id, "reason": str(exc)},
                )
                raise LockLost(f"{processor.name} {game_date}: {exc}") from exc
            status = "success" if rows else "no_data"
            message_id = self.completions.publish(
                processor=processor,
                game_date=game_date,
                status=status,
                execution_id=execution_id,
                correlation_id=correlation_id,
                record_count=len(rows),
                duration_seconds=time.monotonic() - started,
                trigger_message_id=trigger_message_id,
                metadata={"lock_token": lease.token, "lock_owner": lease.owner, "duplicates_dropped": len(computed) - len(rows)},
            )
        result = RunResult(
            processor=processor.name,
            game_date=game_date,
            status=status,
            record_count=len(rows),
            duplicates_dropped=len(computed) - len(rows),
            execution_id=execution_id,
            lock_token=lease.token,
            message_id=message_id,
        )
        log.info(
            "%s %s: %s, %d rows",
            processor.name,
            game_date,
            status,
            len(rows),
            extra={"event": "processor_run", **{k: str(v) if isinstance(v, dt.date) else v for k, v in vars(result).items()}},
        )
        return result
