"""The Logging query matcher `alerts test` decides log-match conditions and log-based metrics with."""

from __future__ import annotations

import pytest

from phase3ops.filters.log_matching import field_value, matches

ENTRY = {
    "severity": "WARNING",
    "resource": {"type": "cloud_run_revision", "labels": {"service_name": "phase3-to-phase4-orchestrator"}},
    "jsonPayload": {"event": "phase3_completion", "overdue": True, "minutes": 12, "@type": "x.AttemptFinished"},
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("jsonPayload.overdue=true", True),  # a JSON boolean compares as the Logging query writes it
        ("jsonPayload.overdue=false", False),
        ("jsonPayload.minutes:*", True),  # `:*` asks whether the field is there
        ("jsonPayload.absent:*", False),
        ("jsonPayload.minutes>10", True),
        ("severity>=WARNING AND NOT severity>=ERROR", True),
        ('jsonPayload.event=("phase3_completion" OR "other")', True),
        ('jsonPayload."@type"="x.AttemptFinished"', True),
    ],
)
def test_a_query_matches_as_cloud_logging_would(query, expected):
    assert matches(query, ENTRY) is expected


def test_field_value_reads_a_dotted_path():
    assert field_value(ENTRY, "resource.labels.service_name") == "phase3-to-phase4-orchestrator"
    assert field_value(ENTRY, "jsonPayload.nothing") is None
