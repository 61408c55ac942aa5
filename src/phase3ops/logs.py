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
import math
import sys
import threading
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Cloud Logging drops an entry over 256 KB, and lines quote what arrived (a rejected message's
# reason, an excerpt of its bytes): every string is capped, and a line still too long is cut harder.
FIELD_CHARS = 16 * 1024
ITEMS = 200  # of a list or a mapping in a field
LINE_BYTES = 200 * 1024


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        line = json.dumps(_bounded(entry, FIELD_CHARS), default=str, sort_keys=False)
        if len(line) > LINE_BYTES:  # many capped fields together: cut each harder
            line = json.dumps(_bounded(entry, 1024), default=str, sort_keys=False)
        return line


def _bounded(value: Any, chars: int, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= chars else f"{value[:chars]}... ({len(value) - chars} more characters)"
    if depth > 8:
        return _bounded(repr(value), chars)
    if isinstance(value, dict):
        return {_bounded(str(k), 200): _bounded(v, chars, depth + 1) for k, v in list(value.items())[:ITEMS]}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_bounded(v, chars, depth + 1) for v in list(value)[:ITEMS]]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):  # beyond int64, str() itself may refuse (Python's 4,300-digit limit)
        return value if -(2**63) <= value < 2**63 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # NaN is not JSON
    return _bounded(str(value), chars)


_configuring = threading.Lock()


def configure_json_logging(level: int = logging.INFO, stream=None) -> None:
    """Idempotent, also when a cold start's first requests call it on several threads at once (a
    second handler would write every line twice, and every log-based metric would count it twice).

    The CLI logs to stderr (its report is on stdout); Cloud Run jobs collect both.
    """
    root = logging.getLogger()
    with _configuring:
        if any(isinstance(h.formatter, JsonLineFormatter) for h in root.handlers):
            return
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(JsonLineFormatter())
        root.addHandler(handler)
        root.setLevel(level)
