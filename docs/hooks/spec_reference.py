"""Reference pages for the spec files, generated from their JSON Schemas when the site is built.

The schemas are what `phase3ops validate` and the services enforce. Rendering
every field from them, descriptions included, means a field cannot be
documented one way and validated another: to change what a page says, change
the schema's `description`.

MkDocs loads this module as a hook (`hooks:` in mkdocs.yml) and calls
`on_files`; everything else is plain functions over JSON Schema documents, so
the tests call them without MkDocs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urldefrag, urljoin

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files


@dataclass(frozen=True)
class ReferencePage:
    slug: str  # the page is reference/<slug>.md
    title: str
    schema: str  # path of the schema, from the repository root
    validates: str  # Markdown: what the schema validates


REFERENCE_PAGES = (
    ReferencePage("pipeline", "pipeline.yaml", "src/phase3ops/spec/schemas/pipeline.schema.json", "`pipeline.yaml`"),
    ReferencePage(
        "alert-rule",
        "Alert rule",
        "alerts/schema/alert-rule.schema.json",
        "every `alerts/<name>.yaml` except `channels.yaml` and `defaults.yaml`",
    ),
    ReferencePage(
        "alert-channels", "Notification channels", "alerts/schema/channels.schema.json", "`alerts/channels.yaml`"
    ),
    ReferencePage(
        "alert-rule-test", "Alert rule test", "alerts/schema/alert-rule-test.schema.json", "`alerts/tests/<rule>.yaml`"
    ),
    ReferencePage("alert-defaults", "Alert defaults", "alerts/schema/defaults.schema.json", "`alerts/defaults.yaml`"),
    ReferencePage(
        "alert-stack-overrides",
        "Alert stack overrides",
        "alerts/schema/stack-overrides.schema.json",
        "`alerts/stacks/<stack>.yaml`",
    ),
    ReferencePage("dashboard", "Dashboard", "dashboards/schema/dashboard.schema.json", "`dashboards/<name>.yaml`"),
    ReferencePage(
        "dashboard-stack-overrides",
        "Dashboard stack overrides",
        "dashboards/schema/stack-overrides.schema.json",
        "`dashboards/stacks/<stack>.yaml`",
    ),
    ReferencePage("slo", "SLO", "slos/schema/slo.schema.json", "`slos/<name>.yaml`"),
    ReferencePage(
        "slo-alert-policy",
        "SLO alert policy",
        "slos/schema/slo-alert-policy.schema.json",
        "`slos/alert-policies/<name>.yaml`",
    ),
    ReferencePage(
        "slo-stack-overrides",
        "SLO stack overrides",
        "slos/schema/slo-stack-overrides.schema.json",
        "`slos/stacks/<stack>.yaml`",
    ),
    ReferencePage(
        "drift-allowlist",
        "Drift allow-list",
        "src/phase3ops/spec/schemas/drift-allowlist.schema.json",
        "`infra/drift-allowlist.yaml`",
    ),
    ReferencePage(
        "completion-message",
        "Completion message",
        "src/phase3ops/spec/schemas/completion-message.schema.json",
        "each message on the completion topic (`nba-phase3-analytics-complete`), as the orchestrator reads it",
    ),
)

# The placeholder for a key of a map (`additionalProperties`) in a field's path.
MAP_KEY = "<name>"
# A top-level field with more rows than this gets one section per field of its own.
SECTION_ROWS = 25


@dataclass(frozen=True)
class FieldRow:
    path: str  # dotted; `[]` marks an array's items, `<name>` a map's keys
    type: str
    required: str  # "yes", "no", or the condition under which it is required
    default: str
    allowed: str  # enum and const values, patterns, bounds
    description: str
    same_as: str | None = None  # for a recursive field: the path whose fields it repeats ("" for the whole document)


class SchemaSet:
    """Schemas by their `$id`, so a `$ref` into another file resolves as the validator resolves it."""

    def __init__(self, documents: Iterable[dict[str, Any]]):
        self._by_uri: dict[str, dict[str, Any]] = {}
        for document in documents:
            self.add(document)

    def add(self, document: dict[str, Any]) -> None:
        self._by_uri[document.get("$id", "")] = document

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> SchemaSet:
        return cls(json.loads(path.read_text(encoding="utf-8")) for path in paths)

    def resolve(self, ref: str, base: str) -> tuple[dict[str, Any], str, str]:
        """The schema `ref` names, the base URI of the document it is in, and `ref` made absolute."""
        uri, fragment = urldefrag(urljoin(base, ref) if base else ref)
        absolute = f"{uri}#{fragment}" if fragment else uri
        if uri not in self._by_uri:
            raise KeyError(f"$ref {ref!r} (from {base or 'the root'}): no schema with $id {uri!r}")
        node: Any = self._by_uri[uri]
        for token in filter(None, unquote(fragment).split("/")):
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return node, uri, absolute


@dataclass(frozen=True)
class _View:
    """A schema with its `$ref` chain followed: the referring schema's own keywords win."""

    schema: dict[str, Any]
    base: str
    refs: tuple[str, ...]


