"""Known permanent differences, checked in with the reason for each (infra/drift-allowlist.yaml)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from phase3ops.drift.changes import KNOWN, Change
from phase3ops.spec.documents import (
    SCHEMA_DIR,
    SpecError,
    load_schema,
    read_yaml,
    schema_comment_problem,
    schema_problems,
)

ALLOWLIST_SCHEMA = SCHEMA_DIR / "drift-allowlist.schema.json"


@dataclass(frozen=True)
class AllowedDifference:
    type: str
    name: str  # a glob; "*" for every resource of the type
    properties: tuple[str, ...]  # top-level property names or dotted paths, globs allowed
    reason: str
    stacks: tuple[str, ...] = ()

    def covers(self, change: Change, stack: str) -> bool:
        if self.stacks and stack not in self.stacks:
            return False
        if change.type != self.type or not fnmatch.fnmatchcase(change.name, self.name) or not change.properties:
            return False
        return all(
            any(
                fnmatch.fnmatchcase(p, allowed) or fnmatch.fnmatchcase(p.split(".")[0].split("[")[0], allowed)
                for allowed in self.properties
            )
            for p in change.properties
        )


def load_allowlist(path: Path) -> list[AllowedDifference]:
    if not path.is_file():
        return []
    document = read_yaml(path)
    problems = schema_problems(document, load_schema(ALLOWLIST_SCHEMA))
    comment = schema_comment_problem(document)
    if problems or comment:
        raise SpecError(problems + ([comment] if comment else []))
    return [
        AllowedDifference(
            e["type"], e.get("name", "*"), tuple(e["properties"]), e["reason"], tuple(e.get("stacks", ()))
        )
        for e in document.data["entries"]
    ]


def apply_allowlist(changes: list[Change], allowlist: list[AllowedDifference], stack: str) -> None:
    for change in changes:
        for entry in allowlist:
            if entry.covers(change, stack):
                change.kind = KNOWN
                change.allow_reason = entry.reason
                break
