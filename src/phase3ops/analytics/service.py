"""The analytics Cloud Run service: a Pub/Sub push endpoint that runs processors.

POST /   body: the standard push envelope
         {"message": {"data": base64(JSON), "messageId": ..., "attributes": {...}}, "subscription": ...}
         data: {"game_date": "YYYY-MM-DD", "processors": [optional names], "correlation_id": optional,
                "allow_shrink": optional, true to write a run that removes many of a date's rows}
         One named processor: it runs. None (all five) or several: the message
         is split into one message per processor on the same topic, so every
         request is one bounded run (see fan_out.py).
GET  /healthz

Pub/Sub treats any answer but 2xx as "deliver again" (and, after the
subscription's max attempts, dead-letters the message), so:
- 200: the processor ran and published its completion, or the message was split;
- 200 with `"rejected": true`: the message can never be processed (bad JSON, an
  implausible date, an unknown or repeated processor, ...): it is stored in
  the rejected collection (bounded, as the orchestrator stores a bad
  completion), logged at ERROR and acknowledged, so Pub/Sub does not
  redeliver it five times into the dead-letter topic;
- 400: the body is not a Pub/Sub push envelope at all (stored the same way);
- 401: the push token is missing or wrong; 503 when Google's certificates to
  check it could not be fetched (Pub/Sub retries);
- 503: a processor lock stayed busy, what it reads (`after:`) is not complete yet, or the run would remove too much of a
  date's rows (the shrink guard holds it); 409: the run lost its lock to a
  newer run (the warehouse refused its write); 500: anything else failed.
  All are retried; a retry runs under a new lock with the newest data.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify, request

from phase3ops.analytics.dependencies import WaitingForDependencies
from phase3ops.analytics.fan_out import PerProcessorFanOut
from phase3ops.analytics.push_auth import AuthUnavailable, PushAuth, Unauthorized
from phase3ops.analytics.runner import ProcessorRunner, ShrinkHeld
from phase3ops.input_bounds import (
    EXCERPT_CHARS,
    REASON_CHARS,
    OutOfBounds,
    bounded_text,
    capped,
    load_json,
    printable,
    quoted,
)
from phase3ops.input_bounds import game_date as bounded_game_date
from phase3ops.locking.lease_lock import LockBusy, LockLost
from phase3ops.rejected_messages import RejectedMessages

log = logging.getLogger("phase3ops.analytics.service")


class BadPush(ValueError):
    def __init__(self, reason: str, field: str = ""):
        super().__init__(reason)
        self.reason, self.field = capped(reason, REASON_CHARS), capped(field, 200)


@dataclass(frozen=True)
class Push:
    game_date: dt.date
    processors: list[str]
    correlation_id: str | None
    message_id: str
    allow_shrink: bool = False  # an operator's re-run after a real correction: the shrink guard lets it write


MAX_CORRELATION_ID_CHARS = 500  # the completion message's limit: a longer id would get the run's completion rejected
MAX_MESSAGE_ID_CHARS = 256


def parse_push(body: Any, known_processors: tuple[str, ...], today: dt.date | None = None) -> Push:
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        raise BadPush("body is not a Pub/Sub push envelope (no 'message' object)", "message")
    message = body["message"]
    message_id = message.get("messageId") or message.get("message_id") or ""
    message_id = str(message_id) if isinstance(message_id, int) and not isinstance(message_id, bool) else message_id
    # The text itself, once checked: never None, as it defaults to "".
    message_id = _bounded(bounded_text, message_id, "message.messageId", MAX_MESSAGE_ID_CHARS)
    if "data" not in message:
        raise BadPush("the message has no data", "message.data")
    try:
        raw = base64.b64decode(message["data"], validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise BadPush(f"message data is not base64-encoded JSON: {exc}", "message.data") from None
    try:
        data = load_json(raw, "message.data")
    except OutOfBounds as out:
        raise BadPush(f"message data is not base64-encoded JSON: {out.reason}", out.field) from None
    if not isinstance(data, dict):
        raise BadPush("message data must be a JSON object", "message.data")
    if "game_date" not in data:
        raise BadPush("'game_date' is required", "game_date")
    game_date = _bounded(bounded_game_date, data["game_date"], "game_date", today)
    processors = _processors(data.get("processors"), known_processors)
    correlation_id = _bounded(bounded_text, data.get("correlation_id"), "correlation_id", MAX_CORRELATION_ID_CHARS)
    allow_shrink = data.get("allow_shrink", False)
    if not isinstance(allow_shrink, bool):
        raise BadPush("'allow_shrink' must be true or false", "allow_shrink")
    return Push(game_date, processors, correlation_id, message_id, allow_shrink)


def _processors(named: Any, known: tuple[str, ...]) -> list[str]:
    """None (or no field) runs every processor; otherwise a list naming each at most once."""
    if named is None:
        return list(known)
    if not isinstance(named, list) or not named or not all(isinstance(p, str) for p in named):
        raise BadPush(
            f"'processors' must be a non-empty list of processor names (leave it out to run all), got {quoted(named)}",
            "processors",
        )
    unknown = [p for p in named if p not in known]
    if unknown:
        shown = ", ".join(quoted(p, 60) for p in unknown[:5])
        raise BadPush(
            f"unknown processors [{shown}]{' and more' if len(unknown) > 5 else ''} (known: {', '.join(known)})",
            "processors",
        )
    if len(set(named)) != len(named):
        raise BadPush("'processors' names a processor more than once", "processors")
    return named


def _bounded(check, *args: Any) -> Any:
    try:
        return check(*args)
    except OutOfBounds as out:
        raise BadPush(out.reason, out.field) from None


def create_app(
    runner: ProcessorRunner, auth: PushAuth, fan_out: PerProcessorFanOut, rejected: RejectedMessages
) -> Flask:
    app = Flask("nba-phase3-analytics-processors")

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", processors=list(runner.spec.processor_names))

    @app.post("/")
    def push():
        try:
            auth.check(request.headers.get("Authorization"))
        except Unauthorized as exc:
            log.warning("push refused: %s", exc, extra={"event": "push_unauthorized"})
            return jsonify(error=str(exc)), 401
        except AuthUnavailable as exc:  # Google's certificates could not be fetched: the push may be fine
            log.warning("push not verified: %s", exc, extra={"event": "push_auth_unavailable"})
            return jsonify(error=str(exc)), 503
        body = _request_json()
        try:
            push = parse_push(body, runner.spec.processor_names)
        except BadPush as bad:
            return _refuse(bad, body, rejected)
        game_date, processors, correlation_id, message_id = (
            push.game_date,
            push.processors,
            push.correlation_id,
            push.message_id,
        )
        if len(processors) != 1:
            try:
                ids = fan_out.split(
                    game_date,
                    processors,
                    correlation_id or message_id,
                    split_from=message_id,
                    allow_shrink=push.allow_shrink,
                )
            except Exception as exc:
                log.error(
                    "%s: %s", game_date, exc, extra={"event": "fan_out_failed", "game_date": game_date.isoformat()}
                )
                return jsonify(error=str(exc)), 500
            log.info(
                "%s: split into %d messages, one per processor",
                game_date,
                len(ids),
                extra={
                    "event": "trigger_split",
                    "game_date": game_date.isoformat(),
                    "processors": processors,
                    "message_ids": ids,
                },
            )
            return jsonify(
                game_date=game_date.isoformat(),
                split=[{"processor": p, "message_id": i} for p, i in zip(processors, ids)],
            )
        results = []
        for name in processors:
            try:
                results.append(
                    runner.run(
                        name,
                        game_date,
                        correlation_id or message_id,
                        trigger_message_id=message_id,
                        allow_shrink=push.allow_shrink,
                    )
                )
            except LockBusy as exc:
                log.warning(
                    "%s %s: %s", name, game_date, exc, extra={"event": "processor_lock_busy", "processor": name}
                )
                return jsonify(error=str(exc), processor=name), 503
            except (
                ShrinkHeld
            ) as exc:  # logged by the runner; delivered again later, when the upstream data may be complete
                return jsonify(error=str(exc), processor=name), 503
            except (
                WaitingForDependencies
            ) as exc:  # logged by the runner; delivered again once what it reads may be complete
                return jsonify(error=str(exc), processor=name, waiting=True), 503
            except LockLost as exc:
                log.warning(
                    "%s %s: %s", name, game_date, exc, extra={"event": "processor_lock_lost", "processor": name}
                )
                return jsonify(error=str(exc), processor=name), 409
            except Exception as exc:
                log.exception(
                    "%s %s failed",
                    name,
                    game_date,
                    extra={"event": "processor_failed", "processor": name, "game_date": game_date.isoformat()},
                )
                return jsonify(error=f"{type(exc).__name__}: {exc}", processor=name), 500
        return jsonify(
            game_date=game_date.isoformat(),
            results=[
                {"processor": r.processor, "status": r.status, "rows": r.record_count, "execution_id": r.execution_id}
                for r in results
            ],
        )

    return app


def _request_json() -> Any:
    """The request body as JSON, or None when it is not (Flask's reader raises RecursionError on deep nesting)."""
    try:
        return load_json(request.get_data())
    except OutOfBounds:
        return None


def _refuse(bad: BadPush, body: Any, rejected: RejectedMessages):
    """A push that can never be processed: stored, logged, and acknowledged (2xx) when it came
    from Pub/Sub, so it is not redelivered; a body that is not a push envelope gets a 400."""
    raw = request.get_data()
    message = body.get("message") if isinstance(body, dict) else None
    envelope = isinstance(message, dict)
    message_id = message.get("messageId") if isinstance(message, dict) else None
    stored = rejected.store(
        _message_bytes(message) if isinstance(message, dict) else raw,
        bad.reason,
        bad.field,
        message_id if isinstance(message_id, str) and message_id else None,
        attributes=message.get("attributes") if isinstance(message, dict) else None,
        extra={"subscription": printable(str(body.get("subscription")), 300)} if envelope else None,
    )
    log.error(
        "bad push request: %s",
        bad.reason,
        extra={
            "event": "push_rejected",
            "field": bad.field,
            "stored_as": stored,
            "body": printable(raw[:EXCERPT_CHARS].decode("utf-8", "replace"), EXCERPT_CHARS),
        },
    )
    return jsonify(error=bad.reason, field=bad.field, rejected=True, stored_as=stored), (200 if envelope else 400)


def _message_bytes(message: dict[str, Any]) -> bytes:
    """The message's own data when it decodes, else the envelope's message as sent."""
    try:
        return base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        return request.get_data()


def create_app_from_environment(arm: Callable[[ProcessorRunner], None] | None = None) -> Flask:
    """Gunicorn's app factory: `gunicorn 'phase3ops.analytics.service:create_app_from_environment()'`.
    `arm`: the local chaos day's fault injection (phase3ops.local.chaos_analytics_service), never deployed."""
    from phase3ops.analytics.factory import build_fan_out, build_rejected_pushes, build_runner
    from phase3ops.logs import configure_json_logging
    from phase3ops.spec.pipeline import load_pipeline_spec

    configure_json_logging()
    spec = load_pipeline_spec()
    runner = build_runner(spec)
    runner.prepare()
    if arm is not None:
        arm(runner)
    return create_app(runner, PushAuth.from_environment(), build_fan_out(spec), build_rejected_pushes(spec))
