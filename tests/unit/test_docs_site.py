"""The documentation site: the reference pages generated from the JSON Schemas, and the README's links.

The reference pages are rendered here the way the site's hook renders them
(`docs/hooks/spec_reference.py`), without MkDocs; CI builds the site itself
with `mkdocs build --strict`. The schemas are walked independently of the hook,
so a field the hook drops fails a test.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HOOK = REPO_ROOT / "docs" / "hooks" / "spec_reference.py"
README = REPO_ROOT / "README.md"
SCHEMA_FOLDERS = ("alerts/schema", "dashboards/schema", "slos/schema", "src/phase3ops/spec/schemas")

SETUP_RUN = (
    "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e . && "
    ".venv/bin/phase3ops local up && .venv/bin/phase3ops local run-day --chaos"
)
SETUP_TEST = (
    "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[dev]' && .venv/bin/python -m pytest"
)


def _load_hook():
    spec = importlib.util.spec_from_file_location("spec_reference", HOOK)
    assert spec is not None and spec.loader is not None  # a .py path always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


hook = _load_hook()


# An independent walk of a schema ----------------------------------------------------------------


class Schemas:
    def __init__(self, documents: list[dict[str, Any]]):
        self.by_id = {d.get("$id", ""): d for d in documents}

    def resolve(self, ref: str, base: str) -> tuple[dict[str, Any], str, str]:
        uri, fragment = urldefrag(urljoin(base, ref) if base else ref)
        node: Any = self.by_id[uri]
        for token in filter(None, unquote(fragment).split("/")):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        return node, uri, f"{uri}#{fragment}"

    def follow(
        self, node: dict[str, Any], base: str, seen: frozenset[str]
    ) -> tuple[dict[str, Any], str, frozenset[str], bool]:
        """The schema behind a chain of $refs (its own keywords merged over the target's); True when the chain loops."""
        merged = {k: v for k, v in node.items() if k != "$ref"}
        while "$ref" in node:
            node, base, absolute = self.resolve(node["$ref"], base)
            if absolute in seen:
                return merged, base, seen, True
            seen = seen | {absolute}
            merged = {**{k: v for k, v in node.items() if k != "$ref"}, **merged}
        return merged, base, seen, False


def property_paths(schema: dict[str, Any], schemas: Schemas) -> dict[str, dict[str, Any]]:
    """Every field path, to the schema of the object that holds it (for its `required`) and the field's own schema."""
    found: dict[str, dict[str, Any]] = {}

    def walk_object(node: dict[str, Any], base: str, prefix: str, seen: frozenset[str]) -> None:
        node, base, seen, loops = schemas.follow(node, base, seen)
        if loops:
            return
        parts = [node] + [
            schemas.follow(b, base, seen)[0]
            for b in (*node.get("allOf", ()), *node.get("anyOf", ()), *node.get("oneOf", ()))
        ]
        for part in parts:
            for name, child in part.get("properties", {}).items():
                walk_field(prefix + name, child, base, seen, holder=node)
            if isinstance(part.get("additionalProperties"), dict):
                walk_field(prefix + "<name>", part["additionalProperties"], base, seen, holder=node)

    def walk_field(path: str, node: dict[str, Any], base: str, seen: frozenset[str], holder: dict[str, Any]) -> None:
        if path in found:
            return
        merged, field_base, field_seen, loops = schemas.follow(node, base, seen)
        found[path] = {"holder": holder, "schema": merged}
        if loops:
            return
        walk_object(merged, field_base, path + ".", field_seen)
        items_path, items = path, merged
        while isinstance(items.get("items"), dict):
            items_path += "[]"
            items, field_base, field_seen, loops = schemas.follow(items["items"], field_base, field_seen)
            if loops:
                return
            walk_object(items, field_base, items_path + ".", field_seen)

    walk_object(schema, schema.get("$id", ""), "", frozenset({schema.get("$id", "")}))
    return found


# Reading the rendered page ----------------------------------------------------------------------


def table_rows(page: str) -> dict[str, list[str]]:
    """Field path to its row's cells, from the rendered Markdown tables."""
    rows = {}
    for line in page.splitlines():
        match = re.match(r'^\| <a id="[^"]+"></a><code class="field-path">(.+?)</code> \| (.*) \|$', line)
        if match:
            path = html.unescape(match.group(1).replace("<wbr>", ""))
            rows[path] = [cell.strip() for cell in re.split(r"(?<!\\) \| ", match.group(2))]
    return rows


def shipped_schema_paths() -> list[Path]:
    return sorted(path for folder in SCHEMA_FOLDERS for path in (REPO_ROOT / folder).glob("*.schema.json"))


@pytest.fixture(scope="module")
def shipped() -> tuple[Schemas, Any]:
    documents = [json.loads(path.read_text()) for path in shipped_schema_paths()]
    return Schemas(documents), hook.repository_schemas(REPO_ROOT)


def test_every_shipped_schema_has_a_reference_page():
    pages = {REPO_ROOT / page.schema for page in hook.REFERENCE_PAGES}
    assert set(shipped_schema_paths()) == pages
    assert len({page.slug for page in hook.REFERENCE_PAGES}) == len(hook.REFERENCE_PAGES)


@pytest.mark.parametrize("page", hook.REFERENCE_PAGES, ids=lambda page: page.slug)
def test_the_reference_page_documents_every_field(page, shipped):
    schemas, hook_schemas = shipped
    schema = json.loads((REPO_ROOT / page.schema).read_text())
    rendered = hook.page_markdown(page, REPO_ROOT, hook_schemas)
    rows = table_rows(rendered)
    paths = property_paths(schema, schemas)
    assert paths, "the walk found no field"
    assert sorted(set(paths) - set(rows)) == [], "fields missing from the page"
    assert sorted(set(rows) - set(paths)) == [], "rows for fields the schema does not have"
    for path, found in paths.items():
        _type, required, _default, allowed, description = rows[path]
        name = path.rsplit(".", 1)[-1]
        if name in found["holder"].get("required", ()):
            assert required == "yes", path
        for value in found["schema"].get("enum", ()):
            assert hook.code(value) in allowed, (path, value)
        assert description, f"{path} has no description: add one to {page.schema}"
    if schema.get("description"):
        assert hook.markdown_text(schema["description"]) in rendered


def test_conditional_and_alternative_requirements_are_stated(shipped):
    _, hook_schemas = shipped
    pages = {page.slug: page for page in hook.REFERENCE_PAGES}
    gates = table_rows(hook.page_markdown(pages["pipeline"], REPO_ROOT, hook_schemas))
    assert gates["spec.gates[].table"][1] == "when `kind` is `column_coverage` or `null_rate`"
    assert gates["spec.gates[].min"][1] == "when `kind` is `column_coverage`, `game_coverage` or `record_count`"
    completion = table_rows(hook.page_markdown(pages["completion-message"], REPO_ROOT, hook_schemas))
    assert completion["processor_name"][1] == "at least one of `processor_name`, `output_table`"
    assert completion["game_date"][1] == "yes"


SYNTHETIC = {
    "$id": "https://example.test/synthetic.schema.json",
    "title": "Synthetic",
    "description": "A schema with one of each shape.",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "servers"],
    "properties": {
        "name": {"description": "The name.", "type": "string", "pattern": "^[a-z]+$", "maxLength": 20},
        "servers": {
            "description": "Where it runs.",
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/server"},
        },
        "labels": {
            "description": "Label name to value.",
            "type": "object",
            "propertyNames": {"pattern": "^[a-z]+$"},
            "additionalProperties": {"type": "string", "description": "The value."},
        },
        "tree": {"$ref": "#/$defs/node", "description": "A recursive structure."},
    },
    "$defs": {
        "server": {
            "type": "object",
            "required": ["host"],
            "properties": {
                "host": {"type": "string", "description": "Host name."},
                "role": {"enum": ["primary", "replica"], "default": "replica", "description": "Its part."},
                "limits": {
                    "type": "object",
                    "properties": {"cpu": {"type": "number", "exclusiveMinimum": 0, "description": "Cores."}},
                },
            },
        },
        "node": {
            "type": "object",
            "properties": {
                "value": {"type": ["integer", "null"], "description": "The value."},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "description": "Nodes under it."},
            },
        },
    },
}


