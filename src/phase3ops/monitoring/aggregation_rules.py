"""Which aligners and reducers Cloud Monitoring accepts for a metric's kind and value type.

Written from the API's own message definitions (`Aggregation.PerSeriesAligner`
and `Aggregation.CrossSeriesReducer` in monitoring v3, as the Cloud SDK ships
them in `monitoring_v3_messages.py`); `tests/unit/test_aggregation_rules.py`
reads those definitions and fails if this table says otherwise. A request
that breaks them is refused at `pulumi up` ("The aligner ... is not valid for
..."), or, for an alert, may be accepted and never fire.
"""

from __future__ import annotations

from dataclasses import dataclass

NUMERIC = frozenset({"INT64", "DOUBLE"})
DISTRIBUTION = frozenset({"DISTRIBUTION"})
BOOL = frozenset({"BOOL"})
STRING = frozenset({"STRING"})
SAME = "same"  # the output has the input's value type (or kind)


@dataclass(frozen=True)
class Operation:
    kinds: frozenset[str]  # the metric kinds it is valid for
    value_types: frozenset[str]  # the value types it is valid for
    output_value_type: str  # a value type, or SAME
    output_kind: str = SAME  # what an aligner turns the series into (GAUGE, DELTA) or SAME


def _op(kinds: str, value_types: frozenset[str], output: str, output_kind: str = SAME) -> Operation:
    return Operation(frozenset(kinds.split()), value_types, output, output_kind)


ALIGNERS: dict[str, Operation] = {
    "ALIGN_DELTA": _op("CUMULATIVE DELTA", NUMERIC | DISTRIBUTION, SAME, "DELTA"),
    "ALIGN_RATE": _op("CUMULATIVE DELTA", NUMERIC, "DOUBLE", "GAUGE"),
    "ALIGN_INTERPOLATE": _op("GAUGE", NUMERIC, SAME),
    "ALIGN_NEXT_OLDER": _op("GAUGE", NUMERIC | DISTRIBUTION | BOOL | STRING, SAME),
    "ALIGN_MIN": _op("GAUGE DELTA", NUMERIC, SAME),
    "ALIGN_MAX": _op("GAUGE DELTA", NUMERIC, SAME),
    "ALIGN_MEAN": _op("GAUGE DELTA", NUMERIC, "DOUBLE"),
    "ALIGN_COUNT": _op("GAUGE DELTA", NUMERIC | BOOL, "INT64"),
    "ALIGN_SUM": _op("GAUGE DELTA", NUMERIC | DISTRIBUTION, SAME),
    "ALIGN_STDDEV": _op("GAUGE DELTA", NUMERIC, "DOUBLE"),
    "ALIGN_COUNT_TRUE": _op("GAUGE", BOOL, "INT64"),
    "ALIGN_COUNT_FALSE": _op("GAUGE", BOOL, "INT64"),
    "ALIGN_FRACTION_TRUE": _op("GAUGE", BOOL, "DOUBLE"),
    "ALIGN_PERCENTILE_99": _op("GAUGE DELTA", DISTRIBUTION, "DOUBLE", "GAUGE"),
    "ALIGN_PERCENTILE_95": _op("GAUGE DELTA", DISTRIBUTION, "DOUBLE", "GAUGE"),
    "ALIGN_PERCENTILE_50": _op("GAUGE DELTA", DISTRIBUTION, "DOUBLE", "GAUGE"),
    "ALIGN_PERCENTILE_05": _op("GAUGE DELTA", DISTRIBUTION, "DOUBLE", "GAUGE"),
    "ALIGN_PERCENT_CHANGE": _op("GAUGE DELTA", NUMERIC, "DOUBLE", "GAUGE"),
}

REDUCERS: dict[str, Operation] = {
    "REDUCE_MEAN": _op("DELTA GAUGE", NUMERIC | DISTRIBUTION, "DOUBLE"),
    "REDUCE_MIN": _op("DELTA GAUGE", NUMERIC, SAME),
    "REDUCE_MAX": _op("DELTA GAUGE", NUMERIC, SAME),
    "REDUCE_SUM": _op("DELTA GAUGE", NUMERIC | DISTRIBUTION, SAME),
    "REDUCE_STDDEV": _op("DELTA GAUGE", NUMERIC | DISTRIBUTION, "DOUBLE"),
    "REDUCE_COUNT": _op("DELTA GAUGE", NUMERIC | BOOL | DISTRIBUTION | STRING, "INT64"),
    "REDUCE_COUNT_TRUE": _op("DELTA GAUGE", BOOL, "INT64"),
    "REDUCE_COUNT_FALSE": _op("DELTA GAUGE", BOOL, "INT64"),
    "REDUCE_FRACTION_TRUE": _op("DELTA GAUGE", BOOL, "DOUBLE"),
    "REDUCE_PERCENTILE_99": _op("GAUGE DELTA", NUMERIC | DISTRIBUTION, "DOUBLE"),
    "REDUCE_PERCENTILE_95": _op("GAUGE DELTA", NUMERIC | DISTRIBUTION, "DOUBLE"),
    "REDUCE_PERCENTILE_50": _op("GAUGE DELTA", NUMERIC | DISTRIBUTION, "DOUBLE"),
    "REDUCE_PERCENTILE_05": _op("GAUGE DELTA", NUMERIC | DISTRIBUTION, "DOUBLE"),
}


def _problem(
    what: str, name: str, operation: Operation, kind: str, value_type: str, table: dict[str, Operation]
) -> str | None:
    if kind in operation.kinds and value_type in operation.value_types:
        return None
    allowed = ", ".join(n for n, o in table.items() if kind in o.kinds and value_type in o.value_types) or "none"
    return f"{name} is not valid for a {kind} {value_type} {what} (valid: {allowed})"


def aligner_problem(aligner: str, kind: str, value_type: str) -> str | None:
    """Why the API refuses `aligner` on a metric of this kind and value type, or None."""
    if aligner == "ALIGN_NONE":
        return "ALIGN_NONE leaves nothing to reduce: an alert needs an aligner"
    return _problem("metric", aligner, ALIGNERS[aligner], kind, value_type, ALIGNERS)


def aligned(aligner: str, kind: str, value_type: str) -> tuple[str, str]:
    """The kind and value type of a series after `aligner`."""
    operation = ALIGNERS[aligner]
    return (
        kind if operation.output_kind == SAME else operation.output_kind,
        value_type if operation.output_value_type == SAME else operation.output_value_type,
    )


def reducer_problem(reducer: str, kind: str, value_type: str) -> str | None:
    """Why the API refuses `reducer` on aligned series of this kind and value type, or None."""
    if reducer == "REDUCE_NONE":
        return None
    return _problem("aligned series", reducer, REDUCERS[reducer], kind, value_type, REDUCERS)
