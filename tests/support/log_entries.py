"""Log lines as Cloud Logging stores them, and a Logging-query matcher over them.

Tests use these to ask "would this alert's log-based metric count this line?"
of the lines our processes really write. The matcher covers the part of the
Logging query language the shipped filters use (comparisons, AND/OR/NOT,
value lists, `log_id()`), on the tree `phase3ops.alerts.filters` parses; a
filter using more of the language fails the test loudly instead of matching
by accident.
"""

from __future__ import annotations

import json
from typing import Any

from phase3ops.filters.language import And, Call, Comparison, FieldPath, Global, Literal, Not, Or, parse_logging_filter
from phase3ops.filters.vocabulary import SEVERITIES

RUN_LOG = "projects/{project}/logs/run.googleapis.com%2F{name}"


def cloud_run_entry(line: str, service: str, project: str = "p", stream: str = "stdout") -> dict[str, Any]:
    """One container output line as Cloud Run ingests it: a JSON line's `severity` and
    `message` become the entry's, the rest its jsonPayload; plain text stays textPayload."""
    entry: dict[str, Any] = {
        "logName": RUN_LOG.format(project=project, name=stream),
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service, "project_id": project}},
    }
    try:
        payload = json.loads(line)
    except ValueError:
        return {**entry, "severity": "DEFAULT", "textPayload": line}
    return {**entry, "severity": payload.pop("severity", "DEFAULT"), "jsonPayload": payload}


def cloud_run_request_entry(status: int, service: str, project: str = "p") -> dict[str, Any]:
    """The request log entry Cloud Run writes for every request it serves (5xx at ERROR)."""
    severity = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
    return {
        "logName": RUN_LOG.format(project=project, name="requests"),
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service, "project_id": project}},
        "severity": severity,
        "httpRequest": {"status": status, "requestMethod": "POST"},
    }


def matches(query: str, entry: dict[str, Any]) -> bool:
    return _holds(parse_logging_filter(query), entry)


def _holds(node, entry) -> bool:
    if isinstance(node, And):
        return all(_holds(item, entry) for item in node.items)
    if isinstance(node, Or):
        return any(_holds(item, entry) for item in node.items)
    if isinstance(node, Not):
        return not _holds(node.item, entry)
    if isinstance(node, Call) and node.name == "log_id":
        (name,) = node.arguments
        assert isinstance(name, Literal)  # a function's argument is a value, and log_id takes a name
        return entry.get("logName", "").rsplit("/logs/", 1)[-1] == name.value.replace("/", "%2F")
    if isinstance(node, Comparison) and isinstance(node.field, FieldPath):
        return _compare(_lookup(entry, node.field.parts), node.operator, node.value, node.field.dotted == "severity")
    raise NotImplementedError(f"the test matcher does not evaluate {type(node).__name__} {node}")


def _lookup(entry: dict[str, Any], parts: tuple[str, ...]) -> Any:
    value: Any = entry
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _compare(actual: Any, operator: str, expected, is_severity: bool) -> bool:
    if isinstance(expected, (Or, And)):  # a value list: field=("a" OR "b")
        results = [
            _compare(actual, operator, item.value if isinstance(item, Global) else item, is_severity)
            for item in expected.items
        ]
        return any(results) if isinstance(expected, Or) else all(results)
    if not isinstance(expected, Literal):
        raise NotImplementedError(f"the test matcher does not evaluate the value {expected}")
    if actual is None:
        return operator == "!="
    left: Any  # severity ranks, numbers or text, compared alike below
    right: Any
    if is_severity:
        left, right = SEVERITIES[str(actual)], SEVERITIES[expected.value]
    elif isinstance(actual, (int, float)) and not isinstance(actual, bool):
        left, right = actual, float(expected.value)
    else:
        left, right = str(actual), expected.value
    if operator == ":":
        return str(right).lower() in str(left).lower()
    return {
        "=": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[operator]
