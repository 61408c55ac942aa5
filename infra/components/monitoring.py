"""Alert policies, log-based metrics and Slack channels from the validated specs in alerts/.

Nothing here decides what a policy looks like: `phase3ops.alerts.policies`
builds the API body that `phase3ops validate` already parsed into the
Cloud Monitoring API's own AlertPolicy, and this component hands the same
body to Pulumi, with the channel ids filled in. Adding a rule is adding a
YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from phase3ops.alerts.policies import log_metric_body, policy_body
from phase3ops.alerts.specs import AlertSpecs


@dataclass
class MonitoringArgs:
    project: str
    specs: AlertSpecs
    slack_tokens: dict[str, pulumi.Output[str]]  # tokenConfigKey -> secret token
    runbook_base_url: str
    labels: dict[str, str]


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.channels: dict[str, gcp.monitoring.NotificationChannel] = {}
        for channel in args.specs.channels:
            self.channels[channel.name] = gcp.monitoring.NotificationChannel(
                channel.name,
                project=args.project,
                type="slack",
                display_name=channel.display_name,
                labels={"channel_name": channel.slack_channel},
                sensitive_labels={"auth_token": pulumi.Output.secret(args.slack_tokens[channel.token_config_key])},
                user_labels={**args.labels, "component": "monitoring", "owner": channel.team},
                # Kept encrypted in state and visible as secret to CrossGuard, which
                # otherwise receives secret values as plain text.
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["sensitiveLabels"]),
            )

        self.metrics: dict[str, gcp.logging.Metric] = {}
        self.policies: dict[str, gcp.monitoring.AlertPolicy] = {}
        for rule in args.specs.rules:
            depends_on = []
            metric_body = log_metric_body(rule)
            if metric_body is not None:
                metric = gcp.logging.Metric(metric_body["name"], project=args.project, **metric_body, opts=child)
                self.metrics[metric_body["name"]] = metric
                depends_on.append(metric)
            channels = [self.channels[name] for name in rule.spec["notify"]["channels"]]
            body = policy_body(rule, args.runbook_base_url)
            body["notification_channels"] = [c.name for c in channels]
            body["user_labels"] = {**body["user_labels"], "team": args.labels["team"]}
            self.policies[rule.name] = gcp.monitoring.AlertPolicy(
                rule.name,
                project=args.project,
                **body,
                # The log metric must exist before a policy can filter on its type.
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
            )
        self.register_outputs(
            {
                "channels": {name: c.name for name, c in self.channels.items()},
                "policies": {name: p.name for name, p in self.policies.items()},
            }
        )
