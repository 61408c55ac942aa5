"""Loading `alerts/`: rules, channels, defaults and per-stack overrides.

alerts/
  channels.yaml         kind: NotificationChannels
  defaults.yaml         kind: AlertDefaults (merged under every rule)
  stacks/<stack>.yaml   kind: AlertOverrides (merged over the rules for that stack)
  <rule>.yaml           kind: AlertRule, one file per rule
  schema/               the JSON Schemas of the kinds above

Every file is checked against its schema and every problem of every file is
collected before anything is raised, so one run reports all of them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phase3ops.spec.documents import (
    PathPart,
    SpecDocument,
    SpecError,
    SpecProblem,
    display_name,
    format_path,
    load_schema,
    read_yaml,
    schema_comment_problem,
    schema_problems,
    schema_registry,
)

RULE_KIND = "AlertRule"
CHANNELS_FILE = "channels.yaml"
DEFAULTS_FILE = "defaults.yaml"
STACKS_DIR = "stacks"
SCHEMA_DIR = "schema"
_SCHEMAS = {
    RULE_KIND: "alert-rule.schema.json",
    "NotificationChannels": "channels.schema.json",
    "AlertDefaults": "defaults.schema.json",
    "AlertOverrides": "stack-overrides.schema.json",
}


@dataclass(frozen=True)
class Channel:
    name: str
    display_name: str
    slack_channel: str
    team: str
    token_config_key: str


@dataclass(frozen=True)
class AlertRule:
    name: str
    component: str
    severity: str
    spec: dict[str, Any]  # defaults, then the rule file, then the stack's overrides
    document: SpecDocument  # the rule file, for locating problems

    @property
    def source(self) -> str:
        return self.document.file

    def problem(self, path: list[str | int], message: str) -> SpecProblem:
        return self.document.problem(["spec", *path], message)

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return self.spec["conditions"]

    @property
    def log_metric(self) -> dict[str, Any] | None:
        return self.spec.get("logMetric")

    @property
    def enabled(self) -> bool:
        return self.spec.get("enabled", True)


@dataclass(frozen=True)
class AlertSpecs:
    directory: Path
    stack: str | None
    rules: tuple[AlertRule, ...]
    channels: tuple[Channel, ...]
    channels_document: SpecDocument
    # Problems that leave every rule usable (a name that does not match its
    # file, an override for no rule): reported with the lints' findings.
    problems: tuple[SpecProblem, ...] = ()

    def channel(self, name: str) -> Channel:
        return next(c for c in self.channels if c.name == name)

    def rule(self, name: str) -> AlertRule:
        return next(r for r in self.rules if r.name == name)


def load_alert_specs(directory: Path, stack: str | None = None, strict: bool = True) -> AlertSpecs:
    """Parse and schema-check every file; merge defaults and the stack's overrides into each rule.

    Raises SpecError for anything that leaves a rule unusable. With strict
    (the default) the remaining problems raise too; `phase3ops validate`
    passes strict=False to report them together with the lints' findings.
    """
    directory = Path(directory)
    registry = schema_registry(directory / SCHEMA_DIR)
    problems: list[SpecProblem] = []

    def load(path: Path, expected_kind: str | None = None) -> SpecDocument | None:
        try:
            document = read_yaml(path)
        except SpecError as error:
            problems.extend(error.problems)
            return None
        kind = document.data.get("kind") if isinstance(document.data, dict) else None
        if expected_kind and kind != expected_kind:
            problems.append(document.problem(["kind"], f"must be {expected_kind!r} in {path.name}, got {kind!r}"))
            return None
        if kind not in _SCHEMAS:
            problems.append(document.problem(["kind"], f"unknown kind {kind!r} (one of: {', '.join(_SCHEMAS)})"))
            return None
        schema = load_schema(directory / SCHEMA_DIR / _SCHEMAS[kind])
        found = schema_problems(document, schema, registry)
        comment = schema_comment_problem(document)
        problems.extend(found + ([comment] if comment else []))
        return None if found else document

    if not directory.is_dir():
        raise SpecError([SpecProblem(display_name(directory), None, "", "alerts directory not found")])
    channels_doc = load(directory / CHANNELS_FILE, "NotificationChannels")
    defaults_doc = load(directory / DEFAULTS_FILE, "AlertDefaults")
    overrides_doc = None
    if stack is not None and (directory / STACKS_DIR / f"{stack}.yaml").is_file():
        overrides_doc = load(directory / STACKS_DIR / f"{stack}.yaml", "AlertOverrides")
        if overrides_doc is not None and overrides_doc.data["stack"] != stack:
            problems.append(overrides_doc.problem(["stack"], f"must be {stack!r} (the file name)"))
    rule_docs = [
        doc
        for path in sorted(directory.glob("*.yaml"))
        if path.name not in (CHANNELS_FILE, DEFAULTS_FILE)
        and (doc := load(path, RULE_KIND)) is not None
    ]
    if problems:
        raise SpecError(problems)

    defaults = defaults_doc.data["spec"]
    overrides = overrides_doc.data["rules"] if overrides_doc else {}
    soft: list[SpecProblem] = []
    rules = []
    origins: list[_Origins] = []
    seen: dict[str, str] = {}
    for document in rule_docs:
        data = document.data
        name = data["metadata"]["name"]
        file_name = Path(document.file).name
        if file_name != f"{name}.yaml":
            soft.append(document.problem(["metadata", "name"], f"{name!r} must match the file name ({file_name}): rename one of them"))
        if name in seen:
            soft.append(document.problem(["metadata", "name"], f"{name!r} is already defined in {seen[name]}"))
        seen[name] = document.file
        origin = _Origins(_Layer(defaults_doc, ("spec",), name))
        spec = origin.merge(defaults, data["spec"], _Layer(document, ("spec",), name))
        if name in overrides:
            spec = origin.merge(spec, overrides[name], _Layer(overrides_doc, ("rules", name), name, overrides=True))
        problems.extend(origin.problems)
        origins.append(origin)
        rules.append(
            AlertRule(
                name=name,
                component=data["metadata"]["labels"]["component"],
                severity=data["metadata"]["labels"]["severity"],
                spec=spec,
                document=document,
            )
        )
    for name in overrides:
        if name not in seen:
            soft.append(overrides_doc.problem(["rules", name], f"overrides {name!r}, which no rule file defines"))
    for rule, origin in zip(rules, origins):
        problems.extend(_completeness_problems(rule, origin, registry))
    if problems or (strict and soft):
        raise SpecError(problems + soft)

    channels = tuple(
        Channel(c["name"], c["displayName"], c["slackChannel"], c["team"], c["tokenConfigKey"])
        for c in channels_doc.data["channels"]
    )
    return AlertSpecs(directory, stack, tuple(rules), channels, channels_doc, tuple(soft))


def deep_merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key; a mapping over a list patches items by index; anything else replaces."""
    return _merge(base, override, None, (), ())


