"""Write the health check's numbers as custom metrics the alert rules watch (cloud only)."""

from __future__ import annotations

import datetime as dt

METRIC_PREFIX = "custom.googleapis.com/phase3/"
INTEGER_METRICS = {"duplicate_rows", "pending_trigger_claims"}


def write_metrics(project: str, values: dict[str, float], now: dt.datetime) -> None:
    from google.cloud import monitoring_v3

    client = monitoring_v3.MetricServiceClient()
    series = []
    for name, value in sorted(values.items()):
        point = monitoring_v3.Point(
            interval=monitoring_v3.TimeInterval(end_time=now),
            value=monitoring_v3.TypedValue(int64_value=int(value)) if name in INTEGER_METRICS else monitoring_v3.TypedValue(double_value=value),
        )
        item = monitoring_v3.TimeSeries()
        item.metric.type = METRIC_PREFIX + name
        item.resource.type = "global"
        item.resource.labels["project_id"] = project
        item.points = [point]
        series.append(item)
    client.create_time_series(name=f"projects/{project}", time_series=series)
