"""An SLO spec as Cloud Monitoring's own objects: the custom service, the ServiceLevelObjective and
one burn-rate AlertPolicy per alert policy the SLO names.

The bodies are in the API's JSON shape with proto field names, as `phase3ops.alerts.policies`
builds them: `to_proto` parses each into the API's message strictly (unknown fields and bad enum
values are errors), and the infra program hands the same fields to Pulumi.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from phase3ops.alerts.policies import link_name
from phase3ops.monitoring import durations
from phase3ops.monitoring.metrics import metric_filter
from phase3ops.slos.specs import SERVICE_ID, BurnRateAlert, Slo

DOCUMENTATION_MIME_TYPE = "text/markdown"
SERVICE_DISPLAY_NAME = "Phase 3 -> Phase 4 hand-off"
_SEVERITY = {"page": "CRITICAL", "ticket": "WARNING"}
_COMPARISON = {"gt": "COMPARISON_GT", "gte": "COMPARISON_GT"}  # the API has no >=; see burn_rate_policy_body


def service_body() -> dict[str, Any]:
    return {
        "display_name": SERVICE_DISPLAY_NAME,
        "custom": {},
        "user_labels": {"component": "slos", "managed-by": "pulumi"},
    }


def component(slo: Slo) -> str:
    return slo.metadata.get("labels", {}).get("component", "slos")


def slo_name(project: str, slo: Slo) -> str:
    """The SLO's resource name: what select_slo_burn_rate and the dashboard's selectors take."""
    return f"projects/{project}/services/{SERVICE_ID}/serviceLevelObjectives/{slo.name}"


def sli_filters(slo: Slo) -> dict[str, str]:
    """goodTotalRatio's two filters: good (or bad) service and total service."""
    (_, numerator), (_, total) = slo.selectors()
    side = "bad_service_filter" if slo.counts_bad else "good_service_filter"
    return {side: metric_filter(numerator), "total_service_filter": metric_filter(total)}


def slo_body(slo: Slo) -> dict[str, Any]:
    return {
        "display_name": slo.display_name,
        "goal": slo.target,
        "rolling_period": f"{slo.window_days * 86400}s",
        "service_level_indicator": {"request_based": {"good_total_ratio": sli_filters(slo)}},
        "user_labels": {"slo": slo.name, "component": component(slo), "managed-by": "pulumi"},
    }


def burn_rate_filter(project: str, slo: Slo, window_seconds: int) -> str:
    return f'select_slo_burn_rate("{slo_name(project, slo)}", "{window_seconds}s")'


def burn_rate_policy_body(
    project: str,
    slo: Slo,
    policy: BurnRateAlert,
    runbook_base_url: str,
    channel_ids: Sequence[str] = (),
    dashboards: Sequence[tuple[str, Any]] = (),
) -> dict[str, Any]:
    """Fires when the burn rate is past the threshold over both the long and the short window.

    The API compares strictly; `gte` is sent as COMPARISON_GT (a burn rate is a ratio of counts,
    so one exactly at the threshold is rare, and the report says which it applied)."""

    def condition(window_seconds: int, which: str) -> dict[str, Any]:
        return {
            "display_name": f"burn rate over {durations.human_seconds(window_seconds)} ({which} window) "
            f"above {policy.threshold:g}",
            "condition_threshold": {
                "filter": burn_rate_filter(project, slo, window_seconds),
                "comparison": _COMPARISON[policy.condition["op"]],
                "threshold_value": policy.threshold,
                "duration": f"{policy.alert_after_seconds}s",
                "trigger": {"count": 1},
            },
        }

    runbook = slo.runbook or ""
    url = runbook if runbook.startswith("https://") else runbook_base_url.rstrip("/") + "/" + runbook
    severity = policy.severity
    content = [
        f"**{slo.display_name}: {policy.display_name.lower()}**",
        "",
        f"{policy.spec.get('description', '')}",
        "",
        f"Objective: {slo.target * 100:g} % over {slo.window_days} days. Runbook: {url}",
        "",
        "Run:",
        "- `phase3ops slo report`",
        "",
        f"SLO: `slos/{slo.name}.yaml`; alert policy: `slos/alert-policies/{policy.name}.yaml` (severity {severity})",
    ]
    return {
        "display_name": f"phase3 SLO: {slo.display_name}: {policy.display_name.lower()}",
        "user_labels": {
            "slo": slo.name,
            "alert-policy": policy.name,
            "component": component(slo),
            "severity": severity,
            "managed-by": "pulumi",
        },
        "combiner": "AND",
        "conditions": [
            condition(policy.long_window_seconds, "long"),
            condition(policy.short_window_seconds, "short"),
        ],
        "documentation": {
            "content": "\n".join(content),
            "mime_type": DOCUMENTATION_MIME_TYPE,
            "subject": f"[{severity.upper()}] SLO {slo.display_name}: {policy.display_name.lower()}"[:255],
            "links": [{"display_name": "Runbook", "url": url}]
            + [{"display_name": link_name(f"Dashboard: {title}"), "url": link} for title, link in dashboards],
        },
        "severity": _SEVERITY[severity],
        "enabled": True,
        "notification_channels": list(channel_ids),
        **(
            {}
            if policy.spec.get("alertWhenResolved", True)
            else {"alert_strategy": {"notification_prompts": ["OPENED"]}}
        ),
    }


def to_protos(project: str, slo: Slo, policies: dict[str, BurnRateAlert]) -> list[Any]:
    """Parse every body of the SLO into the API's messages; raises on what the API would refuse to parse."""
    from google.cloud import monitoring_v3

    messages = [
        monitoring_v3.Service.from_json(json.dumps(service_body()), ignore_unknown_fields=False),
        monitoring_v3.ServiceLevelObjective.from_json(json.dumps(slo_body(slo)), ignore_unknown_fields=False),
    ]
    for name in slo.alert_policy_names:
        if name in policies:
            body = burn_rate_policy_body(
                project, slo, policies[name], "https://runbooks.invalid/", ["projects/p/notificationChannels/1"]
            )
            messages.append(monitoring_v3.AlertPolicy.from_json(json.dumps(body), ignore_unknown_fields=False))
    return messages
