"""Structured logs: one JSON object per line on stdout.

Cloud Run and Cloud Functions gen2 turn such a line into a LogEntry whose
`severity` is the level and whose other keys land in `jsonPayload`, which is
what the log-based metrics under `alerts/` match on (for example
`jsonPayload.event="phase4_trigger" AND jsonPayload.outcome="triggered"`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, sort_keys=False)


def configure_json_logging(level: int = logging.INFO, stream=None) -> None:
    """Idempotent: the function entry point calls it on every cold start.

    The CLI logs to stderr (its report is on stdout); Cloud Run jobs collect both.
    """
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonLineFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLineFormatter())
    root.addHandler(handler)
    root.setLevel(level)
