"""Log lines as Cloud Logging stores them, and a Logging-query matcher over them.

Tests use these to ask "would this alert's log-based metric count this line?"
of the lines our processes really write, with the matcher `phase3ops alerts
test` uses (phase3ops.filters.log_matching).
"""

from __future__ import annotations

import json
from typing import Any

from phase3ops.filters.log_matching import matches

__all__ = ["RUN_LOG", "cloud_run_entry", "cloud_run_request_entry", "matches"]

RUN_LOG = "projects/{project}/logs/run.googleapis.com%2F{name}"


def cloud_run_entry(line: str, service: str, project: str = "p", stream: str = "stdout") -> dict[str, Any]:
    """One container output line as Cloud Run ingests it: a JSON line's `severity` and
    `message` become the entry's, the rest its jsonPayload; plain text stays textPayload."""
    entry: dict[str, Any] = {
        "logName": RUN_LOG.format(project=project, name=stream),
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service, "project_id": project}},
    }
    try:
        payload = json.loads(line)
    except ValueError:
        return {**entry, "severity": "DEFAULT", "textPayload": line}
    return {**entry, "severity": payload.pop("severity", "DEFAULT"), "jsonPayload": payload}


def cloud_run_request_entry(status: int, service: str, project: str = "p") -> dict[str, Any]:
    """The request log entry Cloud Run writes for every request it serves (5xx at ERROR)."""
    severity = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
    return {
        "logName": RUN_LOG.format(project=project, name="requests"),
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service, "project_id": project}},
        "severity": severity,
        "httpRequest": {"status": status, "requestMethod": "POST"},
    }
