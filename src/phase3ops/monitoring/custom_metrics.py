"""The health check's numbers as custom metrics, declared once: written by the check, created by the infra program.

Cloud Monitoring only knows a custom metric after its descriptor exists; an
alert policy on an unknown metric fails to create ("Cannot find
metric(s)"). The infra program declares every metric below (kind, value
type, unit) before the policies that watch it, and `checks.metrics` writes
exactly these, with the same value types.
"""

from __future__ import annotations

from dataclasses import dataclass

METRIC_PREFIX = "custom.googleapis.com/phase3/"
MONITORED_RESOURCE = "global"


@dataclass(frozen=True)
class CustomMetric:
    name: str
    value_type: str  # INT64 | DOUBLE
    description: str
    unit: str = "1"
    metric_kind: str = "GAUGE"  # one point per health check run

    @property
    def type(self) -> str:
        return METRIC_PREFIX + self.name


CUSTOM_METRICS: dict[str, CustomMetric] = {
    metric.name: metric
    for metric in (
        CustomMetric(
            "completion_accuracy",
            "DOUBLE",
            "Share of (date, processor) pairs whose completion record agrees with the warehouse",
        ),
        CustomMetric("duplicate_rows", "INT64", "Rows beyond one per primary key in the Phase 3 tables"),
        CustomMetric(
            "pending_trigger_claims", "INT64", "Phase 4 trigger claims pending longer than the health check's threshold"
        ),
        CustomMetric(
            "untriggered_game_dates",
            "INT64",
            "Dates with games past their trigger deadline without a published Phase 4 trigger",
        ),
        CustomMetric("held_game_dates", "INT64", "Ready game dates a data gate holds from Phase 4"),
        CustomMetric(
            "missing_expected_work",
            "INT64",
            "(game date, processor) pairs the schedule owes past their deadline, neither run nor skipped, since the ledger's start",
        ),
    )
}


def custom_metric(metric_type: str) -> CustomMetric | None:
    """The declared metric a `custom.googleapis.com/...` type names, if any."""
    return (
        CUSTOM_METRICS.get(metric_type.removeprefix(METRIC_PREFIX)) if metric_type.startswith(METRIC_PREFIX) else None
    )
