"""YAML spec documents that remember where every value came from.

Every spec in this repository (the pipeline, the alert rules, the channels)
is YAML validated against a JSON Schema. A person fixing a spec needs the
file, the line and the path of *every* problem at once, so loading never
stops at the first error: problems are collected as `SpecProblem`s and raised
together as one `SpecError`.

Spec files are written by people and reviewed in pull requests, so a bad one
must fail with its file and line, never a traceback or a hang: a file longer
than `MAX_SPEC_CHARS` is refused unread, any YAML the reader refuses (a
control character, a bad indent, an integer of 5,000 digits, a collection
nested past `MAX_NESTING`) is an "invalid YAML" problem, and aliases of a
mapping or sequence (`*base` after `&base {...}`, `<<: *base`) are refused
while composing, before anything could expand them: a few hundred bytes of
nested aliases (an alias bomb) expand to billions of values. No spec here
needs them; aliases of a single scalar stay allowed, as they cannot grow a
document beyond its own size.

Patterns in the schemas are ECMA 262 regular expressions, as JSON Schema says;
`schema_problems` checks them that way (Python's `$` would also accept a final
newline after a name).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, cast

import jsonschema
from referencing import Registry, Resource
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionStartEvent
from ruamel.yaml.nodes import CollectionNode
from ruamel.yaml.reader import ReaderError

from phase3ops.input_bounds import capped, quoted

SCHEMA_DIR = Path(__file__).parent / "schemas"
MAX_NESTING = 64  # mappings and sequences inside each other; the deepest spec here nests about 8
# ruamel reads about 50,000 characters a second at worst (a flow sequence of tiny items): this keeps any
# file within seconds, and is 20 times the largest spec here.
MAX_SPEC_CHARS = 256_000
MESSAGE_CHARS = (
    500  # what a problem repeats of the reader's or the validator's message (which may quote a hostile value)
)

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
    """Strip ruamel's round-trip types so the rest of the code sees dict/list/str.

    Iterative, so no depth of nesting can exhaust the interpreter's stack (a
    parsed document is bounded by MAX_NESTING, a merged one need not be)."""
    if not isinstance(node, (dict, list)):
        return node
    root: Any = {} if isinstance(node, dict) else []
    pending = [(node, root)]
    while pending:
        source, target = pending.pop()
        for key, value in source.items() if isinstance(source, dict) else enumerate(source):
            copy = value
            if isinstance(value, (dict, list)):
                copy = {} if isinstance(value, dict) else []
                pending.append((value, copy))
            if isinstance(target, dict):
                target[str(key)] = copy
            else:
                target.append(copy)
    return root


def display_name(path: Path) -> str:
    """Paths relative to the working directory read better in CI logs."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _SpecComposer(Composer):
    """ruamel's composer, refusing what only hostile or mistaken specs contain.

    Checked here, while the node graph is built, because every later step
    (constructing, `to_plain`, schema validation) would expand an alias of a
    collection into a full copy, and recurse once per level of nesting."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.nesting = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            # A collection is registered under its anchor before its items are composed, so this
            # also catches an alias inside its own anchor (`&a [*a]`), a cycle.
            if isinstance(self.anchors.get(event.anchor), CollectionNode):
                raise ComposerError(
                    None,
                    None,
                    f"the alias *{capped(str(event.anchor), 40)} repeats a mapping or sequence: spec files do not "
                    "support that (it is how an alias bomb grows); write the values out",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        anchor = getattr(event, "anchor", None)
        if anchor is not None and anchor in self.anchors:
            # YAML lets the later anchor shadow the earlier one, so an alias silently takes whichever
            # came last; ruamel only warns, on stderr, without the file's name.
            first = self.anchors[anchor].start_mark.line + 1
            raise ComposerError(
                None,
                None,
                f"the anchor &{capped(str(anchor), 40)} is defined again (first on line {first}): an alias would "
                "take the later one; give each its own name",
                event.start_mark,
            )
        if not isinstance(event, CollectionStartEvent):
            return super().compose_node(parent, index)
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ComposerError(
                None, None, f"mappings and sequences nested more than {MAX_NESTING} levels deep", event.start_mark
            )
        node = super().compose_node(parent, index)
        self.nesting -= 1
        return node


def _line_of_position(text: str, position: Any) -> int | None:
    return text.count("\n", 0, position) + 1 if isinstance(position, int) and position >= 0 else None


def parse_yaml(text: str, file: str) -> SpecDocument:
    """Parse one YAML document; whatever the reader refuses becomes a `SpecError` with the line."""
    # `validate` reads the same files once per stack, and callers may change what they get (stack
    # overrides are merged into it): parse each text once, hand out copies (30x cheaper than parsing).
    try:
        root = _parsed_root(text)
    except SpecError as error:
        raise SpecError([dataclasses.replace(problem, file=file) for problem in error.problems]) from None
    return SpecDocument(file=file, root=_copy_tree(root), text=text)


_SHARED_SCALARS = (str, int, float, bool, type(None), dt.date)  # ruamel's scalar types subclass these


def _copy_tree(node: Any) -> Any:
    """A parsed tree's mappings and sequences copied with the line of each key and item (all that
    `line_of` reads); scalars cannot change, so the copy shares them. `copy.deepcopy` also copies
    every comment and attribute ruamel keeps: it was most of what reading a cached file cost."""
    if isinstance(node, CommentedMap):
        mapping = type(node)()
        for key, value in node.items():
            mapping[key] = _copy_tree(value)
        _copy_positions(node, mapping)
        return mapping
    if isinstance(node, CommentedSeq):
        sequence = type(node)(_copy_tree(item) for item in node)
        _copy_positions(node, sequence)
        return sequence
    return node if isinstance(node, _SHARED_SCALARS) else copy.deepcopy(node)


def _copy_positions(source: CommentedMap | CommentedSeq, target: CommentedMap | CommentedSeq) -> None:
    target.lc.line, target.lc.col = source.lc.line, source.lc.col
    target.lc.data = None if source.lc.data is None else dict(source.lc.data)  # None: an empty collection


@lru_cache(maxsize=256)
def _parsed_root(text: str) -> Any:
    """The text's root node, by text alone (a copy of the repository parses from the cache); its
    problems name no file, `parse_yaml` fills it in."""
    file = ""
    if len(text) > MAX_SPEC_CHARS:
        message = f"the file is {len(text):,} characters long; a spec file may be at most {MAX_SPEC_CHARS:,}"
        raise SpecError([SpecProblem(file, None, "", message)])
    yaml = YAML(typ="rt")
    yaml.Composer = _SpecComposer
    try:
        root = yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(filter(None, [exc.context, exc.problem])) or str(exc)
        raise SpecError([SpecProblem(file, line, "", f"invalid YAML: {capped(reason, MESSAGE_CHARS)}")]) from None
    except ReaderError as exc:  # a character YAML does not allow in a stream: a control character, a lone surrogate
        character = ord(exc.character) if isinstance(exc.character, str) else exc.character
        code = f"#x{character:04x}" if isinstance(character, int) else repr(character)
        reason = f"character {code} is not allowed in YAML ({exc.reason}); remove it or write it as an escape in a double-quoted string"
        raise SpecError(
            [SpecProblem(file, _line_of_position(text, exc.position), "", f"invalid YAML: {reason}")]
        ) from None
    except YAMLError as exc:  # any other refusal of the reader, without a position
        raise SpecError([SpecProblem(file, None, "", f"invalid YAML: {capped(str(exc), MESSAGE_CHARS)}")]) from None
    except ValueError as exc:
        # ruamel converts scalars with Python's int/float/datetime, which refuse some text it resolved
        # (an integer of more than 4,300 digits, `!!float abc`, the 13th month) with a bare ValueError.
        raise SpecError(
            [SpecProblem(file, None, "", f"invalid YAML: a value cannot be read: {capped(str(exc), MESSAGE_CHARS)}")]
        ) from None
    except TypeError as exc:  # a key ruamel builds but cannot hash: a list holding a mapping (`? - b: `)
        reason = f"a mapping key must be a plain value, not a list or mapping ({capped(str(exc), MESSAGE_CHARS)})"
        raise SpecError([SpecProblem(file, None, "", f"invalid YAML: {reason}")]) from None
    except RecursionError:  # a last resort: nesting is bounded above, well below the interpreter's limit
        raise SpecError([SpecProblem(file, None, "", "invalid YAML: nested too deeply to read")]) from None
    if root is None:
        raise SpecError([SpecProblem(file, 1, "", "the file is empty")])
    return root


def read_yaml(path: Path) -> SpecDocument:
    name = display_name(path)
    try:
        size = path.stat().st_size
        if (
            size > 4 * MAX_SPEC_CHARS
        ):  # too long whatever it holds (UTF-8 takes at most 4 bytes a character): not even read
            raise SpecError(
                [
                    SpecProblem(
                        name,
                        None,
                        "",
                        f"the file is {size:,} bytes; a spec file may be at most {MAX_SPEC_CHARS:,} characters",
                    )
                ]
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem(name, None, "", "file not found")]) from None
    except OSError as exc:  # a folder, a file it may not read
        raise SpecError([SpecProblem(name, None, "", f"cannot be read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError([SpecProblem(name, None, "", f"not UTF-8 text: {exc}")]) from None
    return parse_yaml(text, name)


def load_schema(path: Path) -> dict[str, Any]:
    return _checked_schema(path.read_text(encoding="utf-8"))


@cache
def _checked_schema(text: str) -> dict[str, Any]:
    """A schema by its text: checking it against the metaschema costs more than validating a spec,
    and a copy of the repository (every test's own) holds the same texts under other paths."""
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def schema_registry(directory: Path) -> Registry:
    """Every schema of a folder, by its $id, so schemas can $ref each other's definitions."""
    return _registry_of(tuple(path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.schema.json"))))


@cache
def _registry_of(texts: tuple[str, ...]) -> Registry:
    """One registry per set of schema texts: the same object for every copy of the same folder, so what
    was checked against it can be remembered (KindLoader)."""
    resources = []
    for text in texts:
        schema = _checked_schema(text)
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """A JSON Schema `pattern` compiled to mean what ECMA 262 says it means, for `search`.

    JSON Schema patterns are ECMA regular expressions, in which `$` (without
    the m flag) matches only at the end of the string; Python's `$` also
    matches before a final newline, so "^[a-z]+$" would accept "abc\\n". Every
    unescaped `$` outside a character class becomes `\\Z`."""
    translated = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            translated.append(pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        translated.append(char)
        index += 1
    return re.compile("".join(translated))


def _ecma_pattern_keyword(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not ecma_pattern(pattern).search(instance):
        yield jsonschema.ValidationError(f"{quoted(instance)} does not match {pattern!r}")


# Draft 2020-12 with ECMA `pattern`s: use it for every schema of this repository. Two limits, neither
# reached by the schemas here: `patternProperties` still searches with Python's `re`, and a `$ref` to a
# whole schema that declares `$schema` is checked by the stock validator (jsonschema picks the class
# by `$schema`); the schemas only `$ref` into each other's `$defs`.
SpecValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern_keyword})


def schema_problems(
    document: SpecDocument, schema: dict[str, Any], registry: Registry | None = None
) -> list[SpecProblem]:
    """Every JSON Schema violation in the document, each at its own line."""
    validator = SpecValidator(
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
        # The schema of the object that has the extra property, never a boolean schema.
        allowed = sorted(cast(Mapping[str, Any], error.schema).get("properties", {}))
        return f"{capped(error.message, MESSAGE_CHARS)} (allowed: {', '.join(allowed)})"
    if error.validator == "enum":
        choices = cast(list[Any], error.validator_value)  # an enum keyword's value is its list
        return f"{quoted(error.instance)} is not one of {', '.join(map(repr, choices))}"
    return capped(error.message, MESSAGE_CHARS)


def schema_comment_problem(document: SpecDocument) -> SpecProblem | None:
    """Specs start with the yaml-language-server line so editors validate as you type."""
    first = document.text.lstrip().splitlines()[0] if document.text.strip() else ""
    if first.startswith("# yaml-language-server: $schema="):
        return None
    return SpecProblem(document.file, 1, "", "the first line must be '# yaml-language-server: $schema=<schema path>'")


def name_problems(document: SpecDocument, seen: dict[str, str]) -> list[SpecProblem]:
    """A spec's metadata.name must be its file's name and unique; `seen` maps names to the file that took them."""
    name = document.data["metadata"]["name"]
    file_name = Path(document.file).name
    problems = []
    if file_name != f"{name}.yaml":
        problems.append(
            document.problem(
                ["metadata", "name"], f"{name!r} must match the file name ({file_name}): rename one of them"
            )
        )
    if name in seen:
        problems.append(document.problem(["metadata", "name"], f"{name!r} is already defined in {seen[name]}"))
    seen[name] = document.file
    return problems


# What a document's check against its schema found, by everything it depends on: the file's name and
# text, and the schema and registry objects (one per text, never freed: their ids are never reused).
# The infra program loads every spec file on every plan, and one process plans many times.
_SCHEMA_PROBLEMS: dict[tuple[str, str, int, int], tuple[SpecProblem, ...]] = {}
_SCHEMA_PROBLEMS_KEPT = 4096


def _remembered_schema_problems(
    document: SpecDocument, schema: dict[str, Any], registry: Registry
) -> list[SpecProblem]:
    key = (document.file, document.text, id(schema), id(registry))
    if key not in _SCHEMA_PROBLEMS:
        if len(_SCHEMA_PROBLEMS) >= _SCHEMA_PROBLEMS_KEPT:
            _SCHEMA_PROBLEMS.clear()
        _SCHEMA_PROBLEMS[key] = tuple(schema_problems(document, schema, registry))
    return list(_SCHEMA_PROBLEMS[key])


class KindLoader:
    """Reads the spec files of one folder, each checked against the schema of its `kind`; every
    problem of every file is collected in `problems` (nothing raises), so a loader reports them all."""

    def __init__(self, schema_dir: Path, schemas: Mapping[str, str]):
        self.schema_dir, self.schemas = schema_dir, schemas  # kind -> schema file name in schema_dir
        self.registry = schema_registry(schema_dir)
        self.problems: list[SpecProblem] = []

    def load(self, path: Path, expected_kind: str) -> SpecDocument | None:
        """The document, or None when it is unusable (its problems recorded)."""
        try:
            document = read_yaml(path)
        except SpecError as error:
            self.problems.extend(error.problems)
            return None
        kind = document.data.get("kind") if isinstance(document.data, dict) else None
        if kind != expected_kind:
            self.problems.append(document.problem(["kind"], f"must be {expected_kind!r} in {path.name}, got {kind!r}"))
            return None
        schema = self.schema_dir / self.schemas[kind]
        if not schema.is_file():
            self.problems.append(
                document.problem(["kind"], f"no schema to check it against: {display_name(schema)} does not exist")
            )
            return None
        found = _remembered_schema_problems(document, load_schema(schema), self.registry)
        comment = schema_comment_problem(document)
        self.problems.extend(found + ([comment] if comment else []))
        return None if found else document
