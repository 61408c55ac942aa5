"""A rule as the Cloud Monitoring API's own objects.

`policy_body` and `log_metric_body` build the request bodies in the API's
JSON shape (proto field names, durations as "300s"). The same body is
parsed into `monitoring_v3.AlertPolicy` by `to_proto` (strictly: unknown
fields and bad enum values are errors), which proves offline that the rule is
a valid API object, and is handed, field for field, to Pulumi's
`gcp.monitoring.AlertPolicy`, whose arguments mirror the API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from phase3ops.alerts.specs import AlertRule, ratio_selectors
from phase3ops.monitoring import durations
from phase3ops.monitoring.api_limits import MAX_LINK_DISPLAY_NAME
from phase3ops.monitoring.descriptors import kind_and_value_type
from phase3ops.monitoring.metrics import (
    PERCENTILES,
    counter_log_metric_body,
    metric_filter,
    metric_type,
    statistic_operations,
)

DOCUMENTATION_MIME_TYPE = "text/markdown"

# Metric thresholds accept only these two comparisons.
COMPARISONS = {
    "greater_than": ("COMPARISON_GT", "more than"),
    "less_than": ("COMPARISON_LT", "less than"),
}
SEVERITIES = {"critical": "CRITICAL", "error": "ERROR", "warning": "WARNING"}


def threshold_value(threshold: dict[str, Any]) -> float:
    """The threshold as the API takes it: a number, or a duration ("30m", on a metric in seconds) in seconds."""
    value = threshold["value"]
    return float(durations.seconds(value)) if isinstance(value, str) else float(value)


def absence_lookback(absence: dict[str, Any]) -> str:
    """How far back each evaluation looks for a point (the alignment period): `lookback`, by default the window."""
    return absence.get("lookback", absence["window"])


def absence_silence_seconds(absence: dict[str, Any]) -> int:
    """How long the metric must be silent before the condition fires: a point within the
    lookback still counts as data, and then the window must pass without any."""
    return durations.seconds(absence_lookback(absence)) + durations.seconds(absence["window"])


def condition_title(condition: dict[str, Any]) -> str:
    """What the condition means, in the words of the rule: 'more than 10 in 5 minutes'."""
    if "logMatch" in condition:
        return "a matching log entry"
    if "promql" in condition:
        promql = condition["promql"]
        held = durations.seconds(promql.get("duration", "0s"))
        return "the PromQL query returns a series" + (f", for {durations.human(promql['duration'])}" if held else "")
    if "ratio" in condition:
        ratio = condition["ratio"]
        phrase = COMPARISONS[ratio["comparison"]][1]
        text = f"share {phrase} {ratio['value'] * 100:g} % over {durations.human(ratio['window'])}"
        if ratio.get("for") and durations.seconds(ratio["for"]):
            text += f", for {durations.human(ratio['for'])}"
        return text
    if "absence" in condition:
        absence = condition["absence"]
        name = metric_type(absence["metric"]).rsplit("/", 1)[-1]
        return f"no data from {name} for {durations.human_seconds(absence_silence_seconds(absence))}"
    threshold = condition["threshold"]
    phrase = COMPARISONS[threshold["comparison"]][1]
    value = threshold["value"]
    value_text = (
        durations.human(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
    )
    statistic = threshold["statistic"]
    window = durations.human(threshold["window"])
    if statistic in ("count", "sum"):
        text = f"{phrase} {value_text} in {window}"
    elif statistic in PERCENTILES:
        text = f"{statistic} {phrase} {value_text} over {window}"
    elif statistic == "rate":
        text = f"{phrase} {value_text} per second over {window}"
    else:
        text = f"{statistic} {phrase} {value_text} over {window}"
    if threshold.get("for") and durations.seconds(threshold["for"]):
        text += f", for {durations.human(threshold['for'])}"
    return text


def aggregation(
    statistic: str | None,
    window: str,
    override: dict[str, Any] | None,
    group_by: Sequence[str] = (),
    kind: tuple[str | None, str | None] = (None, None),
) -> dict[str, Any]:
    """`kind`: the metric's kind and value type, which decide the aligner a statistic needs."""
    aligner, reducer = statistic_operations(statistic or "count", *kind)
    override = override or {}
    body = {
        "alignment_period": durations.api(override.get("alignmentPeriod", window)),
        "per_series_aligner": override.get("aligner", aligner),
        "cross_series_reducer": override.get("reducer", reducer),
    }
    if group_by:
        body["group_by_fields"] = list(group_by)
    return body


def condition_body(rule: AlertRule, condition: dict[str, Any]) -> dict[str, Any]:
    title = f"{rule.spec['documentation']['summary']}: {condition_title(condition)}"[:256]
    if "logMatch" in condition:
        match = condition["logMatch"]
        body: dict[str, Any] = {"filter": match["filter"].strip()}
        if match.get("labelExtractors"):
            body["label_extractors"] = dict(match["labelExtractors"])
        return {"display_name": title, "condition_matched_log": body}
    if "absence" in condition:
        absence = condition["absence"]
        kind = kind_and_value_type(absence["metric"])
        return {
            "display_name": title,
            "condition_absent": {
                "filter": metric_filter(absence),
                "duration": durations.api(absence["window"]),
                "aggregations": [aggregation(None, absence_lookback(absence), absence.get("aggregation"), kind=kind)],
            },
        }
    if "promql" in condition:
        return {"display_name": title, "condition_prometheus_query_language": promql_body(condition["promql"])}
    if "ratio" in condition:
        return {"display_name": title, "condition_threshold": ratio_body(rule, condition["ratio"])}
    threshold = condition["threshold"]
    return {
        "display_name": title,
        "condition_threshold": {
            "filter": metric_filter(threshold),
            "comparison": COMPARISONS[threshold["comparison"]][0],
            "threshold_value": threshold_value(threshold),
            "duration": durations.api(threshold.get("for", "0s")),
            "aggregations": [
                aggregation(
                    threshold["statistic"],
                    threshold["window"],
                    threshold.get("aggregation"),
                    threshold.get("groupBy", ()),
                    kind_and_value_type(threshold["metric"]),
                )
            ],
            "trigger": {"count": 1},
        },
    }


