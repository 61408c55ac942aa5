"""A log-based metric and the wait until Cloud Monitoring can query it.

A new log-based metric can take minutes to become queryable ("could take up to 10 minutes to
become available": an alert policy or SLO on it fails with 404, a long-open provider issue), so
whatever filters on one depends on a time.Sleep that starts when the metric is created and runs
again only if the metric is replaced.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as time

from infra.components import child_options


def queryable_log_metric(
    parent: pulumi.Resource,
    opts: pulumi.ResourceOptions | None,
    resource_name: str,
    project: str,
    body: dict[str, Any],
    wait_seconds: int,
) -> tuple[gcp.logging.Metric, time.Sleep]:
    """The metric (`body`: the LogMetric's fields) and its wait, both children of `parent`."""
    metric = gcp.logging.Metric(resource_name, project=project, **body, opts=child_options(parent, opts))
    wait = time.Sleep(
        f"{resource_name}-queryable",
        create_duration=f"{wait_seconds}s",
        triggers={"metric": metric.id},
        opts=child_options(parent, opts, metric),
    )
    return metric, wait
