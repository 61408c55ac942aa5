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

A re-run never shrinks a good date by itself: a run that would remove more
than `shrink_guard.max_removed_fraction` of the date's rows (the MERGE
deletes what a run no longer produces, so a re-run on partial upstream data
would) is held, refused or only alerted on, as pipeline.yaml declares. The
completion carries a fingerprint of the rows written, so the orchestrator
can tell Phase 4 about late data only when the rows really changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phase3ops.analytics.completions import CompletionPublisher, CompletionPublishFailed
from phase3ops.analytics.dedup import keep_newest
from phase3ops.analytics.dependencies import CompletedDependencies, WaitingForDependencies
from phase3ops.analytics.processors import check_implemented, query_for
from phase3ops.locking.lease_lock import LeaseLocks, LockLost
from phase3ops.spec.pipeline import FRESHNESS_COLUMN, PARTITION_COLUMN, PipelineSpec, Processor
from phase3ops.warehouse.port import Warehouse, WriteFence, WriteFenced
from phase3ops.warehouse.sql import date_literal, quote

log = logging.getLogger("phase3ops.analytics")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ShrinkHeld(RuntimeError):
    """The run would remove too much of a date's rows and the guard says hold: ask Pub/Sub to deliver
    it again later (the upstream data may still be landing)."""


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
        dependencies: CompletedDependencies | None = None,
    ):
        check_implemented(spec)
        self.spec = spec
        self.warehouse = warehouse
        self.locks = locks
        self.completions = completions
        self.clock = clock
        self.dependencies = dependencies

    def prepare(self) -> None:
        """Create the output tables and the write fences that do not exist yet (once, at start-up)."""
        self.warehouse.ensure_tables([*(p.table for p in self.spec.processors), self.spec.analytics.write_fences])

    def run(
        self,
        processor_name: str,
        game_date: dt.date,
        correlation_id: str | None = None,
        trigger_message_id: str | None = None,
        allow_shrink: bool = False,
    ) -> RunResult:
        processor = self.spec.processor(processor_name)
        waiting_for = self.dependencies.missing(processor, game_date) if self.dependencies is not None else []
        if waiting_for:
            log.warning(
                "%s %s: waits for %s",
                processor.name,
                game_date,
                ", ".join(waiting_for),
                extra={
                    "event": "processor_waiting_for_dependencies",
                    "processor": processor.name,
                    "game_date": game_date.isoformat(),
                    "waiting_for": waiting_for,
                },
            )
            raise WaitingForDependencies(
                f"{processor.name} {game_date} reads {', '.join(waiting_for)}, not complete for the date yet"
            )
        execution_id = f"{processor_name}-{game_date:%Y%m%d}-{uuid.uuid4().hex[:12]}"
        started = time.monotonic()
        with self.locks.acquire(processor_name, game_date) as lease:
            try:
                return self._run_holding(
                    processor, game_date, correlation_id, trigger_message_id, allow_shrink, lease, execution_id, started
                )
            except (LockLost, ShrinkHeld, CompletionPublishFailed):
                # Superseded (the successor reports the date), held for later, or written and not
                # reported (the redelivery reports it): none is a failed run.
                raise
            except Exception as exc:
                self._report_failure(
                    processor, game_date, execution_id, correlation_id, trigger_message_id, lease, exc, started
                )
                raise

    def _run_holding(
        self,
        processor: Processor,
        game_date: dt.date,
        correlation_id: str | None,
        trigger_message_id: str | None,
        allow_shrink: bool,
        lease: Any,
        execution_id: str,
        started: float,
    ) -> RunResult:
        query = query_for(processor.name)
        computed = self.warehouse.query(query.sql(self.spec, game_date))
        processed_at = self.clock()
        rows = keep_newest(({**row, FRESHNESS_COLUMN: processed_at} for row in computed), processor.primary_key)
        refusal = None if allow_shrink or not rows else self._shrink_verdict(processor, game_date, rows, execution_id)
        if refusal is not None:
            return self._refused(
                processor, game_date, execution_id, correlation_id, trigger_message_id, lease, refusal, started
            )
        lease.ensure_current()  # cheap early exit; the fence below is what guarantees it
        fence = WriteFence(self.spec.analytics.write_fences, lease.token, lease.owner, execution_id)
        try:
            self.warehouse.write_partition(processor.table, game_date, rows, fence=fence)
        except WriteFenced as exc:
            log.warning(
                "%s %s: superseded by a newer lock holder; nothing written, nothing published",
                processor.name,
                game_date,
                extra={
                    "event": "write_fenced",
                    "processor": processor.name,
                    "game_date": game_date.isoformat(),
                    "token": lease.token,
                    "owner": lease.owner,
                    "execution_id": execution_id,
                    "reason": str(exc),
                },
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
            metadata={
                "lock_token": lease.token,
                "lock_owner": lease.owner,
                "duplicates_dropped": len(computed) - len(rows),
                "rows_fingerprint": rows_fingerprint(rows),
            },
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
            extra={
                "event": "processor_run",
                **{k: str(v) if isinstance(v, dt.date) else v for k, v in vars(result).items()},
            },
        )
        return result

    def _shrink_verdict(
        self, processor: Processor, game_date: dt.date, rows: Sequence[Mapping[str, Any]], execution_id: str
    ) -> str | None:
        """None when the write may go ahead; else why it may not (the guard's action is `refuse`).
        Raises ShrinkHeld when the action is `hold`."""
        guard = self.spec.analytics.shrink_guard
        if guard.action == "off":
            return None
        key = processor.primary_key
        existing = self.warehouse.query(
            f"SELECT {', '.join(quote(c) for c in key)} FROM {quote(processor.table.dataset, processor.table.name)} "
            f"WHERE {PARTITION_COLUMN} = {date_literal(game_date)}"
        )
        if not existing:
            return None
        kept = {tuple(_plain(row[c]) for c in key) for row in rows}
        removed = sum(1 for row in existing if tuple(_plain(row[c]) for c in key) not in kept)
        share = removed / len(existing)
        if share <= guard.max_removed_fraction:
            return None
        why = (
            f"{processor.table.qualified_name} {game_date}: this run would remove {removed} of the date's {len(existing)} rows "
            f"({share:.0%}, the guard allows {guard.max_removed_fraction:.0%}); partial upstream data?"
        )
        fields = {
            "event": "write_shrink",
            "processor": processor.name,
            "game_date": game_date.isoformat(),
            "removed": removed,
            "existing": len(existing),
            "action": guard.action,
            "execution_id": execution_id,
        }
        if guard.action == "alert":
            log.error("%s; written anyway (shrink_guard: alert)", why, extra=fields)
            return None
        if guard.action == "hold":
            log.warning("%s; held: Pub/Sub delivers it again later (shrink_guard: hold)", why, extra=fields)
            raise ShrinkHeld(why)
        log.error("%s; refused, nothing written (shrink_guard: refuse)", why, extra=fields)
        return why

    def _report_failure(
        self, processor, game_date, execution_id, correlation_id, trigger_message_id, lease, error, started
    ) -> None:
        """A run that failed says so, with its error, as the reference processors do: the orchestrator
        records it (it never un-completes a success) and the analytics SLO counts it. If even that
        publish fails, the service's 500 and its log line are all that is left."""
        try:
            self._publish_failed(
                processor,
                game_date,
                execution_id,
                correlation_id,
                trigger_message_id,
                lease,
                started,
                error=f"{type(error).__name__}: {error}",
            )
        except CompletionPublishFailed as exc:
            log.warning("%s %s: the failure could not be reported: %s", processor.name, game_date, exc)

    def _refused(
        self, processor, game_date, execution_id, correlation_id, trigger_message_id, lease, why, started
    ) -> RunResult:
        """Nothing written; the run is reported as failed, which never un-completes an earlier success."""
        message_id = self._publish_failed(
            processor,
            game_date,
            execution_id,
            correlation_id,
            trigger_message_id,
            lease,
            started,
            refused="shrink_guard",
            error_message=why,
        )
        return RunResult(processor.name, game_date, "failed", 0, 0, execution_id, lease.token, message_id)

    def _publish_failed(
        self,
        processor,
        game_date,
        execution_id,
        correlation_id,
        trigger_message_id,
        lease,
        started,
        error: str | None = None,
        **metadata: Any,
    ) -> str:
        return self.completions.publish(
            processor=processor,
            game_date=game_date,
            status="failed",
            execution_id=execution_id,
            correlation_id=correlation_id,
            record_count=0,
            duration_seconds=time.monotonic() - started,
            trigger_message_id=trigger_message_id,
            metadata={"lock_token": lease.token, "lock_owner": lease.owner, **metadata},
            error=error,
        )


def rows_fingerprint(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows' content, whenever they were computed: equal for runs that wrote the same rows."""
    canonical = sorted(
        json.dumps({k: v for k, v in row.items() if k != FRESHNESS_COLUMN}, sort_keys=True, default=str) for row in rows
    )
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()


def _plain(value: Any) -> Any:
    """A key value as both engines return it (DuckDB gives a date, a computation may give a string)."""
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value