def test_a_synthetic_schema_renders_exactly_these_rows():
    Row = hook.FieldRow
    assert hook.field_rows(SYNTHETIC) == [
        Row("name", "string", "yes", "", "pattern `^[a-z]+$`; at most 20 characters", "The name."),
        Row(
            "servers", "array of object", "yes", "", "at least 1 item; each item: other keys allowed", "Where it runs."
        ),
        Row("servers[].host", "string", "yes", "", "", "Host name."),
        Row("servers[].role", "string", "no", "`replica`", "one of `primary`, `replica`", "Its part."),
        Row("servers[].limits", "object", "no", "", "other keys allowed", ""),
        Row("servers[].limits.cpu", "number", "no", "", "greater than 0", "Cores."),
        Row("labels", "object", "no", "", "keys: pattern `^[a-z]+$`", "Label name to value."),
        Row("labels.<name>", "string", "no", "", "", "The value."),
        Row("tree", "object", "no", "", "other keys allowed", "A recursive structure."),
        Row("tree.value", "integer or null", "no", "", "", "The value."),
        Row(
            "tree.children",
            "array of object",
            "no",
            "",
            "each item: other keys allowed",
            "Nodes under it.",
            same_as="tree",
        ),
    ]


def test_a_recursive_field_links_to_the_fields_it_repeats():
    page = hook.render_schema(SYNTHETIC, "Synthetic")
    row = next(line for line in page.splitlines() if hook.path_cell("tree.children") in line)
    assert f"[`tree`](#{hook.anchor('tree')})" in row
    assert f'<a id="{hook.anchor("tree")}"></a>' in page


