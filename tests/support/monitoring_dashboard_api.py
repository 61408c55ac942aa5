"""What Cloud Monitoring does to a dashboard's JSON, and how the provider compares it with the program's.

`normalised_by_the_api` is the dashboard as a refresh reads it back: the
API adds the defaults it applies (hashicorp/terraform-provider-google#16173,
#9976, #24650: `chartOptions.mode: COLOR`, `targetAxis: Y1`,
`timeshiftDuration: 0s`, empty `breakdowns`/`dimensions`/`measures`,
`yAxis.scale: LINEAR`; enum defaults as monitoring_v1_messages documents
them) and leaves out what equals the default (zero positions, empty
strings, lists and maps, false).

`provider_sees_a_diff` is terraform-provider-google's dashboard_json diff
suppression (resource_monitoring_dashboard.go): a key the refreshed JSON
has and the program's does not is dropped, at every depth (lists
index-aligned), then the two are compared as decoded JSON (numbers as
floats). So an API default the program leaves out never shows as drift; a
value the program sends and the API drops always does.
"""

from __future__ import annotations

import copy
import json
from typing import Any


def _defaults_added(node: Any, key: str = "") -> Any:
    if isinstance(node, list):
        return [_defaults_added(item, key) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _defaults_added(v, k) for k, v in node.items()}
    if key == "xyChart":
        out.setdefault("chartOptions", {}).setdefault("mode", "COLOR")
        out.setdefault("timeshiftDuration", "0s")
        if "yAxis" in out:
            out["yAxis"].setdefault("scale", "LINEAR")
        for threshold in out.get("thresholds", []):
            threshold.setdefault("targetAxis", "Y1")
    if key == "dataSets":
        out.setdefault("targetAxis", "Y1")
        out.setdefault("plotType", "LINE")
        for empty in ("breakdowns", "dimensions", "measures"):
            out.setdefault(empty, [])
    if key == "aggregation" or key == "secondaryAggregation":
        out.setdefault("groupByFields", [])
    return out


def _defaults_dropped(node: Any) -> Any:
    """What proto3 JSON leaves out: zeros, empty strings, false, empty lists and maps (the API's own empties stay)."""
    if isinstance(node, dict):
        kept = {}
        for k, v in node.items():
            v = _defaults_dropped(v)
            if v == [] or v == {} or (not isinstance(v, (list, dict)) and v in (0, "", False)):
                continue
            kept[k] = v
        return kept
    if isinstance(node, list):
        return [_defaults_dropped(item) for item in node]
    return node


def normalised_by_the_api(dashboard_json: str) -> str:
    """The dashboard as `pulumi refresh` reads it back from the API."""
    body = json.loads(dashboard_json)
    return json.dumps(_defaults_added(_defaults_dropped(copy.deepcopy(body))), sort_keys=True)


def _remove_computed_keys(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: _remove_computed_keys(v, new[k]) for k, v in old.items() if k in new and new[k] is not None}
    if isinstance(old, list) and isinstance(new, list):
        return [_remove_computed_keys(o, n) for o, n in zip(old, new, strict=False)] + old[len(new) :]
    return old


def _floats(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _floats(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_floats(v) for v in node]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return float(node)
    return node


def provider_sees_a_diff(refreshed_json: str, program_json: str) -> bool:
    old, new = _floats(json.loads(refreshed_json)), _floats(json.loads(program_json))
    return _remove_computed_keys(old, new) != new
