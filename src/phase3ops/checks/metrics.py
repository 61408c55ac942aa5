"""The health check's numbers, written as the custom metrics `monitoring.custom_metrics` declares."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from phase3ops.monitoring.custom_metrics import CUSTOM_METRICS, MONITORED_RESOURCE

if TYPE_CHECKING:
    from google.cloud import monitoring_v3


def write_metrics(
    project: str, values: dict[str, float], now: dt.datetime, client: monitoring_v3.MetricServiceClient | None = None
) -> None:
    """`client`: Google's default (gRPC, the environment's credentials) unless a test hands in another."""
    from google.cloud import monitoring_v3

    client = client or monitoring_v3.MetricServiceClient()
    series = []
    for name, value in sorted(values.items()):
        metric = CUSTOM_METRICS[name]  # an undeclared name is a bug: its policy would never see it
        typed = (
            monitoring_v3.TypedValue(int64_value=int(value))
            if metric.value_type == "INT64"
            else monitoring_v3.TypedValue(double_value=value)
        )
        item = monitoring_v3.TimeSeries()
        item.metric.type = metric.type
        item.resource.type = MONITORED_RESOURCE
        item.resource.labels["project_id"] = project
        item.points = [monitoring_v3.Point(interval=monitoring_v3.TimeInterval(end_time=now), value=typed)]
        series.append(item)
    client.create_time_series(name=f"projects/{project}", time_series=series)
