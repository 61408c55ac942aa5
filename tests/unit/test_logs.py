"""Log lines are single JSON objects Cloud Logging turns into jsonPayload + severity."""

from __future__ import annotations

import json
import logging

from phase3ops.logs import JsonLineFormatter


def test_fields_given_as_extra_become_top_level_keys():
    record = logging.LogRecord("phase3ops.orchestrator", logging.WARNING, __file__, 1, "late: %s", ("2026-11-28",), None)
    record.event = "phase3_completion"
    record.outcome = "late"
    record.completed = ("a", "b")

    line = JsonLineFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "late: 2026-11-28"
    assert (entry["event"], entry["outcome"], entry["completed"]) == ("phase3_completion", "late", ["a", "b"])
    assert "args" not in entry and "msg" not in entry


def test_exceptions_are_kept_in_the_same_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonLineFormatter().format(record))
    assert entry["severity"] == "ERROR" and "RuntimeError: boom" in entry["exception"]
