"""A local stand-in for the Phase 4 precompute service: its push contract, the duplicate guard, and a ledger.

Phase 4 is another team's service; locally something must receive the
triggers the way it does, so a game day shows whether Phase 4 would have
accepted them. This enforces what the running service's `/process`
endpoint reads (the reference wire contracts): a Pub/Sub push envelope, a
JSON body, `source_table` a non-empty string (400 without it),
`analysis_date` or `game_date` a strict YYYY-MM-DD (and a plausible game
date), `success` a boolean when present, and the string fields
`correlation_id`, `trigger_source`, `triggered_by` when present.

It installs the duplicate guard (phase4_guard.py) exactly as Phase 4's
owners would, with its two lines, so a second message for one
(trigger_id, source_table) is a no-op. Every message received is appended to
a JSON-lines ledger with what became of it (the answer, and whether it
started the work), so a day can show, per (game date, source table), how many
messages Phase 4 received and how many times its work ran.

A message that can never be valid is refused as Phase 4 refuses it (400,
kept in the ledger with its reason and a prefix, length and hash of its
bytes) and acknowledged to Pub/Sub with a 2xx: answering 400 would have the
emulator redeliver it forever. The 2xx is made outside the guard, which sees
the 400 and so never marks a refused message's trigger done. Every value the
ledger keeps is typed and bounded when written, and checked again when read:
a bad line is skipped and counted, never a reason for `/accepted` or
`local run-day` to fail.

Never deployed: the cloud has the real service.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import functools
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, g, jsonify, make_response, request

from phase3ops.input_bounds import (
    REASON_CHARS,
    OutOfBounds,
    bounded_text,
    capped,
    game_date,
    load_json,
    quoted,
    sha256_hex,
)
from phase3ops.phase4_guard import GUARD_COLLECTION, guard_triggers, trigger_key

log = logging.getLogger("phase4_standin")

LEDGER_ENV = "PHASE3OPS_PHASE4_LEDGER"
MAX_TEXT = 300  # source_table and the string fields Phase 4 reads
MAX_ID = 500  # trigger ids ("<topic>:<date>:<table>:late:<run>") and message ids, which the guard stores and logs
MAX_DEPTH = 32  # an envelope is 3 levels deep and a trigger's body 1; deeper JSON is hostile, and well short of
# the depth at which the guard's own JSON reads (deeper in the stack) would raise RecursionError
MAX_BODY_BYTES = 16 * 1024 * 1024  # a 10 MB Pub/Sub message, base64-encoded, in its envelope
LEDGER_PREFIX_BYTES = 1024  # what the ledger keeps of a refused message's bytes (plus length and hash)
MAX_LEDGER_LINE_BYTES = 64 * 1024  # the writer's lines are about 1.5 KB at most; longer ones are not its


class ContractViolation(ValueError):
    def __init__(self, reason: str, field: str):
        reason, field = capped(reason, REASON_CHARS), capped(field, 200)
        super().__init__(reason)
        self.reason, self.field = reason, field


def read_push(raw: bytes) -> Any:
    """The push envelope, or ContractViolation when the guard could not read it safely (not JSON,
    nested too deeply, a string it would store or log that is not bounded UTF-8) or its data is no
    JSON object (refused here as the handler would refuse it: the guard would key it on attributes alone)."""
    try:
        envelope = load_json(raw, "body")
    except OutOfBounds as exc:
        raise ContractViolation(f"the push body is not a JSON envelope: {exc.reason}", "body") from None
    _check_depth(envelope, "body")
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        return envelope  # the handler refuses it; the guard reads no key from it
    body = _message_body(message)
    raw_attributes = message.get("attributes")
    attributes = raw_attributes if isinstance(raw_attributes, dict) else {}
    guard_inputs = [("message.messageId", message.get("messageId")), ("message.message_id", message.get("message_id"))]
    guard_inputs += [(name, body.get(name)) for name in ("trigger_id", "source_table", "analysis_date", "game_date")]
    guard_inputs += [
        (f"message.attributes.{name}", attributes.get(name)) for name in ("trigger_id", "source_table", "game_date")
    ]
    for name, value in guard_inputs:
        if isinstance(value, str):
            try:
                bounded_text(value, name, MAX_ID)
            except OutOfBounds as exc:
                raise ContractViolation(exc.reason, name) from None
    return envelope


def _check_depth(value: Any, name: str) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise ContractViolation(f"JSON nested more than {MAX_DEPTH} levels deep", name)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))


def _message_body(message: dict) -> dict[str, Any]:
    """The message's data as a JSON object, or ContractViolation (with Phase 4's own reasons)."""
    data = message.get("data") or ""
    if not isinstance(data, str):
        raise ContractViolation(
            f"Invalid Pub/Sub message format: data is {quoted(data)}, not base64 text", "message.data"
        )
    try:
        body = load_json(base64.b64decode(data, validate=True), "message.data")
    except (binascii.Error, ValueError) as exc:  # OutOfBounds is a ValueError
        detail = exc.reason if isinstance(exc, OutOfBounds) else "data is not base64"
        raise ContractViolation(f"Invalid Pub/Sub message format: {detail}", "message.data") from None
    _check_depth(body, "message.data")
    if not isinstance(body, dict):
        raise ContractViolation("No data in Pub/Sub message", "message.data")
    return body


def check_trigger(envelope: Any) -> dict[str, Any]:
    """The push envelope's message as Phase 4 reads it, or ContractViolation; every value typed and bounded."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        raise ContractViolation("No Pub/Sub message received", "message")
    message = envelope["message"]
    attributes = message.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise ContractViolation(f"attributes must be a map, got {quoted(attributes)}", "message.attributes")
    attributes = attributes or {}
    body = _message_body(message)
    if not body.get("source_table"):
        raise ContractViolation("Missing source_table in message", "source_table")
    date_field = "analysis_date" if "analysis_date" in body else "game_date"
    try:
        source_table = bounded_text(body["source_table"], "source_table", MAX_TEXT, required=True)
        day = game_date(body.get(date_field), date_field)
    except OutOfBounds as exc:
        raise ContractViolation(exc.reason, exc.field) from None
    if "success" in body and not isinstance(body["success"], bool):
        raise ContractViolation("success must be a boolean", "success")
    for name in ("correlation_id", "trigger_source", "triggered_by"):
        try:
            bounded_text(body.get(name), name, MAX_TEXT)
        except OutOfBounds as exc:
            raise ContractViolation(f"{name} must be a string: {exc.reason}", name) from None
    return {
        "game_date": day.isoformat(),
        "source_table": source_table,
        # As the guard keys it: the body's, else the attribute's (read_push bounded both).
        "trigger_id": _text(body.get("trigger_id"), MAX_ID) or _text(attributes.get("trigger_id"), MAX_ID),
        "message_id": _text(message.get("messageId"), MAX_ID) or _text(message.get("message_id"), MAX_ID),
        "success": body.get("success", True),
        "follow_up": body.get("is_follow_up") is True,
    }


