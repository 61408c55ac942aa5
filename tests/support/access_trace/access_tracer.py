"""The tracer sitecustomize installs (see there): wraps the warehouse and the gRPC channels."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

_TABLE = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)`")
_WRITE_TARGET = re.compile(
    r"^\s*(?:MERGE(?:\s+INTO)?|INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+(?:OR\s+REPLACE\s+)?TABLE(?:\s+IF\s+NOT\s+EXISTS)?"
    r"|DROP\s+TABLE(?:\s+IF\s+EXISTS)?)\s+`([A-Za-z_][A-Za-z0-9_]*)\.",
    re.IGNORECASE | re.MULTILINE,
)
_DOCUMENTS = "/documents/"


def workload_of(argv: list[str]) -> str | None:
    """Which deployed workload this process stands for, from how the local environment starts it."""
    line = " ".join(argv)
    if "--target=record_phase4_trigger_receipt" in line:
        return "receipts"
    if "functions_framework" in line or "--target=handle_phase3_completion" in line:
        return "orchestrator"
    if "gunicorn" in line and "analytics" in line:
        return "analytics"
    if "phase3ops.cli" in line or (argv and argv[0].endswith("phase3ops")):
        words = [w for w in argv if not w.startswith("-")]
        command = next((w for w in words if w in ("health", "reconcile", "holds")), None)
        # The scheduled jobs' commands run as the identities the stack gives them (pipeline.yaml scheduled_checks).
        return {"health": "health_check", "reconcile": "reconcile", "holds": "reconcile"}.get(command or "")
    return None


class Recorder:
    def __init__(self, directory: str, workload: str):
        self.path = Path(directory) / f"{os.getpid()}.jsonl"
        self.workload = workload
        self.seen: set[tuple[str, str, str]] = set()
        self.lock = threading.Lock()

    def record(self, service: str, verb: str, resource: str) -> None:
        key = (service, verb, resource)
        with self.lock:
            if key in self.seen:
                return
            self.seen.add(key)
            entry = {"workload": self.workload, "service": service, "verb": verb, "resource": resource}
            with self.path.open("a") as out:
                out.write(json.dumps(entry) + "\n")


def _statement(recorder: Recorder, sql: str) -> None:
    written = {m.group(1) for m in _WRITE_TARGET.finditer(sql)}
    for dataset in written:
        recorder.record("bigquery", "write", dataset)
    for dataset, _table in _TABLE.findall(sql):
        if dataset not in written:
            recorder.record("bigquery", "read", dataset)


def _trace_warehouse(recorder: Recorder) -> None:
    from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse

    execute, run_fenced = DuckDBWarehouse.execute, DuckDBWarehouse.run_fenced
    load_staging, ensure_tables = DuckDBWarehouse.load_staging, DuckDBWarehouse.ensure_tables

    def traced_execute(self, bigquery_sql):
        _statement(recorder, bigquery_sql)
        return execute(self, bigquery_sql)

    def traced_run_fenced(self, fence_statement, statements, refusal):
        for statement in (fence_statement, *statements):
            _statement(recorder, statement)
        return run_fenced(self, fence_statement, statements, refusal)

    def traced_load_staging(self, table, staging, rows):
        recorder.record("bigquery", "write", table.dataset)
        return load_staging(self, table, staging, rows)

    def traced_ensure_tables(self, tables):
        tables = list(tables)
        for table in tables:
            recorder.record("bigquery", "write", table.dataset)
        return ensure_tables(self, tables)

    DuckDBWarehouse.execute = traced_execute  # type: ignore[method-assign]
    DuckDBWarehouse.run_fenced = traced_run_fenced  # type: ignore[method-assign]
    DuckDBWarehouse.load_staging = traced_load_staging  # type: ignore[method-assign]
    DuckDBWarehouse.ensure_tables = traced_ensure_tables  # type: ignore[method-assign]


def _collection(document_or_parent: str) -> str | None:
    """projects/p/databases/(default)/documents/<collection>/<id>/... -> <collection>."""
    if _DOCUMENTS not in document_or_parent:
        return None
    rest = document_or_parent.split(_DOCUMENTS, 1)[1]
    return rest.split("/", 1)[0] or None


def _firestore(recorder: Recorder, method: str, request: Any) -> None:
    name = method.rsplit("/", 1)[-1]
    if name in ("Commit", "BatchWrite"):
        for write in request.writes:
            path = write.update.name or write.delete or write.transform.document
            if (collection := _collection(path)) is not None:
                recorder.record("firestore", "write", collection)
    elif name == "BatchGetDocuments":
        for document in request.documents:
            if (collection := _collection(document)) is not None:
                recorder.record("firestore", "read", collection)
    elif name == "GetDocument":
        if (collection := _collection(request.name)) is not None:
            recorder.record("firestore", "read", collection)
    elif name in ("RunQuery", "RunAggregationQuery"):
        query = (
            request.structured_query if name == "RunQuery" else request.structured_aggregation_query.structured_query
        )
        for source in query.from_:
            recorder.record("firestore", "read", source.collection_id)
    elif name == "ListDocuments":
        recorder.record("firestore", "read", request.collection_id)


def _pubsub(recorder: Recorder, method: str, request: Any) -> None:
    name = method.rsplit("/", 1)[-1]
    if name == "Publish":
        recorder.record("pubsub", "publish", request.topic.rsplit("/", 1)[-1])
    elif name in ("Pull", "Acknowledge", "ModifyAckDeadline"):
        recorder.record("pubsub", "subscribe", request.subscription.rsplit("/", 1)[-1])


def _note(recorder: Recorder, method: str, request: Any) -> None:
    try:
        if method.startswith("/google.firestore.v1."):
            _firestore(recorder, method, request)
        elif method.startswith("/google.pubsub.v1."):
            _pubsub(recorder, method, request)
    except Exception as exc:  # a tracer bug must show, not pass silently as "nothing touched"
        recorder.record("tracer", "error", f"{method}: {type(exc).__name__}: {exc}")


def _trace_channels(recorder: Recorder) -> None:
    """Every channel through one interceptor, its class made once per process: grpc tells unary from
    streaming interceptors by isinstance against its abstract classes, and a class made anew per
    channel was one more short-lived abstract subclass for every such check to walk."""
    import grpc

    class Interceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            _note(recorder, details.method, request)
            return continuation(details, request)

        def intercept_unary_stream(self, continuation, details, request):
            _note(recorder, details.method, request)
            return continuation(details, request)

    insecure = grpc.insecure_channel
    interceptor = Interceptor()

    def traced_insecure_channel(target, options=None, compression=None):
        return grpc.intercept_channel(insecure(target, options, compression), interceptor)

    grpc.insecure_channel = traced_insecure_channel  # the emulators' clients connect through it


def install(directory: str) -> None:
    # sys.argv is not final while site imports (under -m it is ['-m', ...]); the command line as given is.
    workload = workload_of(sys.orig_argv[1:])
    if workload is None:
        return
    recorder = Recorder(directory, workload)
    _trace_channels(recorder)
    _trace_warehouse(recorder)
