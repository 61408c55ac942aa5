"""Cloud Monitoring dashboards, and the log-based metrics they chart, from the validated specs in dashboards/.

Nothing here decides what a dashboard looks like: `phase3ops.dashboards.render`
builds the Dashboard message that `phase3ops validate` already parsed with the
API's client library, and `dashboard_json` is that message, serialised. Adding
a widget is editing YAML.

A chart on a metric that has no data yet draws nothing until data arrives,
so unlike an alert policy a dashboard need not wait for its log metrics to
become queryable; it waits only for them to exist.

`links` are the dashboards' console URLs, known once each is created (its id
is Cloud Monitoring's choice): the alert policies put them in their
documentation, so an incident opens on the dashboard.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components import child_options
from phase3ops.dashboards.render import console_url, dashboard_json, log_metric_body
from phase3ops.dashboards.specs import DashboardSpecs


@dataclass
class DashboardsArgs:
    project: str
    specs: DashboardSpecs
    labels: dict[str, str]


class Dashboards(pulumi.ComponentResource):
    def __init__(self, name: str, args: DashboardsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("phase3:infra:Dashboards", name, None, opts)
        child = child_options(self, opts)
        labels = {**args.labels, "component": "monitoring"}
        self.metrics: dict[str, gcp.logging.Metric] = {}
        self.dashboards: dict[str, gcp.monitoring.Dashboard] = {}
        self.urls: dict[str, pulumi.Output[str]] = {}  # console URL, by dashboard name
        self.links: list[tuple[str, pulumi.Output[str]]] = []  # (title, console URL), for the alert policies
        for spec in args.specs.dashboards:
            metrics = []
            for metric in spec.log_metrics:
                body = log_metric_body(metric)
                self.metrics[body["name"]] = gcp.logging.Metric(body["name"], project=args.project, **body, opts=child)
                metrics.append(self.metrics[body["name"]])
            dashboard = gcp.monitoring.Dashboard(
                spec.name,
                project=args.project,
                dashboard_json=dashboard_json(spec, labels),
                opts=child_options(self, opts, *metrics),
            )
            self.dashboards[spec.name] = dashboard
            self.urls[spec.name] = dashboard.id.apply(functools.partial(console_url, project=args.project))
            self.links.append((spec.display_name, self.urls[spec.name]))
        self.register_outputs({"urls": self.urls})
