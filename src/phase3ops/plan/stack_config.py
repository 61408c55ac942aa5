"""A stack's configuration as `pulumi preview` would give it to the program.

Reads the project file (Pulumi.yaml: name, main, declared keys with types,
defaults and which are secret) and the stack file (Pulumi.<stack>.yaml).
Values the stack encrypts (`secure:`) cannot be decrypted offline, and
committed stack files hold no secrets at all, so every declared secret gets an
opaque placeholder that the program sees as a secret; the plan lists those
keys so a reviewer knows they must be set before `pulumi up`. A declared
secret written in the stack file as plain text (not `secure:`) is a problem
at its line: it is already leaked to everyone who can read the repository.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phase3ops.spec.documents import SpecError, SpecProblem, read_yaml

SECRET_PLACEHOLDER = "[secret: set with pulumi config set --secret]"
_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list}


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    main: Path
    values: dict[str, str]  # full keys ("gcp:project") -> value as the engine passes it (strings)
    secret_keys: list[str]
    secrets_not_in_stack_file: list[str] = field(default_factory=list)
    # Keys the build sets (never committed with an invented value) that this stack file does not set:
    # the plan runs with a stand-in for each and says so; `pulumi up` refuses until the build sets them.
    stand_ins: dict[str, str] = field(default_factory=dict)


# Set by the build where the image is pushed (preconditions.py prints how), not written by hand.
BUILD_SET_KEYS = ("analyticsImage",)
STAND_IN_DIGEST = "sha256:" + "0" * 64


def stand_in_image(project: str, region: str) -> str:
    """The image the offline plan assumes when the build has not set one: visibly not a real digest."""
    return f"{region}-docker.pkg.dev/{project}/phase3/nba-phase3-analytics-processors@{STAND_IN_DIGEST}"


def load_stack_config(repo_root: Path, stack: str) -> StackConfig:
    project_doc = read_yaml(repo_root / "Pulumi.yaml")
    project_data = project_doc.data
    if not isinstance(project_data, dict) or not isinstance(project_data.get("config") or {}, dict):
        raise SpecError(
            [project_doc.problem(["config"], "must be a mapping, and its config: a mapping of declared keys")]
        )
    name = project_data.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError([project_doc.problem(["name"], "the project needs a name")])
    stack_path = repo_root / f"Pulumi.{stack}.yaml"
    if not stack_path.is_file():
        available = sorted(p.name for p in repo_root.glob("Pulumi.*.yaml"))
        raise SpecError([SpecProblem(stack_path.name, None, "", f"no such stack file (have: {', '.join(available)})")])
    stack_doc = read_yaml(stack_path)
    stack_data = stack_doc.data or {}
    raw = (stack_data.get("config") or {}) if isinstance(stack_data, dict) else None
    if not isinstance(raw, dict):
        raise SpecError([stack_doc.problem(["config"], "must be a mapping with config: a mapping of keys to values")])

    problems: list[SpecProblem] = []
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    written_as: dict[str, str] = {}  # full key -> the key as the stack file writes it
    for key, value in raw.items():
        full = key if ":" in key else f"{name}:{key}"
        written_as[full] = key
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[full] = SECRET_PLACEHOLDER
            secret_keys.append(full)
        elif isinstance(value, (dict, list)):
            import json

            values[full] = json.dumps(value)
        else:
            values[full] = _as_engine_string(value)

    declared = {key if ":" in key else f"{name}:{key}" for key in (project_data.get("config") or {})}
    for key in raw:
        full = key if ":" in key else f"{name}:{key}"
        if full.startswith(f"{name}:") and full not in declared:
            # The Pulumi CLI refuses an undeclared key of the project's own namespace; so does the plan.
            close = difflib.get_close_matches(full, sorted(declared), n=1)
            hint = (
                f"; did you mean {close[0].split(':', 1)[1]}?"
                if close
                else f"; declared: {', '.join(sorted(k.split(':', 1)[1] for k in declared if k.startswith(name + ':')))}"
            )
            problems.append(stack_doc.problem(["config", key], f"{full} is not declared in Pulumi.yaml{hint}"))
    missing_secrets = []
    for key, declaration in (project_data.get("config") or {}).items():
        if not isinstance(declaration, dict):
            continue
        full = key if ":" in key else f"{name}:{key}"
        kind = declaration.get("type")
        if declaration.get("secret"):
            secret_keys.append(full)
            if full not in values:
                values[full] = SECRET_PLACEHOLDER
                missing_secrets.append(full)
            elif not _encrypted(raw[written_as[full]]):
                problems.append(
                    stack_doc.problem(
                        ["config", written_as[full]],
                        f"{full} is declared secret in Pulumi.yaml but written here in plain text, where everyone who can read "
                        f"the repository sees it: rotate it, then set it with `pulumi config set --secret {key}` (a `secure:` value)",
                    )
                )
            continue
        if full in values and kind in _TYPES and kind != "string" and not _parses_as(values[full], kind):
            problems.append(
                stack_doc.problem(
                    ["config", key], f"{full} must be {kind} (declared in Pulumi.yaml), got {values[full]!r}"
                )
            )
        if full not in values and "default" not in declaration and key in BUILD_SET_KEYS:
            continue  # a stand-in, below, once the project and region are known
        if full not in values and "default" not in declaration:
            problems.append(
                stack_doc.problem(
                    ["config"], f"{full} is declared in Pulumi.yaml without a default and not set for stack {stack}"
                )
            )
    if problems:
        raise SpecError(problems)
    main = repo_root / (project_data.get("main") or ".")
    stand_ins = {}
    for key in BUILD_SET_KEYS:
        full = f"{name}:{key}"
        if full not in values:
            project, region = values.get("gcp:project", "<project>"), values.get("gcp:region", "us-west2")
            values[full] = stand_ins[full] = stand_in_image(project, region)
    return StackConfig(name, stack, main, values, sorted(set(secret_keys)), sorted(missing_secrets), stand_ins)


def _encrypted(value: Any) -> bool:
    """Whether every value in `value` is a `{secure: <ciphertext>}` (structured config may nest them)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict) and set(item) == {"secure"} and isinstance(item["secure"], str):
            continue
        if isinstance(item, dict) and item:
            pending.extend(item.values())
        elif isinstance(item, list) and item:
            pending.extend(item)
        else:
            return False
    return True


def _as_engine_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parses_as(text: str, kind: str) -> bool:
    if kind == "integer":
        try:
            int(text)
            return True
        except ValueError:
            return False
    if kind == "boolean":
        return text in ("true", "false")
    return True
