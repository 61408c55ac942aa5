"""Cloud Logging's query language, evaluated on log entries (as dicts in the API's JSON shape).

`phase3ops alerts test` uses it to decide which entries a rule's log-based
metric counts and which fire a log-match condition; tests use it on the lines
our processes really write. It covers comparisons (with severity ranks and
numbers), `:` (has), AND/OR/NOT, value lists and `log_id()`, on the tree
`phase3ops.filters.language` parses; a filter using more of the language
raises NotImplementedError instead of matching by accident.
"""

from __future__ import annotations

from typing import Any

from phase3ops.filters.language import And, Call, Comparison, FieldPath, Global, Literal, Not, Or, parse_logging_filter
from phase3ops.filters.vocabulary import SEVERITIES


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
    raise NotImplementedError(f"the log matcher does not evaluate {type(node).__name__} {node}")


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
        raise NotImplementedError(f"the log matcher does not evaluate the value {expected}")
    if operator == ":" and expected.value == "*":  # `field:*`: the field is there, whatever its value
        return actual is not None
    if actual is None:
        return operator == "!="
    if isinstance(actual, bool):  # a JSON boolean, as the query language writes it
        actual = "true" if actual else "false"
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


def field_value(entry: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of an entry (jsonPayload.outcome), or None."""
    return _lookup(entry, tuple(path.split(".")))