def _as_sent(envelope: Any) -> dict[str, Any]:
    """What a refused message said of itself, for its ledger entry (the entry keeps only the valid parts)."""
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        return {}
    try:
        body = _message_body(message)
    except ContractViolation:
        body = {}
    raw_attributes = message.get("attributes")
    attributes = raw_attributes if isinstance(raw_attributes, dict) else {}
    date = body.get("analysis_date") if "analysis_date" in body else body.get("game_date")
    return {
        "game_date": date,
        "source_table": body.get("source_table"),
        "trigger_id": body.get("trigger_id") or attributes.get("trigger_id"),
    }


def _text(value: Any, limit: int) -> str | None:
    """`value` when it is a non-empty string Firestore and a log line take within `limit`, else None."""
    try:
        return bounded_text(value, "", limit) or None
    except OutOfBounds:
        return None


def _date_text(value: Any) -> str | None:
    try:
        return game_date(value).isoformat()
    except OutOfBounds:
        return None


@dataclass
class TableTally:
    received: int = 0  # messages Phase 4 was handed and acknowledged
    work_started: int = 0  # times its work ran

    @property
    def duplicate_work(self) -> int:
        return max(self.work_started - 1, 0)


@dataclass
class Ledger:
    entries: list[dict[str, Any]] = field(default_factory=list)
    malformed: int = 0  # lines skipped: not a ledger entry of the types the writer writes


# field -> what a well-formed entry holds there (None for the optional strings)
_LEDGER_TEXT = {"source_table": MAX_TEXT, "trigger_id": MAX_ID, "message_id": MAX_ID, "verdict": 40, "received_at": 40}


def _ledger_entry(line: bytes) -> dict[str, Any] | None:
    """A ledger line as a typed entry, or None when it is not one (a crash's cut line, an older writer's object)."""
    if len(line) > MAX_LEDGER_LINE_BYTES:
        return None
    try:
        raw = load_json(line)
    except OutOfBounds:
        return None
    if not isinstance(raw, dict):
        return None
    status, work_started, follow_up = raw.get("status"), raw.get("work_started", False), raw.get("follow_up", False)
    if (
        type(status) is not int
        or not 100 <= status <= 599
        or not isinstance(work_started, bool)
        or not isinstance(follow_up, bool)
    ):
        return None
    day = raw.get("game_date")
    if day is not None and _date_text(day) is None:
        return None
    entry: dict[str, Any] = {"game_date": day, "status": status, "work_started": work_started, "follow_up": follow_up}
    for name, limit in _LEDGER_TEXT.items():
        value = raw.get(name)
        if value is not None and _text(value, limit) is None:
            return None
        entry[name] = value
    if isinstance(raw.get("refusal"), dict):
        entry["refusal"] = raw["refusal"]
    return entry


