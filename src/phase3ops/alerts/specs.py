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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phase3ops.alerts.references import UnresolvedReference, has_references, render_spec
from phase3ops.spec.documents import (
    KindLoader,
    PathPart,
    SpecDocument,
    SpecError,
    SpecProblem,
    display_name,
    name_problems,
    schema_problems,
)
from phase3ops.spec.merging import Layer as _Layer
from phase3ops.spec.merging import MergedDocument
from phase3ops.spec.merging import Origins as _Origins
from phase3ops.spec.pipeline import PIPELINE_FILE_NAME, load_pipeline_spec

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

    def problem(self, path: Sequence[PathPart], message: str) -> SpecProblem:
        return self.document.problem(["spec", *path], message)

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return self.spec["conditions"]

    @property
    def log_metric(self) -> dict[str, Any] | None:
        return self.spec.get("logMetric")

    def stated(self, path: Sequence[PathPart]) -> dict[str, Any]:
        """What the selector at `path` (from metric_selectors) states itself: a ratio's
        denominator inherits the rest from its numerator."""
        body: Any = self.spec
        for part in path:
            body = body[part]
        return body

    def metric_selectors(self) -> list[tuple[list[PathPart], dict[str, Any]]]:
        """Every (path, selector) in the rule that names a metric: thresholds, absences and both
        sides of a ratio (a ratio's denominator with the numerator's metric and resource type
        filled in, as the policy renders it)."""
        found: list[tuple[list[PathPart], dict[str, Any]]] = []
        for index, condition in enumerate(self.conditions):
            for kind in ("threshold", "absence"):
                if kind in condition:
                    found.append((["conditions", index, kind], condition[kind]))
            if "ratio" in condition:
                numerator, denominator = ratio_selectors(condition["ratio"])
                found.append((["conditions", index, "ratio", "numerator"], numerator))
                found.append((["conditions", index, "ratio", "denominator"], denominator))
        return found

    @property
    def enabled(self) -> bool:
        return self.spec.get("enabled", True)


def ratio_selectors(ratio: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ratio's numerator and denominator; the denominator names the numerator's metric and
    resource type unless it says otherwise."""
    numerator = ratio["numerator"]
    inherited = {key: numerator[key] for key in ("metric", "resourceType") if key in numerator}
    return numerator, {**inherited, **ratio["denominator"]}


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


def load_alert_specs(
    directory: Path, stack: str | None = None, strict: bool = True, pipeline: Any = None
) -> AlertSpecs:
    """Parse and schema-check every file; merge defaults and the stack's overrides into each rule;
    fill in the names a rule takes from pipeline.yaml (`{{pipeline.<field>}}`, see
    `phase3ops.alerts.references`).

    Raises SpecError for anything that leaves a rule unusable. With strict
    (the default) the remaining problems raise too; `phase3ops validate`
    passes strict=False to report them together with the lints' findings.
    `pipeline`: the PipelineSpec the references name, or a function that
    returns it; by default the pipeline.yaml beside `directory`, read only
    if a rule has a reference.
    """
    directory = Path(directory)
    pipeline_of = _pipeline_source(directory, pipeline)
    loader = KindLoader(directory / SCHEMA_DIR, _SCHEMAS)
    registry, problems, load = loader.registry, loader.problems, loader.load

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
        if path.name not in (CHANNELS_FILE, DEFAULTS_FILE) and (doc := load(path, RULE_KIND)) is not None
    ]
    if problems:
        raise SpecError(problems)
    # load() returns None only after recording a problem.
    assert channels_doc is not None and defaults_doc is not None

    defaults = defaults_doc.data["spec"]
    overrides = overrides_doc.data["rules"] if overrides_doc else {}
    soft: list[SpecProblem] = []
    rules = []
    origins: list[_Origins] = []
    seen: dict[str, str] = {}
    for document in rule_docs:
        data = document.data
        name = data["metadata"]["name"]
        soft.extend(name_problems(document, seen))
        origin = _Origins(_Layer(defaults_doc, ("spec",), name))
        spec = origin.merge(defaults, data["spec"], _Layer(document, ("spec",), name))
        if name in overrides:
            assert overrides_doc is not None  # overrides is empty without it
            spec = origin.merge(spec, overrides[name], _Layer(overrides_doc, ("rules", name), name, overrides=True))
        if has_references(spec):
            spec, unresolved = render_spec(spec, pipeline_of, origin.locate)
            problems.extend(unresolved)
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
            assert overrides_doc is not None  # overrides is empty without it
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


def _pipeline_source(directory: Path, pipeline: Any) -> Callable[[], Any]:
    """A function giving the PipelineSpec that rules reference, loading it at most once."""
    if pipeline is not None and not callable(pipeline):
        return lambda: pipeline
    cache: list[Any] = []

    def load() -> Any:
        if not cache:
            path = directory.resolve().parent / PIPELINE_FILE_NAME
            try:
                if pipeline is not None:
                    cache.append(pipeline())
                elif not path.is_file():
                    cache.append(
                        UnresolvedReference(
                            f"there is no {PIPELINE_FILE_NAME} beside {display_name(directory)}/ to take it from"
                        )
                    )
                else:
                    cache.append(load_pipeline_spec(path))
            except UnresolvedReference as error:
                cache.append(error)
            except SpecError as error:
                first = error.problems[0] if error.problems else "?"
                cache.append(UnresolvedReference(f"{PIPELINE_FILE_NAME} could not be loaded ({first})"))
        if isinstance(cache[0], UnresolvedReference):
            raise cache[0]
        return cache[0]

    return load


def _completeness_problems(rule: AlertRule, origins: _Origins, registry) -> list[SpecProblem]:
    """After merging, a rule must have what a policy needs, and still match the schema."""
    problems = []
    for path, what in (
        (["conditions"], "at least one condition"),
        (["documentation"], "documentation"),
        (["notify", "channels"], "notification channels"),
    ):
        node: Any = rule.spec
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not node:
            problems.append(
                rule.problem(path, f"the rule has no {what} (neither it nor defaults.yaml sets spec.{'.'.join(path)})")
            )
    schema = {"$ref": "https://phase3ops.example/schemas/alert-rule.schema.json#/$defs/ruleSpec"}
    problems.extend(schema_problems(MergedDocument(rule.document, rule.spec, origins), schema, registry))
    return problems
