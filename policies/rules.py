"""The CrossGuard rules every deployment of this stack must pass, as plain functions.

Each resource rule is `(args: ResourceValidationArgs, report_violation)` and
each stack rule `(args: StackValidationArgs, report_violation)`; properties
are camelCase, as the engine sends them. `build_policies()` wraps them in
pulumi_policy objects for `__main__.py` (which only builds the pack) and for
the offline runner (`phase3ops plan --policies`). Tests call the functions
directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

PACK_NAME = "phase3-guardrails"

FUNCTION = "gcp:cloudfunctionsv2/function:Function"
RUN_SERVICE = "gcp:cloudrunv2/service:Service"
RUN_JOB = "gcp:cloudrunv2/job:Job"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
ALERT_POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
LOG_METRIC = "gcp:logging/metric:Metric"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
SLO = "gcp:monitoring/slo:Slo"
PUBSUB_EVENT = "google.cloud.pubsub.topic.v1.messagePublished"
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
PRIMITIVE_ROLES = ("roles/owner", "roles/editor", "roles/viewer")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
CONTENT_HASHED_OBJECT = re.compile(r"-([0-9a-f]{12,})\.zip$")
# Resource types whose labels the API keeps, and under which property.
LABELLED = {
    FUNCTION: "labels",
    RUN_SERVICE: "labels",
    RUN_JOB: "labels",
    "gcp:pubsub/topic:Topic": "labels",
    SUBSCRIPTION: "labels",
    "gcp:storage/bucket:Bucket": "labels",
    ALERT_POLICY: "userLabels",
    CHANNEL: "userLabels",
    SLO: "userLabels",
}

ReportViolation = Callable[..., None]


# -- helpers ---------------------------------------------------------------


def _get(props: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(props, list):
            props = props[0] if props else None
        if not hasattr(props, "get"):
            return None
        props = props.get(part)
    return props


def _images(args: ResourceValidationArgs) -> list[str]:
    template = args.props.get("template") or {}
    if args.resource_type == RUN_JOB:
        template = template.get("template") or {}
    return [c.get("image", "") for c in template.get("containers") or []]


# Where a policy's condition names what it watches: filters, a ratio's denominator, a PromQL query.
_CONDITION_TEXTS = (
    "conditionThreshold.filter",
    "conditionThreshold.denominatorFilter",
    "conditionAbsent.filter",
    "conditionMatchedLog.filter",
    "conditionPrometheusQueryLanguage.query",
)


def _filters(props: Any) -> list[str]:
    found = []
    for condition in props.get("conditions") or []:
        for path in _CONDITION_TEXTS:
            text = _get(condition, path)
            if text:
                found.append(text)
    return found


def _names_workload(texts: Iterable[str], name: str) -> bool:
    pattern = re.compile(rf'(service_name|function_name|job_name)\s*=\s*"{re.escape(name)}"')
    return any(pattern.search(text) for text in texts)


def _names_workload_in_a_list(texts: Iterable[str], name: str) -> bool:
    """`service_name=one_of("a", "b")` (Monitoring) or `service_name=("a" OR "b")` (Logging) names b too."""
    pattern = re.compile(rf'(service_name|function_name|job_name)\s*=\s*(one_of)?\s*\([^)]*"{re.escape(name)}"')
    return any(pattern.search(text) for text in texts)


def _dashboard_filters(props: Any) -> list[str]:
    """Every filter of a dashboard's widgets (time series and logs panels), from its dashboardJson."""
    try:
        body = json.loads(props.get("dashboardJson") or "")
    except (TypeError, ValueError):
        return []
    found = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "filter" and isinstance(value, str):
                    found.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(body)
    return found


# -- resource rules ----------------------------------------------------------