def read_ledger(ledger: Path) -> Ledger:
    if not ledger.is_file():
        return Ledger()
    read = Ledger()
    for line in ledger.read_bytes().splitlines():
        if not line.strip():
            continue
        entry = _ledger_entry(line)
        if entry is None:
            read.malformed += 1
        else:
            read.entries.append(entry)
    return read


def ledger_entries(ledger: Path) -> list[dict[str, Any]]:
    """The ledger's well-formed entries (see `read_ledger` for how many lines were not)."""
    return read_ledger(ledger).entries


def tally(ledger: Path) -> dict[tuple[str, str], TableTally]:
    """Per (game date, source table): acknowledged messages received, and work started."""
    return _tally(ledger_entries(ledger))


def _tally(entries: list[dict[str, Any]]) -> dict[tuple[str, str], TableTally]:
    counts: dict[tuple[str, str], TableTally] = collections.defaultdict(TableTally)
    for entry in entries:
        if entry["game_date"] and entry["source_table"] and 200 <= entry["status"] < 300:
            counts[(entry["game_date"], entry["source_table"])].received += 1
            counts[(entry["game_date"], entry["source_table"])].work_started += int(entry["work_started"])
    return dict(counts)


def accepted_counts(ledger: Path) -> dict[tuple[str, str], int]:
    """How many times Phase 4's work ran per (game date, source table)."""
    return {key: t.work_started for key, t in tally(ledger).items() if t.work_started}


def _recording(ledger: Path) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Append every message the endpoint is handed to the ledger, with what became of it; answer
    Pub/Sub 2xx for a refusal (outside the guard, which must see the 400)."""
    write = threading.Lock()

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            g.work_started, g.accepted, g.refusal, g.envelope = False, None, None, None
            raw = request.get_data(cache=True)
            try:
                # Read here first: the guard's and Flask's own JSON reads raise RecursionError (a 500) on deep JSON.
                g.envelope = read_push(raw) if request.is_json else None
            except ContractViolation as violation:
                g.refusal, response = violation, None
            else:
                response = make_response(view(*args, **kwargs))
            status = response.status_code if response is not None else 400
            entry = _entry_for(status, response, raw)
            with write, open(ledger, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")
            if g.refusal is not None and status == 400:
                refusal = g.refusal
                return jsonify(status="refused", phase4_status=400, error=refusal.reason, field=refusal.field), 200
            return response

        return recorded

    return decorate


def _entry_for(status: int, response: Any, raw: bytes) -> dict[str, Any]:
    key, message_id = trigger_key(g.envelope) if g.envelope is not None else (None, None)
    if g.refusal is not None:
        key = None  # the guard's key falls back to names the message did not send ("date" for its table)
    accepted = g.accepted or _as_sent(g.envelope)
    answer = response.get_json(silent=True) if response is not None else None
    verdict = answer.get("status") if isinstance(answer, dict) else None
    entry: dict[str, Any] = {
        "game_date": _date_text(key.game_date if key else accepted.get("game_date")),
        "source_table": _text(key.source_table if key else accepted.get("source_table"), MAX_TEXT),
        "trigger_id": _text(key.trigger_id if key else accepted.get("trigger_id"), MAX_ID),
        "message_id": _text(message_id, MAX_ID),
        "status": status,
        "verdict": "refused" if g.refusal is not None else _text(verdict, 40),
        "work_started": bool(g.work_started),
        "follow_up": bool(accepted.get("follow_up")),
        "received_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    if g.refusal is not None:
        entry["refusal"] = {
            "reason": g.refusal.reason,
            "field": g.refusal.field,
            "body_prefix": base64.b64encode(raw[:LEDGER_PREFIX_BYTES]).decode(),
            "body_length": len(raw),
            "body_sha256": sha256_hex(raw),
        }
    return entry


def create_app(ledger: Path, firestore_client=None) -> Flask:
    app = Flask("phase4-standin")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    ledger.parent.mkdir(parents=True, exist_ok=True)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/process")
    @_recording(ledger)
    @guard_triggers(firestore_client, GUARD_COLLECTION)  # the guard, installed as Phase 4 would install it
    def process():
        try:
            accepted = check_trigger(g.envelope)
        except ContractViolation as violation:
            g.refusal = violation
            return jsonify(error=violation.reason, field=violation.field), 400
        g.accepted = accepted
        g.work_started = True  # Phase 4's work for (date, table) would run here
        return jsonify(status="accepted", **accepted)

    @app.get("/accepted")
    def accepted():
        read = read_ledger(ledger)
        response = jsonify(
            [
                {"game_date": d, "source_table": t, "received": c.received, "work_started": c.work_started}
                for (d, t), c in sorted(_tally(read.entries).items())
            ]
        )
        if read.malformed:
            log.warning("the ledger %s has %d malformed lines, skipped", ledger, read.malformed)
            response.headers["X-Ledger-Malformed-Lines"] = str(read.malformed)
        return response

    return app


def create_app_from_environment() -> Flask:
    """Gunicorn's app factory."""
    return create_app(Path(os.environ[LEDGER_ENV]))
