"""The aligner and reducer rules are the API's own: read from the monitoring v3 message definitions the Cloud SDK ships."""

from __future__ import annotations

import re

import pytest

from phase3ops.monitoring.aggregation_rules import (
    ALIGNERS,
    BOOL,
    DISTRIBUTION,
    NUMERIC,
    REDUCERS,
    SAME,
    STRING,
    aligned,
    aligner_problem,
    reducer_problem,
)
from tests.support.conformance.sdk import messages

_VALUE_WORDS = {"numeric": NUMERIC, "distribution": DISTRIBUTION, "boolean": BOOL, "string": STRING}


def documented(enum_class) -> dict[str, tuple[frozenset[str], frozenset[str] | None, str]]:
    """{value: (kinds, value types or None if the text names none, output value type)} from the enum's docstring."""
    text = " ".join(enum_class.__doc__.split())
    entries = re.split(r"\s(?=(?:ALIGN|REDUCE)_[A-Z0-9_]+: )", text.split("Values:", 1)[1])
    rules = {}
    for entry in entries:
        name, _, body = entry.strip().partition(": ")
        valid = re.search(r"valid for ([^.]*)\.", body)
        if not valid:
            continue
        sentence = valid.group(1)
        kinds = frozenset(re.findall(r"\b(GAUGE|DELTA|CUMULATIVE)\b", sentence))
        value_types = frozenset().union(
            *(types for word, types in _VALUE_WORDS.items() if re.search(rf"\b{word}\b", sentence, re.IGNORECASE))
        )
        output = re.search(
            r"(?:value_type of the (?:aligned result|output) is|value_type|value of the output is) (the same|[A-Z0-9]+)",
            body,
        )
        rules[name] = (
            kinds,
            value_types or None,
            SAME if output and output.group(1) == "the same" else output.group(1) if output else "",
        )
    return rules


@pytest.mark.parametrize(
    ("table", "enum_name"),
    [(ALIGNERS, "PerSeriesAlignerValueValuesEnum"), (REDUCERS, "CrossSeriesReducerValueValuesEnum")],
)
def test_the_table_says_what_the_api_documents(table, enum_name):
    enum_class = getattr(messages("monitoring", "v3").Aggregation, enum_name)
    rules = documented(enum_class)
    assert set(rules) == set(table), "an operation the API documents is missing from the table, or one it does not"
    for name, (kinds, value_types, output) in rules.items():
        operation = table[name]
        assert operation.kinds == kinds, name
        if value_types is None:  # "valid for CUMULATIVE and DELTA metrics": any value that can change
            assert operation.value_types >= NUMERIC, name
        else:
            assert operation.value_types == value_types, name
        if output:
            assert operation.output_value_type == output, name


def test_max_and_mean_are_refused_on_a_distribution_and_percentiles_on_a_number():
    assert "ALIGN_PERCENTILE_99" in str(aligner_problem("ALIGN_MAX", "DELTA", "DISTRIBUTION"))
    assert aligner_problem("ALIGN_MEAN", "DELTA", "DISTRIBUTION")
    assert aligner_problem("ALIGN_PERCENTILE_99", "DELTA", "INT64")
    assert aligner_problem("ALIGN_RATE", "GAUGE", "INT64")
    assert aligner_problem("ALIGN_DELTA", "DELTA", "DISTRIBUTION") is None
    assert reducer_problem("REDUCE_PERCENTILE_99", *aligned("ALIGN_DELTA", "DELTA", "DISTRIBUTION")) is None
    assert reducer_problem("REDUCE_MAX", *aligned("ALIGN_DELTA", "DELTA", "DISTRIBUTION"))
    assert aligned("ALIGN_RATE", "CUMULATIVE", "INT64") == ("GAUGE", "DOUBLE")