def test_table_cells_keep_markdown_syntax_literal_outside_code():
    assert hook.markdown_text("a | b <stack> __x__ `c|d <e>`") == r"a \| b &lt;stack&gt; \_\_x\_\_ `c|d <e>`"
    assert hook.code("a`b") == "``a`b``"
    assert (
        hook.path_cell("a_b.<name>[].c")
        == '<a id="field-a-b-name-c"></a><code class="field-path">a&#95;b.<wbr>&lt;name&gt;&#91;&#93;.<wbr>c</code>'
    )


def test_the_site_lists_every_page():
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    assert config["hooks"] == ["docs/hooks/spec_reference.py"]

    def pages(nav: Any) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [p for value in nav.values() for p in pages(value)]
        return [p for item in nav for p in pages(item)]

    listed = pages(config["nav"])
    written = sorted(str(p.relative_to(REPO_ROOT / "docs")) for p in (REPO_ROOT / "docs").glob("*.md"))
    generated = [f"reference/{page.slug}.md" for page in hook.REFERENCE_PAGES]
    assert sorted(listed) == sorted(written + generated)


# README -----------------------------------------------------------------------------------------


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def without_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """MkDocs' (Python-Markdown toc's) slug: the heading's text, ASCII, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(markdown_file: Path) -> set[str]:
    text = without_code(markdown_file.read_text())
    found = {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)}
    return found | set(re.findall(r'<a id="([^"]+)"', text))


def readme_links() -> list[str]:
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", without_code(README.read_text()))


def test_slug_matches_the_toc_rule():
    assert slug("What is guaranteed, and what is not") == "what-is-guaranteed-and-what-is-not"
    assert slug("`local down`") == "local-down"
    assert slug("Phase 3 -> Phase 4 runbook") == "phase-3-phase-4-runbook"


def test_every_relative_link_in_the_readme_resolves():
    links = [link for link in readme_links() if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]
    assert links, "the README links no page"
    for link in links:
        target, fragment = urldefrag(link)
        path = (REPO_ROOT / unquote(target)).resolve() if target else README
        assert path.is_relative_to(REPO_ROOT) and path.exists(), f"README links {link}: no such file"
        if fragment:
            assert path.suffix == ".md", f"README links {link}: an anchor in a file that is not Markdown"
            assert fragment in anchors(path), f"README links {link}: {path.name} has no heading with that anchor"


def test_the_readme_is_a_front_door_with_the_two_setup_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 160
    blocks = [block.strip() for block in fenced_blocks(text)]
    assert SETUP_RUN in blocks and SETUP_TEST in blocks
    # Those two are the only ways in: no other block installs anything or creates an environment.
    others = [b for b in blocks if b not in (SETUP_RUN, SETUP_TEST)]
    assert [b for b in others if "pip install" in b or "-m venv" in b] == []


def test_ci_runs_the_readme_test_command():
    assert SETUP_TEST in (REPO_ROOT / ".ci" / "run").read_text()
