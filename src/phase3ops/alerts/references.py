"""Names a rule takes from pipeline.yaml: `{{pipeline.<field>...}}` in any string of a rule.

A rule that watches something pipeline.yaml names (Phase 4's subscription,
the scheduled checks) says so instead of copying the name, so renaming it in
pipeline.yaml moves the alert with it:

    filter: resource.labels.subscription_id="{{pipeline.phase4_consumer.subscription}}"
    value: "{{pipeline.phase4_consumer.max_unacked_age_minutes}}m"
    filter: resource.labels.job_name={{pipeline.scheduled_checks.name|one_of}}

The path follows the fields of the loaded pipeline (`PipelineSpec`, whose
field names are pipeline.yaml's keys under `spec:`); through a list
(`scheduled_checks`) it takes the field of every item. The value is written
as text; a list must say how it is joined, and `|` steps change values:

    |suffix:TEXT   append TEXT to each value  (`{{pipeline.scheduled_checks.name|suffix:-schedule|any_of}}`)
    |quoted        each value as a double-quoted filter string, joined by ", "
    |one_of        one_of("a", "b"): a Monitoring filter's value list
    |any_of        ("a" OR "b"): a Logging filter's value list

A reference to a field pipeline.yaml leaves out (no `phase4_consumer:`
declared) or does not have is a problem at the rule's file and line: the
rule cannot be built, and dropping it quietly would leave the thing it
watches unwatched. Declare the field, or delete the rule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
from collections.abc import Callable
from typing import Any

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
ROOT = "pipeline"
_FIELD = re.compile(r"^[a-z][a-z0-9_]*$")
_SCALARS = (str, int, float, dt.date, dt.time)


class UnresolvedReference(ValueError):
    """Why one `{{...}}` cannot be resolved (a message for the rule's author)."""


def has_references(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(has_references(v) for v in value.values())
    if isinstance(value, list):
        return any(has_references(v) for v in value)
    return False


def render_spec(spec: Any, pipeline: Callable[[], Any], problem: Callable[[tuple, str], Any]) -> tuple[Any, list]:
    """`spec` with every `{{...}}` replaced; `pipeline()` gives the PipelineSpec (called only when
    needed; it raises UnresolvedReference when there is none), `problem(path, message)` locates a problem."""
    problems: list = []

    def walk(value: Any, path: tuple) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "{{" in value:
            try:
                return render_text(value, pipeline)
            except UnresolvedReference as error:
                problems.append(problem(path, str(error)))
        return value

    return walk(spec, ()), problems


def render_text(text: str, pipeline: Callable[[], Any]) -> str:
    if text.count("{{") != len(PLACEHOLDER.findall(text)):
        raise UnresolvedReference(
            f"{text!r}: a '{{{{' without its '}}}}' (a reference is written {{{{pipeline.<field>}}}})"
        )
    return PLACEHOLDER.sub(lambda match: _render(match.group(1).strip(), pipeline), text)


def _render(expression: str, pipeline: Callable[[], Any]) -> str:
    shown = "{{" + expression + "}}"
    path_text, *steps = [part.strip() for part in expression.split("|")]
    parts = path_text.split(".")
    if parts[0] != ROOT or len(parts) < 2 or not all(_FIELD.match(p) for p in parts[1:]):
        raise UnresolvedReference(
            f"{shown}: a reference names a field of pipeline.yaml, as {{{{pipeline.<field>.<field>}}}}"
        )
    try:
        spec = pipeline()
    except UnresolvedReference as error:
        raise UnresolvedReference(f"{shown}: {error}") from None
    value = _resolve(spec, parts[1:], shown)
    for step in steps:
        value = _apply(step, value, shown)
    if isinstance(value, tuple):
        raise UnresolvedReference(
            f"{shown}: spec.{'.'.join(parts[1:])} is a list of {len(value)} values; join it with |one_of "
            '(Monitoring: one_of("a", "b")), |any_of (Logging: ("a" OR "b")) or |quoted'
        )
    return value if isinstance(value, str) else _text(value)


def _resolve(spec: Any, names: list[str], shown: str) -> Any:
    value: Any = spec
    walked: list[str] = []
    for name in names:
        items = value if isinstance(value, tuple) else (value,)
        found = []
        for item in items:
            if not dataclasses.is_dataclass(item):
                raise UnresolvedReference(f"{shown}: spec.{'.'.join(walked)} is a value, it has no field {name!r}")
            fields = [f.name for f in dataclasses.fields(item) if f.init and not f.name.startswith("_")]
            if name not in fields:
                where = f"spec.{'.'.join(walked)}" if walked else "spec"
                close = difflib.get_close_matches(name, fields, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise UnresolvedReference(
                    f"{shown}: pipeline.yaml has no field {name!r} in {where} (fields: {', '.join(fields)}){hint}"
                )
            found.append(getattr(item, name))
        walked.append(name)
        if any(v is None for v in found):
            raise UnresolvedReference(
                f"{shown}: pipeline.yaml declares no spec.{'.'.join(walked)}, which this rule watches: "
                "declare it there, or delete the rule"
            )
        value = (
            tuple(v for item in found for v in (item if isinstance(item, tuple) else (item,)))
            if isinstance(value, tuple)
            else found[0]
        )
    if value == ():
        raise UnresolvedReference(f"{shown}: spec.{'.'.join(walked)} is an empty list: there is nothing to name")
    for item in value if isinstance(value, tuple) else (value,):
        if dataclasses.is_dataclass(item) or isinstance(item, (dict, bool)) or not isinstance(item, _SCALARS):
            listed = ", ".join(f.name for f in dataclasses.fields(item)) if dataclasses.is_dataclass(item) else ""
            raise UnresolvedReference(
                f"{shown}: spec.{'.'.join(walked)} is a section, not a value"
                + (f" (fields: {listed})" if listed else "")
            )
    return value


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)


def _quote(value: Any) -> str:
    return '"' + _text(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _apply(step: str, value: Any, shown: str) -> Any:
    name, _, argument = step.partition(":")
    values = value if isinstance(value, tuple) else (value,)
    if name == "suffix" and argument:
        mapped = tuple(_text(v) + argument for v in values)
        return mapped if isinstance(value, tuple) else mapped[0]
    if name == "quoted" and not argument:
        return ", ".join(_quote(v) for v in values)
    if name == "one_of" and not argument:
        return "one_of(" + ", ".join(_quote(v) for v in values) + ")"
    if name == "any_of" and not argument:
        return "(" + " OR ".join(_quote(v) for v in values) + ")"
    raise UnresolvedReference(f"{shown}: unknown step {step!r} (steps: suffix:TEXT, quoted, one_of, any_of)")