def allowed_regions(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    allowed = [r.lower() for r in args.get_config().get("allowedRegions", [])]
    for key in ("location", "region"):
        value = args.props.get(key)
        if isinstance(value, str) and value.lower() not in allowed:
            report_violation(f"{args.name} is in {value}; allowed regions: {', '.join(allowed)}")


def no_public_or_primitive_grants(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    members = [args.props["member"]] if "member" in args.props else list(args.props.get("members") or [])
    for member in members:
        if member in PUBLIC_MEMBERS:
            report_violation(f"{args.name} grants {args.props.get('role')} to {member}")
    role = args.props.get("role")
    if role in PRIMITIVE_ROLES:
        report_violation(f"{args.name} grants the primitive role {role}; grant a predefined role instead")


def cloud_run_internal_ingress(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != RUN_SERVICE:
        return
    allowed = args.get_config().get("allowedIngress", [])
    ingress = args.props.get("ingress") or "INGRESS_TRAFFIC_ALL"
    if ingress not in allowed:
        report_violation(f"{args.name} has ingress {ingress}; allowed: {', '.join(allowed)}")


def images_pinned_by_digest(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in (RUN_SERVICE, RUN_JOB):
        return
    for image in _images(args):
        if image.endswith(":latest") or ":latest@" in image:
            report_violation(f"{args.name} runs {image}: never deploy 'latest'")
        elif not DIGEST.search(image):
            report_violation(f"{args.name} runs {image}, a tag; pin the image by digest (@sha256:...)")


def pubsub_functions_retry_and_are_bounded(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != FUNCTION or _get(args.props, "eventTrigger.eventType") != PUBSUB_EVENT:
        return
    config = args.get_config()
    retry = _get(args.props, "eventTrigger.retryPolicy")
    if retry != "RETRY_POLICY_RETRY":
        report_violation(f"{args.name} does not retry failed events (retryPolicy {retry}); set RETRY_POLICY_RETRY")
    instances = _get(args.props, "serviceConfig.maxInstanceCount")
    if not instances or instances > config.get("maxInstances", 100):
        report_violation(
            f"{args.name} needs serviceConfig.maxInstanceCount between 1 and {config.get('maxInstances', 100)}, got {instances}"
        )
    timeout = _get(args.props, "serviceConfig.timeoutSeconds")
    if not timeout or timeout > config.get("maxTimeoutSeconds", 540):
        report_violation(
            f"{args.name} needs serviceConfig.timeoutSeconds up to {config.get('maxTimeoutSeconds', 540)}, got {timeout}"
        )


def push_subscriptions_authenticated(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != SUBSCRIPTION or not args.props.get("pushConfig"):
        return
    if not _get(args.props, "pushConfig.oidcToken.serviceAccountEmail"):
        report_violation(f"{args.name} pushes without an OIDC token; set pushConfig.oidcToken")
    if not _get(args.props, "deadLetterPolicy.deadLetterTopic"):
        report_violation(
            f"{args.name} has no dead-letter policy; undeliverable messages would be retried until they expire"
        )


def alert_policies_well_formed(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != ALERT_POLICY:
        return
    if not args.props.get("notificationChannels"):
        report_violation(f"{args.name} notifies no channel")
    conditions = args.props.get("conditions") or []
    if any(c.get("conditionMatchedLog") for c in conditions):
        if not _get(args.props, "alertStrategy.notificationRateLimit.period"):
            report_violation(f"{args.name} has a log-match condition without alertStrategy.notificationRateLimit")
        if len(conditions) > 1:
            report_violation(
                f"{args.name} has a log-match condition beside {len(conditions) - 1} other(s); it must be alone"
            )
    links = _get(args.props, "documentation.links") or []
    content = _get(args.props, "documentation.content") or ""
    if not any(link.get("url", "").startswith("https://") for link in links) and "https://" not in content:
        report_violation(f"{args.name} has no runbook link in its documentation")


def slack_tokens_are_secret(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != CHANNEL or args.props.get("type") != "slack":
        return
    if "auth_token" in (args.props.get("labels") or {}):
        report_violation(f"{args.name} has its Slack token in plain labels; use sensitiveLabels.authToken")
    if not _get(args.props, "sensitiveLabels.authToken"):
        report_violation(f"{args.name} has no sensitiveLabels.authToken")
    if "sensitiveLabels" not in (args.opts.additional_secret_outputs or []):
        report_violation(f"{args.name} does not mark sensitiveLabels as a secret output (additional_secret_outputs)")


def required_labels(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    key = LABELLED.get(args.resource_type)
    if key is None:
        return
    config = args.get_config()
    labels = args.props.get(key) or {}
    missing = [label for label in config.get("requiredLabels", []) if label not in labels]
    if missing:
        report_violation(f"{args.name} lacks the labels {', '.join(missing)}")
    team = config.get("team")
    if team and labels.get("team") != team:
        report_violation(f"{args.name} has team label {labels.get('team')!r}, expected {team!r}")


def function_source_content_addressed(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != FUNCTION:
        return
    source_object = _get(args.props, "buildConfig.source.storageSource.object") or ""
    match = CONTENT_HASHED_OBJECT.search(source_object)
    if not match:
        report_violation(f"{args.name} deploys from {source_object!r}, a name that does not change with the content")
        return
    label = (args.props.get("labels") or {}).get("source-hash")
    if label and not match.group(1).startswith(label):
        report_violation(f"{args.name} has source-hash label {label} but deploys {source_object}")


# -- stack rules -------------------------------------------------------------


def workloads_covered_by_alerts(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    policies = [r for r in args.resources if r.resource_type == ALERT_POLICY]
    texts = [text for policy in policies for text in _filters(policy.props)]
    for policy in policies:  # a policy on a log metric covers what the metric's filter names
        texts += [d.props.get("filter", "") for d in policy.dependencies if d.resource_type == LOG_METRIC]
    for resource in args.resources:
        if resource.resource_type in (FUNCTION, RUN_SERVICE):
            name = resource.props.get("name") or resource.name
            if not _names_workload(texts, name):
                report_violation(
                    f"{resource.resource_type.rsplit(':', 1)[-1]} {name} is watched by no alert policy", resource.urn
                )


def workloads_on_a_dashboard(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """An incident opens on the dashboards: a workload none of them shows is one the on-call cannot see."""
    texts = [text for r in args.resources if r.resource_type == DASHBOARD for text in _dashboard_filters(r.props)]
    # A chart on a log-based metric shows what the metric's filter names.
    log_metrics = {
        r.props.get("name"): r.props.get("filter", "") for r in args.resources if r.resource_type == LOG_METRIC
    }
    charted = {
        name
        for text in texts
        for name in re.findall(r'metric\.type\s*=\s*"logging\.googleapis\.com/user/([^"]+)"', text)
    }
    texts += [log_metrics[name] for name in charted if name in log_metrics]
    for resource in args.resources:
        if resource.resource_type in (FUNCTION, RUN_SERVICE):
            name = resource.props.get("name") or resource.name
            if not (_names_workload(texts, name) or _names_workload_in_a_list(texts, name)):
                report_violation(
                    f"{resource.resource_type.rsplit(':', 1)[-1]} {name} appears on no dashboard", resource.urn
                )


def channels_are_used(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    used = {
        c for r in args.resources if r.resource_type == ALERT_POLICY for c in r.props.get("notificationChannels") or []
    }
    for resource in args.resources:
        if resource.resource_type == CHANNEL and resource.props.get("name") not in used:
            report_violation(f"notification channel {resource.name} is used by no alert policy", resource.urn)


def slos_have_burn_rate_alerts(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """An SLO nobody is alerted on burns its budget in silence: each needs a policy on its burn rate."""
    burn_rate_targets = {
        match
        for r in args.resources
        if r.resource_type == ALERT_POLICY
        for text in _filters(r.props)
        for match in re.findall(r'select_slo_burn_rate\(\s*"[^"]*/serviceLevelObjectives/([^"/]+)"', text)
    }
    for resource in args.resources:
        if resource.resource_type == SLO and resource.props.get("sloId") not in burn_rate_targets:
            report_violation(
                f"SLO {resource.props.get('sloId') or resource.name} has no burn-rate alert policy", resource.urn
            )


# -- the pack -------------------------------------------------------------------

MANDATORY, ADVISORY = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY


def build_policies() -> list:
    def resource(name, description, validate, level=MANDATORY, schema=None):
        return ResourceValidationPolicy(
            name=name, description=description, validate=validate, enforcement_level=level, config_schema=schema
        )

    return [
        resource(
            "allowed-regions",
            "Resources are deployed in the allowed regions.",
            allowed_regions,
            schema=PolicyConfigSchema(
                {"allowedRegions": {"type": "array", "items": {"type": "string"}, "default": ["us-west2"]}}
            ),
        ),
        resource(
            "no-public-or-primitive-grants",
            "No IAM grant to allUsers/allAuthenticatedUsers, no primitive roles.",
            no_public_or_primitive_grants,
        ),
        resource(
            "cloud-run-internal-ingress",
            "Cloud Run services accept internal traffic only (or an allowed ingress).",
            cloud_run_internal_ingress,
            schema=PolicyConfigSchema(
                {
                    "allowedIngress": {
                        "type": "array",
                        "items": {"type": "string"},
                        "default": ["INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"],
                    }
                }
            ),
        ),
        resource(
            "images-pinned-by-digest",
            "Cloud Run runs images pinned by digest, never a tag or 'latest'.",
            images_pinned_by_digest,
        ),
        resource(
            "pubsub-functions-retry-and-are-bounded",
            "Pub/Sub-triggered functions retry failed events and have bounded instances and a timeout.",
            pubsub_functions_retry_and_are_bounded,
            schema=PolicyConfigSchema(
                {
                    "maxInstances": {"type": "integer", "minimum": 1, "default": 100},
                    "maxTimeoutSeconds": {"type": "integer", "minimum": 1, "default": 540},
                }
            ),
        ),
        resource(
            "push-subscriptions-authenticated",
            "Push subscriptions authenticate with OIDC and dead-letter.",
            push_subscriptions_authenticated,
        ),
        resource(
            "alert-policies-well-formed",
            "Alert policies notify a channel, log-match conditions are rate-limited and alone, and a runbook is linked.",
            alert_policies_well_formed,
        ),
        resource(
            "slack-tokens-are-secret", "Slack channel tokens are secrets, never plain values.", slack_tokens_are_secret
        ),
        resource(
            "required-labels",
            "Resources that take labels carry component, managed-by and the owning team.",
            required_labels,
            level=ADVISORY,
            schema=PolicyConfigSchema(
                {
                    "requiredLabels": {
                        "type": "array",
                        "items": {"type": "string"},
                        "default": ["component", "managed-by", "team"],
                    },
                    "team": {"type": "string", "default": "data-platform"},
                }
            ),
        ),
        resource(
            "function-source-content-addressed",
            "Function source objects are named by their content hash, so a code change redeploys and nothing else does.",
            function_source_content_addressed,
        ),
        StackValidationPolicy(
            name="workloads-covered-by-alerts",
            description="Every function and Cloud Run service is named by at least one alert policy.",
            validate=workloads_covered_by_alerts,
            enforcement_level=MANDATORY,
        ),
        StackValidationPolicy(
            name="workloads-on-a-dashboard",
            description="Every function and Cloud Run service is named by a filter of some dashboard widget.",
            validate=workloads_on_a_dashboard,
            enforcement_level=ADVISORY,
        ),
        StackValidationPolicy(
            name="slos-have-burn-rate-alerts",
            description="Every SLO is watched by an alert policy on its burn rate (select_slo_burn_rate).",
            validate=slos_have_burn_rate_alerts,
            enforcement_level=MANDATORY,
        ),
        StackValidationPolicy(
            name="channels-are-used",
            description="Every notification channel is used by an alert policy.",
            validate=channels_are_used,
            enforcement_level=MANDATORY,
        ),
    ]
