"""The planned resource graph as a reviewer reads it (text) or a machine does (JSON)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from phase3ops.plan.preconditions import Precondition
from phase3ops.plan.runner import STACK_TYPE, PlannedResource, PlanResult

SECRET = "[secret]"
# The few properties that say what a resource is, by type (camelCase paths, as the engine sends them).
KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "gcp:cloudfunctionsv2/function:Function": (
        "location",
        "buildConfig.source.storageSource.object",
        "eventTrigger.eventType",
        "eventTrigger.retryPolicy",
        "serviceConfig.maxInstanceCount",
        "serviceConfig.timeoutSeconds",
        "serviceConfig.ingressSettings",
    ),
    "gcp:cloudrunv2/service:Service": (
        "location",
        "ingress",
        "template.containers[0].image",
        "template.scaling.maxInstanceCount",
    ),
    "gcp:cloudrunv2/job:Job": ("template.template.containers[0].commands", "template.template.containers[0].args"),
    "gcp:cloudscheduler/job:Job": ("schedule", "timeZone"),
    "gcp:pubsub/topic:Topic": ("name",),
    "gcp:pubsub/subscription:Subscription": ("name", "pushConfig.pushEndpoint", "deadLetterPolicy.maxDeliveryAttempts"),
    "gcp:monitoring/alertPolicy:AlertPolicy": ("displayName", "severity", "enabled", "notificationChannels"),
    "gcp:monitoring/notificationChannel:NotificationChannel": (
        "type",
        "labels.channel_name",
        "sensitiveLabels.authToken",
    ),
    "gcp:logging/metric:Metric": ("name", "metricDescriptor.valueType"),
    "gcp:projects/iAMMember:IAMMember": ("role", "member"),
    "gcp:pubsub/topicIAMMember:TopicIAMMember": ("topic", "role", "member"),
    "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember": ("subscription", "role", "member"),
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": ("name", "role", "member"),
    "gcp:cloudrunv2/jobIamMember:JobIamMember": ("name", "role", "member"),
    "gcp:serviceaccount/account:Account": ("accountId",),
    "gcp:storage/bucket:Bucket": ("name", "location"),
    "gcp:storage/bucketObject:BucketObject": ("name",),
    "gcp:firestore/field:Field": ("collection", "field", "ttlConfig"),
}
_PATH = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _dashboard_summary(inputs: dict[str, Any]) -> list[str]:
    """A dashboard's inputs are one JSON document: show its title, size and what it charts, not the text."""
    try:
        body = json.loads(inputs.get("dashboardJson") or "")
    except (TypeError, ValueError):
        return []
    tiles = (body.get("mosaicLayout") or {}).get("tiles") or []
    metrics = sorted(set(re.findall(r'metric\.type=\\?"([^"\\]+)', json.dumps(tiles))))
    return [f"displayName={body.get('displayName')}", f"tiles={len(tiles)}", f"metrics={len(metrics)}"]


# Properties computed from the inputs, by type, shown after the key properties.
SUMMARIES = {"gcp:monitoring/dashboard:Dashboard": _dashboard_summary}


def lookup(value: Any, path: str) -> Any:
    for name, index in _PATH.findall(path):
        if index:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        else:
            value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def redacted(resource: PlannedResource) -> dict[str, Any]:
    """Inputs with every secret value replaced, so a plan can be pasted anywhere."""
    inputs = json.loads(json.dumps(resource.inputs, default=str))
    for path in resource.secret_paths:
        parts = [p for p in re.split(r"\.|\[(\d+)\]", path) if p]
        node = inputs
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.get(part, {})
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = SECRET
        elif isinstance(node, dict) and last in node:
            node[last] = SECRET
        elif path == ".":
            return {"value": SECRET}
    return inputs


def edges(result: PlanResult) -> list[tuple[str, str]]:
    """(dependent URN, dependency URN), from depends_on and from outputs used as inputs; parents are not edges."""
    found = set()
    for resource in result.resources:
        targets = set(resource.dependencies)
        for urns in resource.property_dependencies.values():
            targets.update(urns)
        for target in targets:
            if target != resource.parent and target != resource.urn:
                found.add((resource.urn, target))
    return sorted(found)


