"""Layered specs (defaults, a file, a stack's overrides) merged, each value remembering who wrote it.

A problem found in a merged spec must point at the file and line that wrote
the offending value: the defaults, the spec file itself, or a stack's
overrides. `Origins` records that while `merge` runs; `MergedDocument` hands
the merged spec to the schema checks and locates what they find.

Merging: mappings merge key by key; a mapping whose keys are all digits
patches a list by index; anything else replaces. An override layer may patch
by index only items that exist; such a patch is reported, not applied.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from phase3ops.spec.documents import PathPart, SpecDocument, SpecProblem, format_path

Path = tuple[PathPart, ...]


def _is_index_patch(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(str(k).isdigit() for k in value)


def _merge(base: Any, override: Any, origins: Origins, path: Path, at: Path) -> Any:
    """Mappings merge key by key; a mapping over a list patches items by index; anything else
    replaces. `origins` learns where each merged value comes from: `path` is where the merge is
    in the merged spec, `at` where the override value is in its own document's spec.
    """
    checked = origins.layer.overrides
    owner = origins.layer.owner_text
    if checked and _is_index_patch(override) and not isinstance(base, list):
        origins.problem(
            at, f"patches spec.{format_path(path)} by index, but in {owner} it is {_kind(base)}, not a list"
        )
        return copy.deepcopy(base)
    if isinstance(base, dict) and isinstance(override, dict):
        origins.merged(path, at, had=list(base), added=[k for k in override if k not in base])
        merged = copy.deepcopy(base)
        for key, value in override.items():
            if key in base:
                merged[key] = _merge(base[key], value, origins, (*path, key), (*at, key))
            elif checked and _is_index_patch(value):
                where = format_path((*path, key))
                origins.problem((*at, key), f"patches spec.{where} by index, but {owner} has no spec.{where}")
            else:
                merged[key] = copy.deepcopy(value)
                origins.replaced((*path, key), (*at, key))
        return merged
    if isinstance(base, list) and isinstance(override, dict) and all(str(k).isdigit() for k in override):
        origins.merged(path, at, had=list(range(len(base))), added=[])
        patched = copy.deepcopy(base)
        for key, value in override.items():
            index = int(key)
            if index < len(patched):
                patched[index] = _merge(patched[index], value, origins, (*path, index), (*at, key))
            elif checked:
                origins.problem(
                    (*at, key), f"there is no spec.{format_path((*path, index))}: {owner} has {_items(path, len(base))}"
                )
        return patched
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


def _items(path: Path, count: int) -> str:
    """'1 condition (index 0)', '3 channels (indexes 0-2)'."""
    name = str(path[-1]) if path else ""
    noun = name[:-1] if name.endswith("s") else "item"
    if count == 0:
        return f"no {noun}s"
    return f"{count} {noun}{'s' if count != 1 else ''} ({'index 0' if count == 1 else f'indexes 0-{count - 1}'})"


@dataclass(frozen=True)
class Layer:
    """One document's part in a merged spec: defaults, the spec file, or a stack's overrides."""

    document: SpecDocument
    prefix: Path  # where the spec is in the document: ("spec",), or ("rules", <rule>) in a stack's overrides
    owner: str  # the name of what is merged: a rule, a dashboard
    overrides: bool = False
    owner_kind: str = "rule"

    @property
    def owner_text(self) -> str:
        return f"{self.owner_kind} {self.owner}"

    def problem(self, at: Path, message: str) -> SpecProblem:
        parts = [*self.prefix, *at]
        return SpecProblem(self.document.file, line_of(self.document, parts), format_path(parts), message)

    def written_at(self, at: Path) -> list[PathPart]:
        """The path of `at` in the document, as written (an index key `0:` as the number it is)."""
        return _written(self.document, [*self.prefix, *at])


class Origins:
    """Where each value of one merged spec was written.

    Maps merged paths to (layer, path in that layer's spec): a value is
    located by its longest recorded prefix. A merged mapping or patched list
    belongs to the last layer that merged into it, its items keeping the
    origins they had until a layer replaces them.
    """

    def __init__(self, first: Layer):
        self.layer = first
        self._at: dict[Path, tuple[Layer, Path]] = {(): (first, ())}
        self._added: dict[Path, list[str]] = {}  # keys the last layer to merge into a mapping added to it
        self.problems: list[SpecProblem] = []

    def merge(self, base: Any, override: Any, layer: Layer, path: Path = (), at: Path = ()) -> Any:
        """Merge `override` (written at `at` of `layer`) into `base`, the value at `path` of the merged spec."""
        self.layer = layer
        return _merge(base, override, self, path, at)

    def origin(self, path: Path) -> tuple[Layer, Path]:
        for n in range(len(path), -1, -1):
            if path[:n] in self._at:
                layer, at = self._at[path[:n]]
                return layer, (*at, *path[n:])
        raise AssertionError("the root always has an origin")

    def added(self, path: Path) -> list[str]:
        return self._added.get(path, [])

    def merged(self, path: Path, at: Path, had: list[PathPart], added: list[str]) -> None:
        # Pin what the node had to where it came from before the node changes hands.
        for key in had:
            self._at[(*path, key)] = self.origin((*path, key))
        self._at[path] = (self.layer, at)
        self._added[path] = added

    def replaced(self, path: Path, at: Path) -> None:
        for table in (self._at, self._added):
            for key in [k for k in table if k[: len(path)] == path]:
                del table[key]
        self._at[path] = (self.layer, at)

    def problem(self, at: Path, message: str) -> None:
        self.problems.append(self.layer.problem(at, message))

    def locate(self, path: Path, message: str) -> SpecProblem:
        """A problem with the merged value at `path`, in the file and at the line that wrote it."""
        layer, at = self.origin(path)
        return layer.problem(at, message)


def _written(document: SpecDocument, parts: list[PathPart]) -> list[PathPart]:
    node, written = document.root, []
    for part in parts:
        if (
            isinstance(node, dict)
            and part not in node
            and isinstance(part, str)
            and part.isdigit()
            and int(part) in node
        ):
            part = int(part)
        written.append(part)
        if isinstance(node, list) and isinstance(part, int):
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            node = None
    return written


def line_of(document: SpecDocument, parts: list[PathPart]) -> int | None:
    """`document.line_of`, also finding an index written as a plain number (`0:`, not `"0":`)."""
    return document.line_of(_written(document, parts))


class MergedDocument(SpecDocument):
    """A merged spec as a document for the schema checks, each problem located where its value was written."""

    def __init__(self, document: SpecDocument, spec: Any, origins: Origins):
        super().__init__(document.file, document.root, document.text)
        self._document = document
        self._spec = spec
        self._origins = origins

    @property
    def data(self) -> Any:
        return self._spec

    def problem(self, parts, message: str) -> SpecProblem:
        path = tuple(parts)
        # A problem with a merged mapping's keys (one too many, one not
        # allowed) is the doing of a key the last layer added to it.
        added = self._origins.added(path)
        if added:
            path = (*path, next((k for k in added if repr(k) in message), added[0]))
        layer, at = self._origins.origin(path)
        if layer.overrides:
            return layer.problem(at, f"overrides spec.{format_path(path)} of {layer.owner_text}: {message}")
        if layer.document is self._document:
            return layer.problem(at, f"after merging defaults and overrides: {message}")
        return layer.problem(at, f"after merging into {layer.owner_text}: {message}")
