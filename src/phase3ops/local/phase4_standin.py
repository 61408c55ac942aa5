"""A local stand-in for the Phase 4 precompute service: its push contract, the duplicate guard, and a ledger.

Phase 4 is another team's service; locally something must receive the
triggers the way it does, so a game day shows whether Phase 4 would have
accepted them. This enforces what the running service's `/process`
endpoint reads (the reference wire contracts): a Pub/Sub push envelope, a
JSON body, `source_table` (400 without it), `analysis_date` or `game_date`
as YYYY-MM-DD, `success` a boolean when present, and the string fields
`correlation_id`, `trigger_source`, `triggered_by` when present.

It installs the duplicate guard (phase4_guard.py) exactly as Phase 4's
owners would, with its two lines, so a second message for one
(trigger_id, source_table) is a no-op. Every message received is appended to
a JSON-lines ledger with what became of it (the answer, and whether it
started the work), so a day can show, per (game date, source table), how many
messages Phase 4 received and how many times its work ran.

Never deployed: the cloud has the real service.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flask import Flask, g, jsonify, make_response, request

from phase3ops.phase4_guard import GUARD_COLLECTION, guard_triggers, trigger_key

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
        "follow_up": bool(body.get("is_follow_up")),
    }


@dataclass
class TableTally:
    received: int = 0  # messages Phase 4 was handed and acknowledged
    work_started: int = 0  # times its work ran

    @property
    def duplicate_work(self) -> int:
        return max(self.work_started - 1, 0)


def ledger_entries(ledger: Path) -> list[dict[str, Any]]:
    if not ledger.is_file():
        return []
    return [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]


def tally(ledger: Path) -> dict[tuple[str, str], TableTally]:
    """Per (game date, source table): acknowledged messages received, and work started."""
    counts: dict[tuple[str, str], TableTally] = collections.defaultdict(TableTally)
    for entry in ledger_entries(ledger):
        if entry.get("game_date") and entry.get("source_table") and 200 <= entry["status"] < 300:
            counts[(entry["game_date"], entry["source_table"])].received += 1
            counts[(entry["game_date"], entry["source_table"])].work_started += int(entry["work_started"])
    return dict(counts)


def accepted_counts(ledger: Path) -> dict[tuple[str, str], int]:
    """How many times Phase 4's work ran per (game date, source table)."""
    return {key: t.work_started for key, t in tally(ledger).items() if t.work_started}


def _recording(ledger: Path) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Append every message the endpoint is handed to the ledger, with what became of it."""
    write = threading.Lock()

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            g.work_started = False
            response = make_response(view(*args, **kwargs))
            envelope = request.get_json(silent=True)
            key, message_id = trigger_key(envelope)
            body = response.get_json(silent=True) or {}
            entry = {
                "game_date": key.game_date if key else body.get("game_date"),
                "source_table": key.source_table if key else body.get("source_table"),
                "trigger_id": key.trigger_id if key else None,
                "message_id": message_id,
                "status": response.status_code,
                "verdict": body.get("status"),
                "work_started": bool(g.work_started),
                "follow_up": bool(body.get("follow_up")),
                "received_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            }
            with write, open(ledger, "a") as out:
                out.write(json.dumps(entry) + "\n")
            return response

        return recorded

    return decorate


def create_app(ledger: Path, firestore_client=None) -> Flask:
    app = Flask("phase4-standin")
    ledger.parent.mkdir(parents=True, exist_ok=True)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/process")
    @_recording(ledger)
    @guard_triggers(firestore_client, GUARD_COLLECTION)  # the guard, installed as Phase 4 would install it
    def process():
        try:
            accepted = check_trigger(request.get_json(silent=True))
        except ContractViolation as violation:
            return jsonify(error=violation.reason, field=violation.field), 400
        g.work_started = True  # Phase 4's work for (date, table) would run here
        return jsonify(status="accepted", **accepted)

    @app.get("/accepted")
    def accepted():
        return jsonify(
            [{"game_date": d, "source_table": t, "received": c.received, "work_started": c.work_started}
             for (d, t), c in sorted(tally(ledger).items())]
        )  # fmt: skip

    return app


def create_app_from_environment() -> Flask:
    """Gunicorn's app factory."""
    return create_app(Path(os.environ[LEDGER_ENV]))
