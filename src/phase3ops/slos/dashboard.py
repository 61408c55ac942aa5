"""The SLO dashboard: one row per SLO, its error budget left and its burn rate over each alert's
windows, in the Cloud Monitoring Dashboards API's shape (checked like the YAML dashboards, by
parsing it into the API's message: `phase3ops.dashboards.render.to_proto`)."""

from __future__ import annotations

from typing import Any

from phase3ops.dashboards.render import to_proto
from phase3ops.monitoring import durations
from phase3ops.slos.cloud_monitoring import slo_name
from phase3ops.slos.specs import SloSpecs

DASHBOARD_NAME = "phase3-slos"
DISPLAY_NAME = "Phase 3 -> Phase 4 SLOs"
COLUMNS = 48
ROW_HEIGHT = 16
BUDGET_WIDTH = 16


def slo_dashboard_body(project: str, specs: SloSpecs, labels: dict[str, str] | None = None) -> dict[str, Any]:
    tiles = []
    for row, slo in enumerate(specs.slos):
        name = slo_name(project, slo)
        windows = sorted(
            {
                seconds
                for policy_name in slo.alert_policy_names
                if (policy := specs.alert_policies.get(policy_name)) is not None
                for seconds in (policy.long_window_seconds, policy.short_window_seconds)
            }
        )
        budget = {
            "title": f"{slo.display_name}: error budget left ({slo.target * 100:g} % over {slo.window_days} days)",
            "scorecard": {
                "timeSeriesQuery": {"timeSeriesFilter": {"filter": f'select_slo_budget_fraction("{name}")'}},
                "thresholds": [
                    {"value": 0.25, "color": "YELLOW", "direction": "BELOW"},
                    {"value": 0.0, "color": "RED", "direction": "BELOW"},
                ],
            },
        }
        burn = {
            "title": f"{slo.display_name}: burn rate",
            "xyChart": {
                "dataSets": [
                    {
                        "timeSeriesQuery": {
                            "timeSeriesFilter": {"filter": f'select_slo_burn_rate("{name}", "{seconds}s")'}
                        },
                        "plotType": "LINE",
                        "legendTemplate": f"over {durations.human_seconds(seconds)}",
                    }
                    for seconds in windows
                ],
                "thresholds": [
                    {"value": specs.alert_policies[p].threshold, "label": p}
                    for p in slo.alert_policy_names
                    if p in specs.alert_policies
                ],
            },
        }
        y = row * ROW_HEIGHT
        tiles.append({"xPos": 0, "yPos": y, "width": BUDGET_WIDTH, "height": ROW_HEIGHT, "widget": budget})
        tiles.append(
            {"xPos": BUDGET_WIDTH, "yPos": y, "width": COLUMNS - BUDGET_WIDTH, "height": ROW_HEIGHT, "widget": burn}
        )
    return {
        "displayName": DISPLAY_NAME,
        "labels": {"component": "slos", **(labels or {})},
        "mosaicLayout": {"columns": COLUMNS, "tiles": tiles},
    }


def slo_dashboard_json(project: str, specs: SloSpecs, labels: dict[str, str] | None = None) -> str:
    """What `gcp.monitoring.Dashboard` deploys: the parsed message, serialised as the YAML dashboards are."""
    from google.cloud import monitoring_dashboard_v1

    message = to_proto(slo_dashboard_body(project, specs, labels))
    return monitoring_dashboard_v1.Dashboard.to_json(
        message, use_integers_for_enums=False, always_print_fields_with_no_presence=False, sort_keys=True, indent=None
    )
