"""What Google defines for the two filter languages: LogEntry fields, severities, functions, Monitoring
selectors and the monitored resource types (with their labels) this project can log or measure."""

from __future__ import annotations

from dataclasses import dataclass

# Cloud Logging takes queries of up to 20,000 characters
# (https://cloud.google.com/logging/quotas); an alert policy's Monitoring
# filter at most 2,048. Nothing longer can deploy, so nothing longer is parsed.
MAX_FILTER_CHARS = 20_000
# Parentheses, NOTs and function calls inside each other. Real filters nest
# two or three deep; the parser recurses once per level.
MAX_NESTING = 50

# Monitored resource types a filter here may name, with their labels as
# Google lists them (https://cloud.google.com/monitoring/api/resources,
# https://cloud.google.com/logging/docs/api/v2/resource-list); None where the
# labels are not checked. Written from those lists, not fetched from them: a
# type or label reported as unknown that is real belongs here.
MONITORED_RESOURCES: dict[str, frozenset[str] | None] = {
    "audited_resource": frozenset({"project_id", "service", "method"}),
    "bigquery_dataset": frozenset({"project_id", "dataset_id"}),
    "bigquery_project": frozenset({"project_id", "location"}),
    "bigquery_resource": None,
    "cloud_function": frozenset({"project_id", "function_name", "region"}),
    "cloud_run_job": frozenset({"project_id", "job_name", "location"}),
    "cloud_run_revision": frozenset({"project_id", "service_name", "revision_name", "configuration_name", "location"}),
    "cloud_scheduler_job": frozenset({"project_id", "job_id", "location"}),
    "cloud_tasks_queue": None,
    "cloudsql_database": frozenset({"project_id", "database_id", "region"}),
    "gae_app": frozenset({"project_id", "module_id", "version_id", "zone"}),
    "gce_instance": frozenset({"project_id", "instance_id", "zone"}),
    "gcs_bucket": frozenset({"project_id", "bucket_name", "location"}),
    "global": frozenset({"project_id"}),
    "k8s_cluster": frozenset({"project_id", "location", "cluster_name"}),
    "k8s_container": frozenset(
        {"project_id", "location", "cluster_name", "namespace_name", "pod_name", "container_name"}
    ),
    "k8s_node": frozenset({"project_id", "location", "cluster_name", "node_name"}),
    "k8s_pod": frozenset({"project_id", "location", "cluster_name", "namespace_name", "pod_name"}),
    "project": frozenset({"project_id"}),
    "prometheus_target": None,
    # Cloud Monitoring's notification channels: where it logs the notifications it could not deliver
    # (log monitoring.googleapis.com/notification_channel_events).
    "stackdriver_notification_channel": None,
    "pubsub_subscription": frozenset({"project_id", "subscription_id"}),
    "pubsub_topic": frozenset({"project_id", "topic_id"}),
    "uptime_url": None,
}

# google.logging.type.LogSeverity, in order; inequalities compare these numbers.
SEVERITIES: dict[str, int] = {
    "DEFAULT": 0,
    "DEBUG": 100,
    "INFO": 200,
    "NOTICE": 300,
    "WARNING": 400,
    "ERROR": 500,
    "CRITICAL": 600,
    "ALERT": 700,
    "EMERGENCY": 800,
}

# The fields of a LogEntry (JSON names) and what lies below each one:
# None a value with no fields, ANY_PATH a map or payload (any key), or the
# known subfields. Naming anything else is an error in Logging itself
# ("unknown field"), e.g. `thud` or `textPayload.thud`.
ANY_PATH = "any path"
FieldTree = None | str | dict
LOG_ENTRY_FIELDS: dict[str, FieldTree] = {
    "logName": None,
    "resource": {"type": None, "labels": ANY_PATH},
    "timestamp": None,
    "receiveTimestamp": None,
    "severity": None,
    "insertId": None,
    "httpRequest": dict.fromkeys(
        [
            "requestMethod",
            "requestUrl",
            "requestSize",
            "status",
            "responseSize",
            "userAgent",
            "remoteIp",
            "serverIp",
            "referer",
            "latency",
            "cacheLookup",
            "cacheHit",
            "cacheValidatedWithOriginServer",
            "cacheFillBytes",
            "protocol",
        ]
    ),
    "labels": ANY_PATH,
    "operation": dict.fromkeys(["id", "producer", "first", "last"]),
    "trace": None,
    "spanId": None,
    "traceSampled": None,
    "sourceLocation": dict.fromkeys(["file", "line", "function"]),
    "split": dict.fromkeys(["uid", "index", "totalSplits"]),
    "textPayload": None,
    "jsonPayload": ANY_PATH,
    "protoPayload": ANY_PATH,
    "errorGroups": {"id": None},
    "apphub": ANY_PATH,
    "apphubDestination": ANY_PATH,
    "apphubSource": ANY_PATH,
    "metadata": {"systemLabels": ANY_PATH, "userLabels": ANY_PATH},
}


@dataclass(frozen=True)
class Arity:
    least: int
    most: int | None  # None: any number
    field_arguments: tuple[int, ...] = ()  # positions that name a LogEntry field

    def accepts(self, count: int) -> bool:
        return count >= self.least and (self.most is None or count <= self.most)

    def describe(self) -> str:
        if self.most is None:
            return f"at least {self.least} argument{'s' if self.least != 1 else ''}"
        if self.least == self.most:
            return f"{self.least} argument{'s' if self.least != 1 else ''}"
        return f"{self.least} to {self.most} arguments"


# Logging functions (names compared without case: the docs write both
# `log_id` and `SEARCH`). SEARCH's field comes first only when it has two.
LOGGING_FUNCTIONS: dict[str, Arity] = {
    "log_id": Arity(1, 1),
    "source": Arity(1, 1),
    "sample": Arity(2, 2, (0,)),
    "ip_in_net": Arity(2, 2, (0,)),
    "search": Arity(1, 2),
    "cast": Arity(2, 3, (0,)),
    "regexp_extract": Arity(2, 2, (0,)),
    "timezone": Arity(1, 1),
}
# Right-hand functions of the Monitoring filter language.
MONITORING_FUNCTIONS: dict[str, Arity] = {
    "starts_with": Arity(1, 1),
    "ends_with": Arity(1, 1),
    "has_substring": Arity(1, 2),  # the second: true for a case-insensitive match
    "one_of": Arity(1, None),
    "monitoring.regex.full_match": Arity(1, 1),
}
ANY_KEY = "KEY"  # any one label key
MONITORING_SELECTORS: tuple[str, ...] = (
    "metric.type",
    "metric.labels.KEY",
    "metric.label.KEY",
    "resource.type",
    "resource.labels.KEY",
    "resource.label.KEY",
    "project",
    "group.id",
    "metadata.system_labels.KEY",
    "metadata.user_labels.KEY",
)
