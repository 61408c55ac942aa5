"""Log lines are single JSON objects Cloud Logging turns into jsonPayload + severity."""

from __future__ import annotations

import json
import logging

from phase3ops.logs import JsonLineFormatter


def test_fields_given_as_extra_become_top_level_keys():
    record = logging.LogRecord(
        "phase3ops.orchestrator", logging.WARNING, __file__, 1, "late: %s", ("2026-11-28",), None
    )
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


def test_no_line_outgrows_a_cloud_logging_entry_whatever_it_is_given():
    """Cloud Logging drops an entry over 256 KB: a line that quotes a hostile input must not be one."""
    huge = "x" * 2_000_000
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "bad: %s", (huge,), None)
    record.reason, record.values, record.nested = huge, [huge, huge], {"a": huge}
    try:
        raise ValueError(huge)
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()

    line = JsonLineFormatter().format(record)

    assert len(line.encode()) < 256 * 1024
    entry = json.loads(line)
    assert entry["reason"].startswith("xxx") and "more characters" in entry["reason"]


def test_a_lone_surrogate_in_a_field_still_makes_valid_utf8():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "bad \udc00", (), None)
    record.value = "\ud800"
    JsonLineFormatter().format(record).encode("utf-8")


def test_numbers_json_cannot_hold_are_written_as_text():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "bad", (), None)
    record.big, record.nan = 10**5000, float("nan")
    entry = json.loads(JsonLineFormatter().format(record))
    assert entry["big"] == "an integer of 16610 bits" and entry["nan"] == "nan"
