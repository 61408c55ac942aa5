"""Variants of the shipped specs for tests: same content, a few values changed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_pipeline_variant(directory: Path, changes: dict[str, Any] | None = None) -> Path:
    """Copy pipeline.yaml with `changes` applied ({"spec.orchestrator.claim_lease_seconds": 2})."""
    yaml = YAML(typ="rt")
    text = (REPO_ROOT / "pipeline.yaml").read_text()
    document = yaml.load(text)
    for dotted, value in (changes or {}).items():
        node = document
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    schema_line = f"# yaml-language-server: $schema={REPO_ROOT / 'src/phase3ops/spec/schemas/pipeline.schema.json'}\n"
    path = directory / "pipeline.yaml"
    body = buffer.getvalue()
    if not body.startswith("# yaml-language-server"):
        body = schema_line + body
    path.write_text(body)
    return path


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


_DELETE = DELETE = _Delete()
