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
- 400: the envelope or its data can never be processed (the reason is in the body and the log);
- 401: the push token is missing or wrong;
- 503: a processor lock stayed busy, or the run would remove too much of a
  date's rows (the shrink guard holds it); 409: the run lost its lock to a
  newer run (the warehouse refused its write); 500: anything else failed.
  All are retried; a retry runs under a new lock with the newest data.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify, request

from phase3ops.analytics.fan_out import PerProcessorFanOut
from phase3ops.analytics.push_auth import PushAuth, Unauthorized
from phase3ops.analytics.runner import ProcessorRunner, ShrinkHeld
from phase3ops.locking.lease_lock import LockBusy, LockLost

log = logging.getLogger("phase3ops.analytics.service")


class BadPush(ValueError):
    def __init__(self, reason: str, field: str = ""):
        super().__init__(reason)
        self.reason, self.field = reason, field


@dataclass(frozen=True)
class Push:
    game_date: dt.date
    processors: list[str]
    correlation_id: str | None
    message_id: str
    allow_shrink: bool = False  # an operator's re-run after a real correction: the shrink guard lets it write


def parse_push(body: Any, known_processors: tuple[str, ...]) -> Push:
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        raise BadPush("body is not a Pub/Sub push envelope (no 'message' object)", "message")
    message = body["message"]
    message_id = str(message.get("messageId") or message.get("message_id") or "")
    if "data" not in message:
        raise BadPush("the message has no data", "message.data")
    try:
        data = json.loads(base64.b64decode(message["data"], validate=True))
    except (binascii.Error, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise BadPush(f"message data is not base64-encoded JSON: {exc}", "message.data") from None
    if not isinstance(data, dict):
        raise BadPush("message data must be a JSON object", "message.data")
    try:
        game_date = dt.date.fromisoformat(str(data["game_date"]))
    except KeyError:
        raise BadPush("'game_date' is required", "game_date") from None
    except ValueError:
        raise BadPush(f"{data['game_date']!r} is not a YYYY-MM-DD date", "game_date") from None
    processors = data.get("processors") or list(known_processors)
    if not isinstance(processors, list) or not all(isinstance(p, str) for p in processors):
        raise BadPush("'processors' must be a list of processor names", "processors")
    unknown = [p for p in processors if p not in known_processors]
    if unknown:
        raise BadPush(f"unknown processors {unknown} (known: {', '.join(known_processors)})", "processors")
    allow_shrink = data.get("allow_shrink", False)
    if not isinstance(allow_shrink, bool):
        raise BadPush("'allow_shrink' must be true or false", "allow_shrink")
    return Push(game_date, processors, data.get("correlation_id"), message_id, allow_shrink)


def create_app(runner: ProcessorRunner, auth: PushAuth, fan_out: PerProcessorFanOut) -> Flask:
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
        try:
            push = parse_push(request.get_json(silent=True), runner.spec.processor_names)
        except BadPush as exc:
            log.error(
                "bad push request: %s",
                exc.reason,
                extra={"event": "push_rejected", "field": exc.field, "body": request.get_data(as_text=True)[:4000]},
            )
            return jsonify(error=exc.reason, field=exc.field), 400
        game_date, processors, correlation_id, message_id = push.game_date, push.processors, push.correlation_id, push.message_id
        if len(processors) != 1:
            try:
                ids = fan_out.split(game_date, processors, correlation_id or message_id, split_from=message_id, allow_shrink=push.allow_shrink)
            except Exception as exc:
                log.error("%s: %s", game_date, exc, extra={"event": "fan_out_failed", "game_date": game_date.isoformat()})
                return jsonify(error=str(exc)), 500
            log.info(
                "%s: split into %d messages, one per processor", game_date, len(ids),
                extra={"event": "trigger_split", "game_date": game_date.isoformat(), "processors": processors, "message_ids": ids},
            )  # fmt: skip
            return jsonify(game_date=game_date.isoformat(), split=[{"processor": p, "message_id": i} for p, i in zip(processors, ids)])
        results = []
        for name in processors:
            try:
                results.append(
                    runner.run(name, game_date, correlation_id or message_id, trigger_message_id=message_id, allow_shrink=push.allow_shrink)
                )
            except LockBusy as exc:
                log.warning("%s %s: %s", name, game_date, exc, extra={"event": "processor_lock_busy", "processor": name})
                return jsonify(error=str(exc), processor=name), 503
            except ShrinkHeld as exc:  # logged by the runner; delivered again later, when the upstream data may be complete
                return jsonify(error=str(exc), processor=name), 503
            except LockLost as exc:
                log.warning("%s %s: %s", name, game_date, exc, extra={"event": "processor_lock_lost", "processor": name})
                return jsonify(error=str(exc), processor=name), 409
            except Exception as exc:
                log.exception("%s %s failed", name, game_date, extra={"event": "processor_failed", "processor": name, "game_date": game_date.isoformat()})
                return jsonify(error=f"{type(exc).__name__}: {exc}", processor=name), 500
        return jsonify(
            game_date=game_date.isoformat(),
            results=[{"processor": r.processor, "status": r.status, "rows": r.record_count, "execution_id": r.execution_id} for r in results],
        )

    return app


def create_app_from_environment() -> Flask:
    """Gunicorn's app factory: `gunicorn 'phase3ops.analytics.service:create_app_from_environment()'`."""
    from phase3ops.analytics.factory import build_fan_out, build_runner
    from phase3ops.logs import configure_json_logging
    from phase3ops.spec.pipeline import load_pipeline_spec

    configure_json_logging()
    spec = load_pipeline_spec()
    runner = build_runner(spec)
    runner.prepare()
    return create_app(runner, PushAuth.from_environment(), build_fan_out(spec))