_Path = tuple[PathPart, ...]


def _is_index_patch(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(str(k).isdigit() for k in value)


def _merge(base: Any, override: Any, origins: _Origins | None, path: _Path, at: _Path) -> Any:
    """`deep_merge`, telling `origins` (if any) where each merged value comes from.

    `path` is where the merge is in the merged spec, `at` where the override
    value is in its own document's spec. An override layer must patch by
    index only items that exist; such a patch is reported and not applied.
    """
    checked = origins is not None and origins.layer.overrides
    if checked and _is_index_patch(override) and not isinstance(base, list):
        origins.problem(at, f"patches spec.{format_path(path)} by index, but in rule {origins.layer.rule} it is {_kind(base)}, not a list")
        return copy.deepcopy(base)
    if isinstance(base, dict) and isinstance(override, dict):
        if origins is not None:
            origins.merged(path, at, had=list(base), added=[k for k in override if k not in base])
        merged = copy.deepcopy(base)
        for key, value in override.items():
            if key in base:
                merged[key] = _merge(base[key], value, origins, (*path, key), (*at, key))
            elif checked and _is_index_patch(value):
                where = format_path((*path, key))
                origins.problem((*at, key), f"patches spec.{where} by index, but rule {origins.layer.rule} has no spec.{where}")
            else:
                merged[key] = copy.deepcopy(value)
                if origins is not None:
                    origins.replaced((*path, key), (*at, key))
        return merged
    if isinstance(base, list) and isinstance(override, dict) and all(str(k).isdigit() for k in override):
        if origins is not None:
            origins.merged(path, at, had=list(range(len(base))), added=[])
        merged = copy.deepcopy(base)
        for key, value in override.items():
            index = int(key)
            if index < len(merged):
                merged[index] = _merge(merged[index], value, origins, (*path, index), (*at, key))
            elif checked:
                origins.problem((*at, key), f"there is no spec.{format_path((*path, index))}: rule {origins.layer.rule} has {_items(path, len(base))}")
        return merged
    if origins is not None:
        origins.replaced(path, at)
    return copy.deepcopy(override)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def _items(path: _Path, count: int) -> str:
    """'1 condition (index 0)', '3 channels (indexes 0-2)'."""
    name = str(path[-1]) if path else ""
    noun = name[:-1] if name.endswith("s") else "item"
    if count == 0:
        return f"no {noun}s"
    return f"{count} {noun}{'s' if count != 1 else ''} ({'index 0' if count == 1 else f'indexes 0-{count - 1}'})"


@dataclass(frozen=True)
class _Layer:
    """One document's part in a rule's merged spec: alerts/defaults.yaml, the rule file, or a stack's overrides."""

    document: SpecDocument
    prefix: _Path  # where the spec is in the document: ("spec",), or ("rules", <rule>) in a stack's overrides
    rule: str
    overrides: bool = False

    def problem(self, at: _Path, message: str) -> SpecProblem:
        parts = [*self.prefix, *at]
        return SpecProblem(self.document.file, _line_of(self.document, parts), format_path(parts), message)


class _Origins:
    """Where each value of one rule's merged spec was written.

    Maps merged paths to (layer, path in that layer's spec): a value is
    located by its longest recorded prefix. A merged mapping or patched list
    belongs to the last layer that merged into it, its items keeping the
    origins they had until a layer replaces them.
    """

    def __init__(self, first: _Layer):
        self.layer = first
        self._at: dict[_Path, tuple[_Layer, _Path]] = {(): (first, ())}
        self._added: dict[_Path, list[str]] = {}  # keys the last layer to merge into a mapping added to it
        self.problems: list[SpecProblem] = []

    def merge(self, base: Any, override: Any, layer: _Layer) -> Any:
        self.layer = layer
        return _merge(base, override, self, (), ())

    def origin(self, path: _Path) -> tuple[_Layer, _Path]:
        for n in range(len(path), -1, -1):
            if path[:n] in self._at:
                layer, at = self._at[path[:n]]
                return layer, (*at, *path[n:])
        raise AssertionError("the root always has an origin")

    def added(self, path: _Path) -> list[str]:
        return self._added.get(path, [])

    def merged(self, path: _Path, at: _Path, had: list[PathPart], added: list[str]) -> None:
        # Pin what the node had to where it came from before the node changes hands.
        for key in had:
            self._at[(*path, key)] = self.origin((*path, key))
        self._at[path] = (self.layer, at)
        self._added[path] = added

    def replaced(self, path: _Path, at: _Path) -> None:
        for table in (self._at, self._added):
            for key in [k for k in table if k[: len(path)] == path]:
                del table[key]
        self._at[path] = (self.layer, at)

    def problem(self, at: _Path, message: str) -> None:
        self.problems.append(self.layer.problem(at, message))


def _line_of(document: SpecDocument, parts: list[PathPart]) -> int | None:
    """`document.line_of`, also finding an index written as a plain number (`0:`, not `"0":`)."""
    node, written = document.root, []
    for part in parts:
        if isinstance(node, dict) and part not in node and isinstance(part, str) and part.isdigit() and int(part) in node:
            part = int(part)
        written.append(part)
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return document.line_of(written)


def _completeness_problems(rule: AlertRule, origins: _Origins, registry) -> list[SpecProblem]:
    """After merging, a rule must have what a policy needs, and still match the schema."""
    problems = []
    for path, what in ((["conditions"], "at least one condition"), (["documentation"], "documentation"), (["notify", "channels"], "notification channels")):
        node: Any = rule.spec
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not node:
            problems.append(rule.problem(path, f"the rule has no {what} (neither it nor defaults.yaml sets spec.{'.'.join(path)})"))
    schema = {"$ref": "https://phase3ops.example/schemas/alert-rule.schema.json#/$defs/ruleSpec"}
    problems.extend(schema_problems(_Merged(rule, origins), schema, registry))
    return problems


class _Merged(SpecDocument):
    """The merged spec, each problem located where its value was written."""

    def __init__(self, rule: AlertRule, origins: _Origins):
        super().__init__(rule.document.file, rule.document.root, rule.document.text)
        self._rule = rule
        self._origins = origins

    @property
    def data(self) -> Any:
        return self._rule.spec

    def problem(self, parts, message: str) -> SpecProblem:
        path = tuple(parts)
        # A problem with a merged mapping's keys (one too many, one not
        # allowed) is the doing of a key the last layer added to it.
        added = self._origins.added(path)
        if added:
            path = (*path, next((k for k in added if repr(k) in message), added[0]))
        layer, at = self._origins.origin(path)
        if layer.overrides:
            return layer.problem(at, f"overrides spec.{format_path(path)} of rule {layer.rule}: {message}")
        if layer.document is self._rule.document:
            return layer.problem(at, f"after merging defaults and overrides: {message}")
        return layer.problem(at, f"after merging into rule {layer.rule}: {message}")