def ratio_body(rule: AlertRule, ratio: dict[str, Any]) -> dict[str, Any]:
    """A metric threshold on numerator / denominator: both counted over the window and grouped alike,
    as the API requires of denominator_aggregations."""
    numerator, denominator = ratio_selectors(ratio)
    group_by = ratio.get("groupBy", ())
    return {
        "filter": metric_filter(numerator),
        "aggregations": [
            aggregation("count", ratio["window"], None, group_by, kind_and_value_type(numerator["metric"]))
        ],
        "denominator_filter": metric_filter(denominator),
        "denominator_aggregations": [
            aggregation("count", ratio["window"], None, group_by, kind_and_value_type(denominator["metric"]))
        ],
        "comparison": COMPARISONS[ratio["comparison"]][0],
        "threshold_value": float(ratio["value"]),
        "duration": durations.api(ratio.get("for", "0s")),
        "trigger": {"count": 1},
    }


def promql_body(promql: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"query": promql["query"].strip()}
    if promql.get("duration"):
        body["duration"] = durations.api(promql["duration"])
    if promql.get("evaluationInterval"):
        body["evaluation_interval"] = durations.api(promql["evaluationInterval"])
    if promql.get("labels"):
        body["labels"] = dict(promql["labels"])
    if promql.get("ruleGroup"):
        body["rule_group"] = promql["ruleGroup"]
    if promql.get("alertRule"):
        body["alert_rule"] = promql["alertRule"]
    return body


def runbook_url(rule: AlertRule, runbook_base_url: str) -> str:
    runbook = rule.spec["documentation"]["runbook"]
    if runbook.startswith("https://"):
        return runbook
    return runbook_base_url.rstrip("/") + "/" + runbook


def documentation_body(
    rule: AlertRule, runbook_base_url: str, dashboards: Sequence[tuple[str, Any]] = ()
) -> dict[str, Any]:
    """`dashboards`: (title, console URL) of each dashboard the incident's reader should open."""
    docs = rule.spec["documentation"]
    url = runbook_url(rule, runbook_base_url)
    lines = [f"**{docs['summary']}**", "", f"Runbook: {url}"]
    if docs.get("commands"):
        lines += ["", "Run:"] + [f"- `{command}`" for command in docs["commands"]]
    lines += ["", f"Rule: `alerts/{rule.name}.yaml` (component {rule.component}, severity {rule.severity})"]
    return {
        "content": "\n".join(lines),
        "mime_type": DOCUMENTATION_MIME_TYPE,
        "subject": f"[{rule.severity.upper()}] {docs['summary']}"[:255],
        "links": [{"display_name": "Runbook", "url": url}]
        + [{"display_name": link_name(f"Dashboard: {title}"), "url": link} for title, link in dashboards],
    }


def link_name(name: str) -> str:
    """A documentation link's name as the API takes it: at most 63 characters, cut with an ellipsis."""
    return name if len(name) <= MAX_LINK_DISPLAY_NAME else name[: MAX_LINK_DISPLAY_NAME - 1] + "…"


def policy_body(
    rule: AlertRule, runbook_base_url: str, channel_ids: Sequence[str] = (), dashboards: Sequence[tuple[str, Any]] = ()
) -> dict[str, Any]:
    notify = rule.spec.get("notify", {})
    strategy: dict[str, Any] = {}
    # The API implements the rate limit for log-based policies only.
    if notify.get("rateLimit") and any("logMatch" in c for c in rule.conditions):
        strategy["notification_rate_limit"] = {"period": durations.api(notify["rateLimit"])}
    if notify.get("autoClose"):
        strategy["auto_close"] = durations.api(notify["autoClose"])
    body: dict[str, Any] = {
        "display_name": f"phase3: {rule.spec['documentation']['summary']}",
        "user_labels": {
            "rule": rule.name,
            "component": rule.component,
            "severity": rule.severity,
            "managed-by": "pulumi",
        },
        "combiner": rule.spec.get("combiner", "OR"),
        "conditions": [condition_body(rule, c) for c in rule.conditions],
        "documentation": documentation_body(rule, runbook_base_url, dashboards),
        "severity": SEVERITIES[rule.severity],
        "enabled": rule.enabled,
        "notification_channels": list(channel_ids),
    }
    if strategy:
        body["alert_strategy"] = strategy
    return body


def log_metric_body(rule: AlertRule) -> dict[str, Any] | None:
    """The log-based counter metric (logging.googleapis.com/user/<name>) the rule needs, if any."""
    return None if rule.log_metric is None else counter_log_metric_body(rule.log_metric)


def to_proto(body: dict[str, Any]):
    """Parse the body into the API's AlertPolicy message; raises on anything the API would refuse to parse."""
    from google.cloud import monitoring_v3

    return monitoring_v3.AlertPolicy.from_json(json.dumps(body), ignore_unknown_fields=False)
