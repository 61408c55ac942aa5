"""A local stand-in for the Phase 4 precompute service: its push contract, and a ledger of what it accepted.

Phase 4 is another team's service; locally something must receive the
triggers the way it does, so a game day shows whether Phase 4 would have
accepted them. This enforces what the running service's `/process`
endpoint reads (the reference wire contracts): a Pub/Sub push envelope, a
JSON body, `source_table` (400 without it), `analysis_date` or `game_date`
as YYYY-MM-DD, `success` a boolean when present, and the string fields
`correlation_id`, `trigger_source`, `triggered_by` when present. Each
accepted message is appended to a JSON-lines ledger; `GET /accepted`
counts them per (game date, source table), so a duplicate shows as a 2.

Never deployed: the cloud has the real service.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

LEDGER_ENV = "PHASE3OPS_PHASE4_LEDGER"


class ContractViolation(ValueError):
    def __init__(self, reason: str, field: str):
        super().__init__(reason)
        self.reason, self.field = reason, field


def check_trigger(envelope: Any) -> dict[str, Any]:
    """The push envelope's message as Phase 4 reads it, or ContractViolation."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        raise ContractViolation("No Pub/Sub message received", "message")
    message = envelope["message"]
    try:
        body = json.loads(base64.b64decode(message.get("data") or "", validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ContractViolation("Invalid Pub/Sub message format", "message.data") from None
    if not isinstance(body, dict):
        raise ContractViolation("No data in Pub/Sub message", "message.data")
    if not body.get("source_table"):
        raise ContractViolation("Missing source_table in message", "source_table")
    date_field = "analysis_date" if "analysis_date" in body else "game_date"
    try:
        dt.date.fromisoformat(str(body.get(date_field)))
    except ValueError:
        raise ContractViolation(f"{date_field} {body.get(date_field)!r} is not YYYY-MM-DD", date_field) from None
    if "success" in body and not isinstance(body["success"], bool):
        raise ContractViolation("success must be a boolean", "success")
    for name in ("correlation_id", "trigger_source", "triggered_by"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ContractViolation(f"{name} must be a string", name)
    return {
        "game_date": str(body.get(date_field)),
        "source_table": body["source_table"],
        "trigger_id": body.get("trigger_id") or (message.get("attributes") or {}).get("trigger_id"),
        "message_id": message.get("messageId") or message.get("message_id"),
        "success": body.get("success", True),
    }


def accepted_counts(ledger: Path) -> dict[tuple[str, str], int]:
    counts: collections.Counter = collections.Counter()
    if ledger.is_file():
        for line in ledger.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                counts[(entry["game_date"], entry["source_table"])] += 1
    return dict(counts)


def create_app(ledger: Path) -> Flask:
    app = Flask("phase4-standin")
    ledger.parent.mkdir(parents=True, exist_ok=True)
    write = threading.Lock()

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/process")
    def process():
        try:
            accepted = check_trigger(request.get_json(silent=True))
        except ContractViolation as violation:
            return jsonify(error=violation.reason, field=violation.field), 400
        entry = {**accepted, "received_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        with write, open(ledger, "a") as out:
            out.write(json.dumps(entry) + "\n")
        return jsonify(status="accepted", **accepted)

    @app.get("/accepted")
    def accepted():
        return jsonify([{"game_date": d, "source_table": t, "count": n} for (d, t), n in sorted(accepted_counts(ledger).items())])

    return app


def create_app_from_environment() -> Flask:
    """Gunicorn's app factory."""
    return create_app(Path(os.environ[LEDGER_ENV]))
