"""YAML spec documents that remember where every value came from.

Every spec in this repository (the pipeline, the alert rules, the channels)
is YAML validated against a JSON Schema. A person fixing a spec needs the
file, the line and the path of *every* problem at once, so loading never
stops at the first error: problems are collected as `SpecProblem`s and raised
together as one `SpecError`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import jsonschema
from referencing import Registry, Resource
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

SCHEMA_DIR = Path(__file__).parent / "schemas"

PathPart = str | int


@dataclass(frozen=True, order=True)
class SpecProblem:
    """One thing wrong with one spec file, located precisely."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '<document>'}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message}


class SpecError(Exception):
    """Raised with every problem found, never just the first one."""

    def __init__(self, problems: Iterable[SpecProblem]):
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line or 0, p.path, p.message))
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in spec files:"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))


def format_path(parts: Sequence[PathPart]) -> str:
    """`spec.processors[2].primary_key` - the notation the error messages use."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class SpecDocument:
    """A parsed YAML document plus the positions of its keys and items."""

    file: str
    root: Any
    text: str = ""

    @property
    def data(self) -> Any:
        return to_plain(self.root)

    def line_of(self, parts: Sequence[PathPart]) -> int | None:
        """1-based line of the value at `parts`, or of its nearest existing parent."""
        node = self.root
        line = 1
        for part in parts:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        return line

    def problem(self, parts: Sequence[PathPart], message: str) -> SpecProblem:
        return SpecProblem(self.file, self.line_of(parts), format_path(parts), message)


def to_plain(node: Any) -> Any:
    """Strip ruamel's round-trip types so the rest of the code sees dict/list/str."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    return node


def display_name(path: Path) -> str:
    """Paths relative to the working directory read better in CI logs."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def parse_yaml(text: str, file: str) -> SpecDocument:
    """Parse one YAML document; syntax errors become a `SpecError` with the line."""
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(filter(None, [exc.context, exc.problem])) or str(exc)
        raise SpecError([SpecProblem(file, line, "", f"invalid YAML: {reason}")]) from None
    if root is None:
        raise SpecError([SpecProblem(file, 1, "", "the file is empty")])
    return SpecDocument(file=file, root=root, text=text)


def read_yaml(path: Path) -> SpecDocument:
    name = display_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem(name, None, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError([SpecProblem(name, None, "", f"not UTF-8 text: {exc}")]) from None
    return parse_yaml(text, name)


@lru_cache(maxsize=None)
def load_schema(path: Path) -> dict[str, Any]:
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def schema_registry(directory: Path) -> Registry:
    """Every schema of a folder, by its $id, so schemas can $ref each other's definitions."""
    resources = []
    for path in sorted(directory.glob("*.schema.json")):
        schema = load_schema(path)
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


def schema_problems(document: SpecDocument, schema: dict[str, Any], registry: Registry | None = None) -> list[SpecProblem]:
    """Every JSON Schema violation in the document, each at its own line."""
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker(), **({"registry": registry} if registry else {})
    )
    problems = []
    for error in validator.iter_errors(document.data):
        for leaf in _leaf_errors(error):
            problems.append(document.problem(list(leaf.absolute_path), _describe(leaf)))
    return problems


def _leaf_errors(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """For oneOf/anyOf, report the branch that got furthest instead of a wall of text."""
    if error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None and best is not error:
            return _leaf_errors(best)
    return [error]


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message} (allowed: {', '.join(allowed)})"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(repr, error.validator_value))}"
    return error.message


def schema_comment_problem(document: SpecDocument) -> SpecProblem | None:
    """Specs start with the yaml-language-server line so editors validate as you type."""
    first = document.text.lstrip().splitlines()[0] if document.text.strip() else ""
    if first.startswith("# yaml-language-server: $schema="):
        return None
    return SpecProblem(
        document.file, 1, "", "the first line must be '# yaml-language-server: $schema=<schema path>'"
    )


def name_problems(document: SpecDocument, seen: dict[str, str]) -> list[SpecProblem]:
    """A spec's metadata.name must be its file's name and unique; `seen` maps names to the file that took them."""
    name = document.data["metadata"]["name"]
    file_name = Path(document.file).name
    problems = []
    if file_name != f"{name}.yaml":
        problems.append(document.problem(["metadata", "name"], f"{name!r} must match the file name ({file_name}): rename one of them"))
    if name in seen:
        problems.append(document.problem(["metadata", "name"], f"{name!r} is already defined in {seen[name]}"))
    seen[name] = document.file
    return problems
