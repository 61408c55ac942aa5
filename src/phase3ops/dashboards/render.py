"""A dashboard spec as the Cloud Monitoring Dashboards API's own object.

`dashboard_body` builds the request body in the API's JSON shape (camelCase,
durations as "600s"): rows of tiles become a MosaicLayout, each tile's
compact widget the API's widget. `to_proto` parses it strictly into the
client library's `monitoring_dashboard_v1.Dashboard` (an unknown field or
enum value is an error), which proves offline that the dashboard is a valid
API object; `dashboard_json` serialises that message for Pulumi's
`gcp.monitoring.Dashboard`, so what is deployed is what was checked.
"""

from __future__ import annotations

import json
from typing import Any

from phase3ops.dashboards.specs import Dashboard, Tile
from phase3ops.monitoring import durations
from phase3ops.monitoring.descriptors import kind_and_value_type
from phase3ops.monitoring.metrics import counter_log_metric_body, metric_filter, statistic_operations

PLOT_TYPES = {"line": "LINE", "stackedArea": "STACKED_AREA", "stackedBar": "STACKED_BAR", "heatmap": "HEATMAP"}
SPARK_CHARTS = {"line": "SPARK_LINE", "bar": "SPARK_BAR"}
CONSOLE_URL = "https://console.cloud.google.com/monitoring/dashboards/builder/{id}?project={project}"


def time_series_query(selector: dict[str, Any], distributions: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`distributions`: the dashboard's log metrics that are distributions (the rest count)."""
    aligner, reducer = statistic_operations(
        selector["statistic"], *kind_and_value_type(selector["metric"], distributions)
    )
    aggregation: dict[str, Any] = {
        "alignmentPeriod": durations.api(selector["window"]),
        "perSeriesAligner": aligner,
        "crossSeriesReducer": reducer,
    }
    if selector.get("groupBy"):
        aggregation["groupByFields"] = list(selector["groupBy"])
    return {"timeSeriesFilter": {"filter": metric_filter(selector), "aggregation": aggregation}}


def _xy_chart(chart: dict[str, Any], distributions: frozenset[str]) -> dict[str, Any]:
    data_sets = []
    for series in chart["series"]:
        data_set = {
            "timeSeriesQuery": time_series_query(series, distributions),
            "plotType": PLOT_TYPES[chart.get("plot", "line")],
            # Zoomed out, the chart may align over longer periods, never shorter ones.
            "minAlignmentPeriod": durations.api(series["window"]),
        }
        if series.get("legend"):
            data_set["legendTemplate"] = series["legend"]
        data_sets.append(data_set)
    body: dict[str, Any] = {"dataSets": data_sets}
    if chart.get("thresholds"):
        body["thresholds"] = [{k: v for k, v in t.items() if k in ("value", "label")} for t in chart["thresholds"]]
    if chart.get("yAxis"):
        axis = chart["yAxis"]
        body["yAxis"] = {
            k: v for k, v in {"label": axis.get("label"), "scale": axis.get("scale", "").upper() or None}.items() if v
        }
    return body


def _scorecard(card: dict[str, Any], distributions: frozenset[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"timeSeriesQuery": time_series_query(card, distributions)}
    if card.get("sparkChart"):
        body["sparkChartView"] = {
            "sparkChartType": SPARK_CHARTS[card["sparkChart"]],
            "minAlignmentPeriod": durations.api(card["window"]),
        }
    if card.get("gauge"):
        body["gaugeView"] = {"lowerBound": card["gauge"]["lowerBound"], "upperBound": card["gauge"]["upperBound"]}
    if card.get("thresholds"):
        body["thresholds"] = [
            {
                "value": t["value"],
                "color": t["color"].upper(),
                "direction": t["direction"].upper(),
                **({"label": t["label"]} if t.get("label") else {}),
            }
            for t in card["thresholds"]
        ]
    return body


def distribution_log_metrics(dashboard: Dashboard) -> frozenset[str]:
    return frozenset(m["name"] for m in dashboard.log_metrics if m.get("distribution"))


def widget_body(tile: Tile, distributions: frozenset[str] = frozenset()) -> dict[str, Any]:
    widget: dict[str, Any] = {"title": tile.title, "id": tile.id}
    if tile.kind == "xyChart":
        widget["xyChart"] = _xy_chart(tile.body, distributions)
    elif tile.kind == "scorecard":
        widget["scorecard"] = _scorecard(tile.body, distributions)
    elif tile.kind == "logsPanel":
        widget["logsPanel"] = {"filter": tile.body["filter"].strip()}
    else:
        widget["text"] = {"content": tile.body["content"], "format": tile.body.get("format", "markdown").upper()}
    return widget


def dashboard_body(dashboard: Dashboard, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The Dashboard request body; `labels` are the stack's (managed-by, team), added to the file's own."""
    return {
        "displayName": dashboard.display_name,
        "labels": {**dashboard.labels, **(labels or {})},
        "mosaicLayout": {
            "columns": dashboard.columns,
            "tiles": [
                {
                    "xPos": t.x,
                    "yPos": t.y,
                    "width": t.width,
                    "height": t.height,
                    "widget": widget_body(t, distribution_log_metrics(dashboard)),
                }
                for t in dashboard.tiles
            ],
        },
    }


def to_proto(body: dict[str, Any]):
    """Parse the body into the API's Dashboard message; raises on anything the API would refuse to parse."""
    from google.cloud import monitoring_dashboard_v1

    return monitoring_dashboard_v1.Dashboard.from_json(json.dumps(body), ignore_unknown_fields=False)


def dashboard_json(dashboard: Dashboard, labels: dict[str, str] | None = None) -> str:
    """What `gcp.monitoring.Dashboard` deploys: the parsed message, enums by name, without defaults, stable key order."""
    from google.cloud import monitoring_dashboard_v1

    message = to_proto(dashboard_body(dashboard, labels))
    return monitoring_dashboard_v1.Dashboard.to_json(
        message, use_integers_for_enums=False, always_print_fields_with_no_presence=False, sort_keys=True, indent=None
    )


def log_metric_body(metric: dict[str, Any]) -> dict[str, Any]:
    """A dashboard's log-based metric: a counter, or the distribution of the number in `distribution.value`."""
    body = counter_log_metric_body(metric)
    distribution = metric.get("distribution")
    if distribution:
        body["metric_descriptor"].update(value_type="DISTRIBUTION", unit=distribution.get("unit", "1"))
        body["value_extractor"] = f"EXTRACT({distribution['value']})"
        body["bucket_options"] = {"explicit_buckets": {"bounds": [float(b) for b in distribution["bounds"]]}}
    return body


def console_url(dashboard_id: str, project: str) -> str:
    """The dashboard in the console, from the resource id Pulumi reports (projects/<p>/dashboards/<id>, or the bare id)."""
    return CONSOLE_URL.format(id=dashboard_id.rsplit("/", 1)[-1], project=project)
