"""SLOs from the validated OpenSLO specs in slos/: the hand-off's custom service, its
ServiceLevelObjectives, the log-based metrics their SLIs count, the burn-rate alert policies
and the SLO dashboard.

Nothing here decides what an object looks like: `phase3ops.slos.cloud_monitoring` builds the
bodies that `phase3ops validate` already parsed into the API's messages. Adding an SLO is adding
a YAML file.

A new log-based metric can take minutes to become queryable, as for the alert rules: the SLO
waits for a time.Sleep started when its metrics are created. Each burn-rate policy names its SLO
by resource name (the SLO id is the spec's name, not left to Cloud Monitoring), so the
policy depends on the SLO explicitly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as time

from infra.components import child_options
from infra.components.queryable_log_metric import queryable_log_metric
from phase3ops.dashboards.render import console_url
from phase3ops.monitoring.metrics import counter_log_metric_body
from phase3ops.slos.cloud_monitoring import burn_rate_policy_body, service_body, slo_body
from phase3ops.slos.dashboard import DASHBOARD_NAME, DISPLAY_NAME, slo_dashboard_json
from phase3ops.slos.event_metrics import event_metric
from phase3ops.slos.specs import SERVICE_ID, SloSpecs


@dataclass
class ServiceLevelsArgs:
    project: str
    specs: SloSpecs
    channels: dict[str, gcp.monitoring.NotificationChannel]  # alerts/channels.yaml, by name
    runbook_base_url: str
    labels: dict[str, str]
    log_metric_wait_seconds: int = 600
    dashboard_links: Sequence[tuple[str, pulumi.Input[str]]] = field(default_factory=list)


class ServiceLevels(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServiceLevelsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:ServiceLevels", name, None, opts)
        child = child_options(self, opts)
        service = service_body()
        self.service = gcp.monitoring.CustomService(
            "handoff-service",
            project=args.project,
            service_id=SERVICE_ID,
            display_name=service["display_name"],
            user_labels={**service["user_labels"], "team": args.labels["team"]},
            opts=child,
        )
        self.metrics: dict[str, gcp.logging.Metric] = {}
        self.metric_waits: dict[str, time.Sleep] = {}
        for slo in args.specs.slos:
            for _, selector in slo.selectors():
                metric = event_metric(selector["metric"])
                if metric is None or metric.name in self.metrics:
                    continue  # validate refuses an SLI on anything else
                body = counter_log_metric_body(
                    {"name": metric.name, "filter": metric.filter, "description": metric.description}
                )
                self.metrics[metric.name], self.metric_waits[metric.name] = queryable_log_metric(
                    self, opts, f"slo-{metric.name}", args.project, body, args.log_metric_wait_seconds
                )
        self.slos: dict[str, gcp.monitoring.Slo] = {}
        self.policies: dict[str, gcp.monitoring.AlertPolicy] = {}
        for slo in args.specs.slos:
            body = slo_body(slo)
            ratio = body["service_level_indicator"]["request_based"]["good_total_ratio"]
            waits = [
                self.metric_waits[m.name] for _, s in slo.selectors() if (m := event_metric(s["metric"])) is not None
            ]
            self.slos[slo.name] = gcp.monitoring.Slo(
                f"slo-{slo.name}",
                project=args.project,
                service=self.service.service_id,
                slo_id=slo.name,
                display_name=body["display_name"],
                goal=body["goal"],
                rolling_period_days=slo.window_days,
                request_based_sli={"good_total_ratio": ratio},
                user_labels={**body["user_labels"], "team": args.labels["team"]},
                opts=child_options(self, opts, self.service, *waits),
            )
        self.dashboard = gcp.monitoring.Dashboard(
            DASHBOARD_NAME,
            project=args.project,
            dashboard_json=slo_dashboard_json(args.project, args.specs, {**args.labels, "component": "slos"}),
            opts=child_options(self, opts, *self.slos.values()),
        )
        # An incident opens on the SLO's row: the burn-rate policies link this dashboard first.
        self.url = self.dashboard.id.apply(functools.partial(console_url, project=args.project))
        links = [(DISPLAY_NAME, self.url), *args.dashboard_links]
        for slo in args.specs.slos:
            for policy_name in slo.alert_policy_names:
                policy = args.specs.alert_policies[policy_name]
                channels = [args.channels[target] for target in policy.targets]
                alert = burn_rate_policy_body(args.project, slo, policy, args.runbook_base_url, dashboards=links)
                alert["notification_channels"] = [channel.name for channel in channels]
                alert["user_labels"] = {**alert["user_labels"], "team": args.labels["team"]}
                self.policies[f"{slo.name}-{policy_name}"] = gcp.monitoring.AlertPolicy(
                    f"slo-{slo.name}-{policy_name}",
                    project=args.project,
                    **alert,
                    opts=child_options(self, opts, self.slos[slo.name]),
                )
        self.register_outputs(
            {
                "slos": {name: slo.name for name, slo in self.slos.items()},
                "policies": {name: p.name for name, p in self.policies.items()},
                "dashboard": self.url,
            }
        )