def as_json(
    result: PlanResult,
    secrets_not_in_stack_file: list[str],
    preconditions: Sequence[Precondition] = (),
    stand_ins: Mapping[str, str] | None = None,
) -> str:
    return json.dumps(
        {
            "project": result.project,
            "stack": result.stack,
            "resources": [
                {
                    "urn": r.urn,
                    "type": r.type,
                    "name": r.name,
                    "parent": r.parent,
                    "dependencies": sorted({t for s, t in edges(result) if s == r.urn}),
                    "inputs": redacted(r),
                    "secret_paths": r.secret_paths,
                }
                for r in _ordered(result)
            ],
            "edges": [{"from": s, "to": t} for s, t in edges(result)],
            "outputs": result.outputs,
            "secret_outputs": result.secret_outputs,
            "secrets_not_in_stack_file": secrets_not_in_stack_file,
            "stand_ins": dict(stand_ins or {}),
            "preconditions": [vars(p) for p in preconditions],
        },
        indent=2,
        default=str,
    )


def as_text(
    result: PlanResult,
    secrets_not_in_stack_file: list[str],
    preconditions: Sequence[Precondition] = (),
    stand_ins: Mapping[str, str] | None = None,
) -> str:
    by_urn = result.by_urn()
    children: dict[str | None, list[PlannedResource]] = {}
    for resource in _ordered(result):
        children.setdefault(resource.parent, []).append(resource)
    lines = [
        f"Plan for stack {result.stack} of {result.project}: {len(result.resources)} resources "
        "(offline: the real program under Pulumi's mocks; run `pulumi preview` for the diff against the cloud)"
    ]
    if secrets_not_in_stack_file:
        lines.append("Secrets to set before `pulumi up`: " + ", ".join(secrets_not_in_stack_file))
    for key, value in sorted((stand_ins or {}).items()):
        lines.append(
            f"NOT SET: {key} (the build sets it; see the preconditions). Planned with the stand-in {value}; "
            "`pulumi up` stops until it is set"
        )
    lines.append("")

    def walk(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for index, resource in enumerate(kids):
            last = index == len(kids) - 1
            branch = "" if parent is None else ("└─ " if last else "├─ ")
            lines.append(f"{prefix}{branch}{resource.type}  {resource.name}{_properties(resource)}")
            walk(resource.urn, prefix + ("" if parent is None else ("   " if last else "│  ")))

    walk(None, "")
    lines += ["", "Dependencies (besides parents; a component stands for all its resources):"]
    for source, target in _collapsed_edges(result):
        lines.append(f"  {_label(by_urn[source])} -> {_label(by_urn[target]) if target in by_urn else target}")
    lines += ["", "Outputs:"] + [
        f"  {key}: {json.dumps(value, default=str)}" for key, value in sorted(result.outputs.items())
    ]
    if preconditions:
        lines += ["", "Preconditions this program cannot create (a first deploy, in this order):"]
        for number, item in enumerate(preconditions, 1):
            lines += [f"  {number}. {item.what}: {item.why}", f"     {item.command}"]
    return "\n".join(lines)


def _collapsed_edges(result: PlanResult) -> list[tuple[str, str]]:
    """Edges for people: where a resource depends on every resource of a component (all
    the project's APIs, say), one edge to the component instead of one per resource."""
    children: dict[str, set[str]] = {}
    for resource in result.resources:
        if resource.parent:
            children.setdefault(resource.parent, set()).add(resource.urn)

    def descendants(urn: str) -> set[str]:
        found = set()
        for child in children.get(urn, ()):
            found |= {child} | descendants(child)
        return found

    by_urn = result.by_urn()
    components = {
        r.urn: {u for u in descendants(r.urn) if u in by_urn and by_urn[u].custom}
        for r in result.resources
        if not r.custom and r.type != STACK_TYPE
    }
    targets: dict[str, set[str]] = {}
    for source, target in edges(result):
        targets.setdefault(source, set()).add(target)
    collapsed = []
    for source, found in targets.items():
        for component, members in components.items():
            if members and members <= found and source not in members:
                found = (found - members) | {component}
        collapsed += [(source, target) for target in found]
    return sorted(collapsed)


def _properties(resource: PlannedResource) -> str:
    shown = []
    inputs = redacted(resource)
    for path in KEY_PROPERTIES.get(resource.type, ()):
        value = _tidy(lookup(inputs, path))
        if value is not None:
            shown.append(f"{path}={json.dumps(value, default=str) if not isinstance(value, str) else value}")
    if resource.type in SUMMARIES:
        shown += SUMMARIES[resource.type](inputs)
    return ("   " + "  ".join(shown)) if shown else ""


def _tidy(value: Any) -> Any:
    """The engine sends every number as a float; show 5, not 5.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _label(resource: PlannedResource) -> str:
    return f"{resource.name} ({resource.type.rsplit(':', 1)[-1]})"


def _ordered(result: PlanResult) -> list[PlannedResource]:
    """Registration order varies between runs; the plan must not."""
    return sorted(result.resources, key=lambda r: (r.type != STACK_TYPE, r.urn))