def _view(schema: dict[str, Any], base: str, schemas: SchemaSet) -> _View:
    merged: dict[str, Any] = {}
    refs: list[str] = []
    node, node_base = schema, base
    while True:
        merged = {**{k: v for k, v in node.items() if k != "$ref"}, **merged}
        if "$ref" not in node:
            return _View(merged, node_base, tuple(refs))
        target, target_base, absolute = schemas.resolve(node["$ref"], node_base)
        if absolute in refs:  # a $ref cycle with nothing in between describes nothing
            return _View(merged, node_base, tuple(refs))
        refs.append(absolute)
        node, node_base = target, target_base


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [*schema.get("allOf", ()), *schema.get("anyOf", ()), *schema.get("oneOf", ())]


def _has_fields(view: _View, schemas: SchemaSet) -> bool:
    schema = view.schema
    if (
        schema.get("properties")
        or isinstance(schema.get("additionalProperties"), dict)
        or schema.get("patternProperties")
    ):
        return True
    return any(_has_fields(_view(b, view.base, schemas), schemas) for b in _branches(schema) if isinstance(b, dict))


def _items(view: _View) -> dict[str, Any] | None:
    items = view.schema.get("items")
    return items if isinstance(items, dict) else None


# Type names -------------------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def type_name(view: _View, schemas: SchemaSet) -> str:
    schema = view.schema
    declared = schema.get("type")
    if isinstance(declared, str):
        types = [declared]
    elif isinstance(declared, list):
        types = list(declared)
    elif "const" in schema:
        types = [_json_type(schema["const"])]
    elif "enum" in schema:
        types = _unique(_json_type(v) for v in schema["enum"])
    elif schema.get("anyOf") or schema.get("oneOf"):
        branches = [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
        types = _unique(type_name(_view(b, view.base, schemas), schemas) for b in branches)
    elif _has_fields(view, schemas):
        types = ["object"]
    elif "items" in schema or "prefixItems" in schema:
        types = ["array"]
    else:
        types = ["any"]
    items = _items(view)
    if "array" in types and items is not None:
        of = type_name(_view(items, view.base, schemas), schemas)
        if of != "any":
            types = [f"array of {of}" if t == "array" else t for t in types]
    return " or ".join(types)


# Values and limits ------------------------------------------------------------------------------


def code(value: Any) -> str:
    """`value` as a Markdown code span (strings as they are written in YAML, anything else as JSON)."""
    text = value if isinstance(value, str) else json.dumps(value)
    fence = "`"
    while fence in text:
        fence += "`"
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _range(low: int | None, high: int | None, noun: str) -> str:
    if low is not None and high is not None:
        return f"exactly {_count(low, noun)}" if low == high else f"{low} to {high} {noun}s"
    if low is not None:
        return f"at least {_count(low, noun)}"
    return f"at most {_count(high, noun)}" if high is not None else ""


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 100_000 else str(value)


def limits(view: _View, schemas: SchemaSet) -> list[str]:
    """Every constraint of a value, in words; array items and map keys included."""
    schema = view.schema
    found: list[str] = []
    if "const" in schema:
        found.append(f"always {code(schema['const'])}")
    if "enum" in schema:
        found.append("one of " + ", ".join(code(v) for v in schema["enum"]))
    if "pattern" in schema:
        found.append(f"pattern {code(schema['pattern'])}")
    if "format" in schema:
        found.append(f"format {code(schema['format'])}")
    found.append(_range(schema.get("minLength"), schema.get("maxLength"), "character"))
    bounds = [
        ("minimum", "at least"),
        ("exclusiveMinimum", "greater than"),
        ("maximum", "at most"),
        ("exclusiveMaximum", "less than"),
    ]
    found.extend(f"{words} {_number(schema[key])}" for key, words in bounds if key in schema)
    found.append(_range(schema.get("minItems"), schema.get("maxItems"), "item"))
    if schema.get("uniqueItems"):
        found.append("no item twice")
    found.append(_range(schema.get("minProperties"), schema.get("maxProperties"), "entry"))
    if isinstance(schema.get("propertyNames"), dict):
        keys = limits(_view(schema["propertyNames"], view.base, schemas), schemas)
        found.extend(f"keys: {k}" for k in keys)
    if schema.get("properties") and schema.get("additionalProperties", True) is True:
        found.append("other keys allowed")
    for position, prefix_item in enumerate(schema.get("prefixItems", ()), start=1):
        found.extend(f"item {position}: {k}" for k in limits(_view(prefix_item, view.base, schemas), schemas))
    items = _items(view)
    if items is not None:
        item_view = _view(items, view.base, schemas)
        if not _has_fields(item_view, schemas):
            found.extend(f"each item: {k}" for k in limits(item_view, schemas))
        elif item_view.schema.get("properties") and item_view.schema.get("additionalProperties", True) is True:
            found.append("each item: other keys allowed")
    branches = [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
    if branches and all(_is_value_schema(b) for b in branches):
        variants = []
        for branch in branches:
            branch_view = _view(branch, view.base, schemas)
            words = [type_name(branch_view, schemas), *limits(branch_view, schemas)]
            variants.append(", ".join(words))
        found.append("either " + "; or ".join(variants))
    return [f for f in found if f]


def _is_value_schema(branch: Any) -> bool:
    """A branch that says what a value is, not which fields must be present."""
    return isinstance(branch, dict) and set(branch) - {"required", "description", "title"} != set()


# Text -------------------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)


def markdown_text(text: str) -> str:
    """Schema prose for a table cell: one line, Markdown syntax outside code spans taken literally."""
    text = " ".join(text.split())
    out, position = [], 0
    for match in _CODE_SPAN.finditer(text):
        out.append(_escape(text[position : match.start()]))
        out.append(match.group(0))
        position = match.end()
    out.append(_escape(text[position:]))
    return "".join(out)


def _escape(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([|*_\[\]])", r"\\\1", text)


def anchor(path: str) -> str:
    """The HTML id of a field's row: the path with every run of other characters made one hyphen."""
    return "field-" + (re.sub(r"[^a-z0-9]+", "-", path.replace(MAP_KEY, "name").lower()).strip("-") or "root")


# Walking a schema -------------------------------------------------------------------------------


def field_rows(schema: dict[str, Any], schemas: SchemaSet | None = None) -> list[FieldRow]:
    """One row per field the schema describes, depth first, in the schema's order."""
    if schemas is None:
        schemas = SchemaSet([schema])
    root = _view(schema, schema.get("$id", ""), schemas)
    expanding = dict.fromkeys((schema.get("$id", ""), *root.refs), "")
    return list(_object_fields(root, "", expanding, schemas))


def _object_fields(view: _View, prefix: str, expanding: dict[str, str], schemas: SchemaSet) -> Iterator[FieldRow]:
    """The fields of an object schema; `expanding` maps each $ref being expanded to its field's path."""
    parts = [view] + [_view(b, view.base, schemas) for b in _branches(view.schema) if isinstance(b, dict)]
    properties: dict[str, tuple[dict[str, Any], str]] = {}
    for part in parts:
        for name, subschema in part.schema.get("properties", {}).items():
            properties.setdefault(name, (subschema, part.base))
    required = _requirements(view, schemas)
    for name, (subschema, base) in properties.items():
        yield from _field(prefix + name, subschema, base, required.get(name, "no"), expanding, schemas)
    for part in parts:
        extra = part.schema.get("additionalProperties")
        if isinstance(extra, dict):
            yield from _field(prefix + MAP_KEY, extra, part.base, "no", expanding, schemas)
        for pattern, subschema in part.schema.get("patternProperties", {}).items():
            yield from _field(f"{prefix}<key matching {pattern}>", subschema, part.base, "no", expanding, schemas)


def _requirements(view: _View, schemas: SchemaSet) -> dict[str, str]:
    """Field name to "yes" or the condition under which the object needs it."""
    schema = view.schema
    required = dict.fromkeys(schema.get("required", ()), "yes")
    for branch in schema.get("allOf", ()):
        branch_view = _view(branch, view.base, schemas)
        for name in branch_view.schema.get("required", ()):
            required[name] = "yes"
    conditional: dict[str, list[dict[str, Any]]] = {}
    for branch in [schema, *schema.get("allOf", ())]:
        if isinstance(branch.get("if"), dict) and isinstance(branch.get("then"), dict):
            for name in branch["then"].get("required", ()):
                conditional.setdefault(name, []).append(branch["if"])
    for name, conditions in conditional.items():
        required.setdefault(name, "when " + _conditions(conditions))
    for keyword in ("anyOf", "oneOf"):
        alternatives = [
            b.get("required", []) for b in schema.get(keyword, ()) if isinstance(b, dict) and not _is_value_schema(b)
        ]
        if len(alternatives) > 1:
            names = _unique(name for names in alternatives for name in names)
            words = "at least one of " if keyword == "anyOf" else "exactly one of "
            for name in names:
                required.setdefault(name, words + ", ".join(code(n) for n in names))
    return required


def _conditions(schemas: list[dict[str, Any]]) -> str:
    """`if` schemas in words, for the usual form: a property equal to a constant (or one of an enum's values)."""
    tests: list[tuple[str, list[Any]]] = []
    for schema in schemas:
        properties = schema.get("properties", {})
        if len(properties) != 1:
            return "a condition holds"
        ((name, subschema),) = properties.items()
        values = [subschema["const"]] if "const" in subschema else subschema.get("enum")
        if not values:
            return "a condition holds"
        tests.append((name, values))
    if len({name for name, _ in tests}) == 1:
        values = [code(v) for _, vs in tests for v in vs]
        listed = values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]
        return f"{code(tests[0][0])} is {listed}"
    return " or ".join(f"{code(name)} is " + " or ".join(code(v) for v in vs) for name, vs in tests)


def _field(
    path: str, schema: dict[str, Any], base: str, required: str, expanding: dict[str, str], schemas: SchemaSet
) -> Iterator[FieldRow]:
    view = _view(schema, base, schemas)
    description = view.schema.get("description", "")
    items = _items(view)
    item_view = _view(items, view.base, schemas) if items is not None else None
    if not description and item_view is not None:
        description = item_view.schema.get("description", "")
    # The objects an array holds (through arrays of arrays), if it holds objects.
    item_path, object_items = path, None
    while item_view is not None:
        item_path += "[]"
        if _has_fields(item_view, schemas):
            object_items = item_view
            break
        inner = _items(item_view)
        item_view = _view(inner, item_view.base, schemas) if inner is not None else None
    refs = view.refs + (object_items.refs if object_items is not None else ())
    recursion = next((expanding[ref] for ref in refs if ref in expanding), None)
    yield FieldRow(
        path=path,
        type=type_name(view, schemas),
        required=required,
        default=code(view.schema["default"]) if "default" in view.schema else "",
        allowed="; ".join(limits(view, schemas)),
        description=markdown_text(description),
        same_as=recursion,
    )
    if recursion is not None:
        return
    expanding = {**expanding, **dict.fromkeys(view.refs, path)}
    if _has_fields(view, schemas):
        yield from _object_fields(view, path + ".", expanding, schemas)
    if object_items is not None:
        nested = {**expanding, **dict.fromkeys(object_items.refs, item_path)}
        yield from _object_fields(object_items, item_path + ".", nested, schemas)


# Rendering --------------------------------------------------------------------------------------


def _section(path: str, rows: list[FieldRow]) -> str:
    """The section a row goes in: its top-level field, or a field of that field when the top-level one is large.

    "" is the section of top-level fields without fields of their own."""
    segments = path.split(".")
    top = segments[0].removesuffix("[]")
    under_top = [r for r in rows if r.path.startswith((top + ".", top + "[]"))]
    if not under_top:
        return ""
    if len(segments) == 1 or len(under_top) <= SECTION_ROWS:
        return top
    second = re.sub(r"(\[\])+$", "", ".".join(segments[:2]))
    if not any(r.path.startswith((second + ".", second + "[]")) for r in rows):
        return top
    return second


# Characters written as HTML references in a path cell, so Markdown reads none of them as syntax.
_PATH_ENTITIES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "_": "&#95;",
    "*": "&#42;",
    "[": "&#91;",
    "]": "&#93;",
    "`": "&#96;",
}


def path_cell(path: str) -> str:
    """A field's path as code with its row's anchor; a long path may wrap after each dot, never inside a name."""
    text = "".join(_PATH_ENTITIES.get(char, char) for char in path).replace(".", ".<wbr>")
    return f'<a id="{anchor(path)}"></a><code class="field-path">{text}</code>'


TABLE_HEADER = "| Field | Type | Required | Default | Values and limits | Description |\n|---|---|---|---|---|---|"


def _table_row(row: FieldRow) -> str:
    description = row.description
    if row.same_as == "":
        description = f"The same fields as the whole document. {description}".strip()
    elif row.same_as is not None:
        description = f"The same fields as [{code(row.same_as)}](#{anchor(row.same_as)}). {description}".strip()
    cells = [path_cell(row.path), markdown_text(row.type), row.required, row.default, row.allowed, description]
    return "| " + " | ".join(cells) + " |"


def render_schema(
    schema: dict[str, Any], title: str, schemas: SchemaSet | None = None, source: str = "", validates: str = ""
) -> str:
    """The reference page of one schema, as Markdown."""
    rows = field_rows(schema, schemas)
    lines = [f"# {title}", ""]
    if source:
        lines += [
            '!!! note "Generated from the schema"',
            f"    This page is generated from {code(source)} when the site is built, and the same schema",
            "    validates what it describes: to change what a field says here, change its `description` there.",
            "",
        ]
    if validates:
        lines += [f"Validates {validates}.", ""]
    if schema.get("title") and schema["title"] != title:
        lines += [f"**{markdown_text(schema['title'])}**", ""]
    if schema.get("description"):
        lines += [markdown_text(schema["description"]), ""]
    if schema.get("additionalProperties", True) is True and schema.get("properties"):
        lines += ["Fields other than these are allowed at the top level.", ""]
    lines += [
        "A path names a field from the top of the file: `a.b` is field `b` of object `a`, `a[]` each item of array `a`,",
        f"and {code(MAP_KEY)} any key of a map. Required means the object that holds the field must have it.",
        "",
    ]
    sections: dict[str, list[FieldRow]] = {}
    for row in rows:
        sections.setdefault(_section(row.path, rows), []).append(row)
    for name, section_rows in sections.items():
        heading = "Top level" if name == "" else code(name)
        lines += [f"## {heading}", "", TABLE_HEADER, *(_table_row(r) for r in section_rows), ""]
    return "\n".join(lines)


def page_markdown(page: ReferencePage, repo_root: Path, schemas: SchemaSet) -> str:
    schema = json.loads((repo_root / page.schema).read_text(encoding="utf-8"))
    return render_schema(schema, page.title, schemas, source=page.schema, validates=page.validates)


def repository_schemas(repo_root: Path) -> SchemaSet:
    return SchemaSet.from_files(repo_root / page.schema for page in REFERENCE_PAGES)


# MkDocs -----------------------------------------------------------------------------------------


def on_files(files: Files, config: MkDocsConfig) -> Files:
    # Imported here, so the rendering above imports without MkDocs.
    from mkdocs.structure.files import File

    repo_root = Path(config.config_file_path).resolve().parent
    schemas = repository_schemas(repo_root)
    for page in REFERENCE_PAGES:
        content = page_markdown(page, repo_root, schemas)
        files.append(File.generated(config, f"reference/{page.slug}.md", content=content))
    return files
