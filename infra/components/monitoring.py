"""Alert policies, log-based metrics and Slack channels from the validated specs in alerts/.

Nothing here decides what a policy looks like: `phase3ops.alerts.policies`
builds the API body that `phase3ops validate` already parsed into the
Cloud Monitoring API's own AlertPolicy, and this component hands the same
body to Pulumi, with the channel ids filled in. Adding a rule is adding a
YAML file.

A policy can only be created on a metric Cloud Monitoring knows:
- the health check's custom metrics are declared here (MetricDescriptor,
  from `phase3ops.checks.metrics`), and a policy on one depends on its
  descriptor, instead of waiting for the check's first run to create it;
- a new log-based metric can take minutes to become queryable ("could take
  up to 10 minutes to become available": the policy fails with 404, a
  long-open provider issue), so a policy on one waits for a time.Sleep
  that starts when the metric is created and runs again only if the metric
  is replaced.

Every policy's documentation links the runbook section and the dashboards
(`dashboard_links`, from the Dashboards component), so an incident opens on
what the on-call needs to look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as time

from infra.components import child_options
from infra.components.queryable_log_metric import queryable_log_metric
from phase3ops.alerts.policies import log_metric_body, policy_body
from phase3ops.alerts.specs import AlertRule, AlertSpecs
from phase3ops.monitoring.custom_metrics import CUSTOM_METRICS, custom_metric


@dataclass
class MonitoringArgs:
    project: str
    specs: AlertSpecs
    slack_tokens: dict[str, pulumi.Output[str]]  # tokenConfigKey -> secret token
    runbook_base_url: str
    labels: dict[str, str]
    log_metric_wait_seconds: int = 600
    dashboard_links: Sequence[tuple[str, pulumi.Input[str]]] = field(default_factory=list)  # (title, console URL)


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:Monitoring", name, None, opts)
        child = child_options(self, opts)
        self.channels: dict[str, gcp.monitoring.NotificationChannel] = {}
        for channel in args.specs.channels:
            token: pulumi.Output[str] = pulumi.Output.secret(args.slack_tokens[channel.token_config_key])
            self.channels[channel.name] = gcp.monitoring.NotificationChannel(
                channel.name,
                project=args.project,
                type="slack",
                display_name=channel.display_name,
                labels={"channel_name": channel.slack_channel},
                sensitive_labels={"auth_token": token},
                user_labels={**args.labels, "component": "monitoring", "owner": channel.team},
                # Kept encrypted in state and visible as secret to CrossGuard, which
                # otherwise receives secret values as plain text.
                opts=child_options(self, opts, additional_secret_outputs=["sensitiveLabels"]),
            )

        self.descriptors: dict[str, gcp.monitoring.MetricDescriptor] = {
            metric.name: gcp.monitoring.MetricDescriptor(
                f"metric-{metric.name}",
                project=args.project,
                type=metric.type,
                metric_kind=metric.metric_kind,
                value_type=metric.value_type,
                unit=metric.unit,
                display_name=f"phase3 {metric.name}",
                description=metric.description,
                opts=child,
            )
            for metric in CUSTOM_METRICS.values()
        }
        self.metrics: dict[str, gcp.logging.Metric] = {}
        self.metric_waits: dict[str, time.Sleep] = {}
        self.policies: dict[str, gcp.monitoring.AlertPolicy] = {}
        for rule in args.specs.rules:
            depends_on: list[pulumi.Resource] = [self.descriptors[name] for name in _custom_metrics_of(rule)]
            metric_body = log_metric_body(rule)
            if metric_body is not None:
                metric, wait = queryable_log_metric(
                    self, opts, metric_body["name"], args.project, metric_body, args.log_metric_wait_seconds
                )
                self.metrics[metric_body["name"]] = metric
                self.metric_waits[metric_body["name"]] = wait
                depends_on.append(wait)
            channels = [self.channels[name] for name in rule.spec["notify"]["channels"]]
            body = policy_body(rule, args.runbook_base_url, dashboards=args.dashboard_links)
            body["notification_channels"] = [c.name for c in channels]
            body["user_labels"] = {**body["user_labels"], "team": args.labels["team"]}
            self.policies[rule.name] = gcp.monitoring.AlertPolicy(
                rule.name,
                project=args.project,
                **body,
                # The metric must be known to Cloud Monitoring before a policy can filter on its type.
                opts=child_options(self, opts, *depends_on),
            )
        self.register_outputs(
            {
                "channels": {name: c.name for name, c in self.channels.items()},
                "policies": {name: p.name for name, p in self.policies.items()},
            }
        )


def _custom_metrics_of(rule: AlertRule) -> list[str]:
    """The declared custom metrics a rule's conditions name (both sides of a ratio included)."""
    names = []
    for _, selector in rule.metric_selectors():
        declared = custom_metric(selector["metric"])
        if declared is not None and declared.name not in names:
            names.append(declared.name)
    return names
