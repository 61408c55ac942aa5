"""Rewrite the vendored metric descriptor table from the Monitoring API's metricDescriptors.list.

    python scripts/refresh_metric_descriptors.py --project <any project with the Monitoring API on>

Google's metric descriptors are the same in every project; the call needs
only `monitoring.metricDescriptors.list` (roles/monitoring.viewer). The
table keeps, for every metric of the services the pipeline runs on, the
fields the lints read: type, kind, value type, unit, labels and monitored
resource types.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from phase3ops.monitoring.descriptors import DESCRIPTORS_FILE

SERVICES = (
    "run.googleapis.com/",
    "pubsub.googleapis.com/",
    "firestore.googleapis.com/",
    "bigquery.googleapis.com/",
    "logging.googleapis.com/",
)


def descriptor_entry(descriptor: Any) -> dict[str, Any]:
    """One google.api.MetricDescriptor (the client lists the protobuf messages themselves) as a row of the table."""
    from google.api import metric_pb2

    return {
        "type": descriptor.type,
        "metricKind": metric_pb2.MetricDescriptor.MetricKind.Name(descriptor.metric_kind),
        "valueType": metric_pb2.MetricDescriptor.ValueType.Name(descriptor.value_type),
        "unit": descriptor.unit,
        "monitoredResourceTypes": sorted(descriptor.monitored_resource_types),
        "labels": sorted(label.key for label in descriptor.labels),
    }


def table(descriptors: list[Any], today: dt.date) -> dict[str, Any]:
    previous = json.loads(DESCRIPTORS_FILE.read_text(encoding="utf-8"))
    return {
        "description": previous["description"],
        "source": f"metricDescriptors.list ({', '.join(s.rstrip('/') for s in SERVICES)}), {today.isoformat()}",
        "refresh": previous["refresh"],
        "metrics": sorted((descriptor_entry(d) for d in descriptors), key=lambda row: row["type"]),
    }


def fetch(project: str) -> list[Any]:
    from google.cloud import monitoring_v3

    client = monitoring_v3.MetricServiceClient()
    found = []
    for prefix in SERVICES:
        request = {"name": f"projects/{project}", "filter": f'metric.type = starts_with("{prefix}")'}
        found += list(client.list_metric_descriptors(request=request))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="a project whose Monitoring API the caller may read")
    parser.add_argument(
        "--output", type=Path, default=DESCRIPTORS_FILE, help="where to write (default: the vendored table)"
    )
    args = parser.parse_args(argv)
    descriptors = fetch(args.project)
    if not descriptors:
        print(
            f"the API listed no descriptors for {', '.join(SERVICES)} in {args.project}: the table is unchanged",
            file=sys.stderr,
        )
        return 2
    args.output.write_text(json.dumps(table(descriptors, dt.date.today()), indent=1) + "\n", encoding="utf-8")
    print(f"{len(descriptors)} metric descriptors written to {args.output}")
    return 0
