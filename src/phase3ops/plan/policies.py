"""`phase3ops plan --policies`: the CrossGuard pack, evaluated offline on the planned graph.

Does what `pulumi preview --policy-pack policies [--policy-pack-config F]`
does with the pack: the config each policy gets is its schema's defaults,
then the user's file (a level string, or an object with `enforcementLevel`
and properties), checked against the schema; resource policies see each
resource's inputs (camelCase, as the engine sends them), stack policies every
resource's outputs with parents and dependencies; violations print as the
CLI prints them. The rules themselves are the pack's own functions
(policies/rules.py), not a copy.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from phase3ops.plan.runner import STACK_TYPE, PlannedResource, PlanResult
from phase3ops.spec.documents import SpecValidator, read_yaml

LEVELS = ("advisory", "mandatory", "remediate", "disabled")


class PolicyConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    urn: str
    description: str
    message: str

    @property
    def resource_label(self) -> str:
        parts = self.urn.split("::")
        return f"{parts[2].rsplit('$', 1)[-1]}: {parts[3]}" if len(parts) >= 4 else self.urn


@dataclass(frozen=True)
class Pack:
    name: str
    version: str
    directory: Path
    policies: list[Any]


def load_pack(repo_root: Path) -> Pack:
    directory = repo_root / "policies"
    metadata = read_yaml(directory / "PulumiPolicy.yaml").data
    rules = _load_module(directory / "rules.py")
    return Pack(rules.PACK_NAME, str(metadata.get("version", "0.0.1")), directory, rules.build_policies())


def policy_config(pack: Pack, user_config: dict[str, Any] | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per policy: (enforcement level, config properties), as the engine reconciles them."""
    user_config = user_config or {}
    unknown = set(user_config) - {p.name for p in pack.policies} - {"all"}
    if unknown:
        raise PolicyConfigError(f"policy config names unknown policies: {', '.join(sorted(unknown))}")
    reconciled = {}
    for policy in pack.policies:
        level = _level_name(policy.enforcement_level or EnforcementLevel.MANDATORY)
        schema = policy.config_schema
        properties = {k: v["default"] for k, v in (schema.properties if schema else {}).items() if "default" in v}
        for source in (user_config.get("all"), user_config.get(policy.name)):
            if isinstance(source, str):
                level = source
            elif isinstance(source, dict):
                level = source.get("enforcementLevel", level)
                properties.update({k: v for k, v in source.items() if k != "enforcementLevel"})
        if level not in LEVELS:
            raise PolicyConfigError(f"{policy.name}: enforcement level {level!r} is not one of {', '.join(LEVELS)}")
        if schema:
            try:
                config_schema = {"type": "object", "properties": schema.properties, "required": schema.required or []}
                jsonschema.validate(properties, config_schema, cls=SpecValidator)
            except jsonschema.ValidationError as exc:
                raise PolicyConfigError(f"{policy.name}: {exc.message}") from None
        reconciled[policy.name] = (level, properties)
    return reconciled


def evaluate(pack: Pack, result: PlanResult, user_config: dict[str, Any] | None = None) -> list[Violation]:
    config = policy_config(pack, user_config)
    violations: list[Violation] = []
    stack_resources = _policy_resources(result)
    for policy in pack.policies:
        level, properties = config[policy.name]
        if level == "disabled":
            continue
        effective = "mandatory" if level == "remediate" else level

        def report(
            message: str, urn: str | None = None, *, _policy=policy, _level=effective, _default_urn: str = ""
        ) -> None:
            violations.append(Violation(_policy.name, _level, urn or _default_urn, _policy.description, message))

        if isinstance(policy, ResourceValidationPolicy):
            for resource in result.resources:
                args = ResourceValidationArgs(
                    resource.type,
                    resource.inputs,
                    resource.urn,
                    resource.name,
                    _options(resource),
                    None,
                    config=properties,
                )
                for validate in _validators(policy):
                    validate(args, lambda message, urn=None, _urn=resource.urn: report(message, _default_urn=_urn))
        else:
            stack_urn = next((r.urn for r in result.resources if r.type == STACK_TYPE), "")
            stack_args = StackValidationArgs(list(stack_resources.values()), config=properties)
            for validate in _validators(policy):
                validate(stack_args, lambda message, urn=None, _urn=stack_urn: report(message, urn, _default_urn=_urn))
    return sorted(violations, key=lambda v: (v.level, v.policy, v.urn, v.message))


def render(pack: Pack, violations: list[Violation]) -> str:
    """The CLI's "Policies:" block."""
    mark = "✅" if not violations else ("❌" if any(v.level == "mandatory" for v in violations) else "⚠️")
    lines = ["Policies:", f"    {mark} {pack.name}@v{pack.version} (local: policies)"]
    for violation in violations:
        lines.append(f"        - [{violation.level}]  {violation.policy}  ({violation.resource_label})")
        lines.append(f"          {violation.description}")
        lines.append(f"          {violation.message}")
    return "\n".join(lines)


def as_json(pack: Pack, violations: list[Violation]) -> str:
    return json.dumps(
        {
            "pack": f"{pack.name}@v{pack.version}",
            "violations": [
                {"policy": v.policy, "level": v.level, "urn": v.urn, "message": v.message} for v in violations
            ],
        },
        indent=2,
    )


def load_user_config(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyConfigError(f"{path}: {exc}") from None


def _options(resource: PlannedResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        resource.protect,
        [],
        None,
        [],
        PolicyCustomTimeouts(0, 0, 0),
        resource.additional_secret_outputs,
        resource.parent,
    )


def _policy_resources(result: PlanResult) -> dict[str, PolicyResource]:
    """Stack policies see outputs, and parents and dependencies as resource objects."""
    built: dict[str, PolicyResource] = {}
    for resource in result.resources:
        built[resource.urn] = PolicyResource(
            resource.type, resource.outputs, resource.urn, resource.name, _options(resource), None, None, [], {}
        )
    for resource in result.resources:
        policy_resource = built[resource.urn]
        policy_resource.parent = built.get(resource.parent) if resource.parent else None
        policy_resource.dependencies = [built[u] for u in resource.dependencies if u in built]
        policy_resource.property_dependencies = {
            key: [built[u] for u in urns if u in built] for key, urns in resource.property_dependencies.items()
        }
    return built


def _validators(policy: Any) -> list:
    return policy.validate if isinstance(policy.validate, list) else [policy.validate]


def _level_name(level: EnforcementLevel) -> str:
    return level.value if hasattr(level, "value") else str(level)


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"phase3ops_policy_rules_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None  # a .py path always has a source loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
