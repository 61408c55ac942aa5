"""Loading `dashboards/`: one dashboard per file, and per-stack overrides.

dashboards/
  <name>.yaml           kind: Dashboard, rows of tiles (one widget each)
  stacks/<stack>.yaml   kind: DashboardOverrides (merged over the dashboards for that stack)
  schema/               the JSON Schemas of the kinds above

Overrides name tiles by id, not by position: a tile moved to another row
keeps its overrides. Every problem of every file is collected before
anything is raised, each at the file and line that wrote the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from phase3ops.spec.merging import Layer, MergedDocument, Origins

DASHBOARD_KIND = "Dashboard"
OVERRIDES_KIND = "DashboardOverrides"
STACKS_DIR = "stacks"
SCHEMA_DIR = "schema"
_SCHEMAS = {DASHBOARD_KIND: "dashboard.schema.json", OVERRIDES_KIND: "stack-overrides.schema.json"}
WIDGET_KINDS = ("xyChart", "scorecard", "logsPanel", "text")
DEFAULT_COLUMNS = 12
DEFAULT_ROW_HEIGHT = 4


@dataclass(frozen=True)
class Tile:
    """A tile as laid out on the grid: its place, and its one widget."""

    id: str
    title: str
    kind: str  # one of WIDGET_KINDS
    body: dict[str, Any]
    path: tuple[PathPart, ...]  # in the merged spec: ("rows", r, "tiles", t)
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Dashboard:
    name: str
    labels: dict[str, str]
    spec: dict[str, Any]  # the file, then the stack's overrides
    document: SpecDocument  # the dashboard file
    origins: Origins  # where each merged value was written

    @property
    def source(self) -> str:
        return self.document.file

    def problem(self, path: list[PathPart] | tuple[PathPart, ...], message: str) -> SpecProblem:
        """A problem with the merged spec's value at `path`, located where that value was written."""
        return self.origins.locate(tuple(path), message)

    def written(self, path: list[PathPart] | tuple[PathPart, ...]) -> tuple[SpecDocument, list[PathPart]]:
        """The document that wrote the value at `path`, and its path there."""
        layer, at = self.origins.origin(tuple(path))
        return layer.document, layer.written_at(at)

    @property
    def display_name(self) -> str:
        return self.spec["displayName"]

    @property
    def columns(self) -> int:
        return self.spec.get("columns", DEFAULT_COLUMNS)

    @property
    def log_metrics(self) -> list[dict[str, Any]]:
        return self.spec.get("logMetrics", [])

    @property
    def tiles(self) -> list[Tile]:
        tiles, y = [], 0
        for r, row in enumerate(self.spec["rows"]):
            height = row.get("height", DEFAULT_ROW_HEIGHT)
            x = 0
            for t, (tile, width) in enumerate(zip(row["tiles"], tile_widths(row["tiles"], self.columns))):
                kind = next(k for k in WIDGET_KINDS if k in tile)
                tiles.append(
                    Tile(tile["id"], tile["title"], kind, tile[kind], ("rows", r, "tiles", t), x, y, width, height)
                )
                x += width
            y += height
        return tiles


def tile_widths(tiles: list[dict[str, Any]], columns: int) -> list[int]:
    """Each tile's width: its own, or an equal share of what the row's other tiles leave (at least 1)."""
    fixed = sum(t["width"] for t in tiles if "width" in t)
    unset = [t for t in tiles if "width" not in t]
    share = max(1, (columns - fixed) // len(unset)) if unset else 0
    return [t.get("width", share) for t in tiles]


@dataclass(frozen=True)
class DashboardSpecs:
    directory: Path
    stack: str | None
    dashboards: tuple[Dashboard, ...]
    # Problems that leave every dashboard usable (a name that does not match
    # its file, an override for no dashboard): reported with the lints' findings.
    problems: tuple[SpecProblem, ...] = ()

    def dashboard(self, name: str) -> Dashboard:
        return next(d for d in self.dashboards if d.name == name)


def load_dashboard_specs(directory: Path, stack: str | None = None, strict: bool = True) -> DashboardSpecs:
    """Parse and schema-check every file; merge the stack's overrides into each dashboard.

    Raises SpecError for anything that leaves a dashboard unusable. With
    strict (the default) the remaining problems raise too; `phase3ops
    validate` passes strict=False to report them with the lints' findings.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SpecError([SpecProblem(display_name(directory), None, "", "dashboards directory not found")])
    loader = KindLoader(directory / SCHEMA_DIR, _SCHEMAS)
    registry, problems, load = loader.registry, loader.problems, loader.load

    overrides_doc = None
    if stack is not None and (directory / STACKS_DIR / f"{stack}.yaml").is_file():
        overrides_doc = load(directory / STACKS_DIR / f"{stack}.yaml", OVERRIDES_KIND)
        if overrides_doc is not None and overrides_doc.data["stack"] != stack:
            problems.append(overrides_doc.problem(["stack"], f"must be {stack!r} (the file name)"))
    documents = [doc for path in sorted(directory.glob("*.yaml")) if (doc := load(path, DASHBOARD_KIND)) is not None]
    for document in documents:
        problems.extend(_duplicate_tile_ids(document))
    if problems:
        raise SpecError(problems)

    overrides = overrides_doc.data["dashboards"] if overrides_doc else {}
    soft: list[SpecProblem] = []
    dashboards = []
    seen: dict[str, str] = {}
    for document in documents:
        data = document.data
        name = data["metadata"]["name"]
        soft.extend(name_problems(document, seen))
        origins = Origins(Layer(document, ("spec",), name, owner_kind="dashboard"))
        spec = data["spec"]
        if name in overrides:
            assert overrides_doc is not None  # overrides is empty without it
            spec = _apply_overrides(spec, overrides[name], origins, overrides_doc, name)
        problems.extend(origins.problems)
        dashboard = Dashboard(name, data["metadata"].get("labels", {}), spec, document, origins)
        problems.extend(_merged_problems(dashboard, registry))
        dashboards.append(dashboard)
    for name in overrides:
        if name not in seen:
            assert overrides_doc is not None  # overrides is empty without it
            soft.append(
                overrides_doc.problem(["dashboards", name], f"overrides {name!r}, which no dashboard file defines")
            )
    if problems or (strict and soft):
        raise SpecError(problems + soft)
    return DashboardSpecs(directory, stack, tuple(dashboards), tuple(soft))


def _duplicate_tile_ids(document: SpecDocument) -> list[SpecProblem]:
    """Overrides find tiles by id: two tiles with one id would be ambiguous."""
    problems: list[SpecProblem] = []
    seen: dict[str, int | None] = {}
    for r, row in enumerate(document.data["spec"]["rows"]):
        for t, tile in enumerate(row["tiles"]):
            path: list[PathPart] = ["spec", "rows", r, "tiles", t, "id"]
            if tile["id"] in seen:
                problems.append(
                    document.problem(path, f"tile id {tile['id']!r} is already used at line {seen[tile['id']]}")
                )
            else:
                seen[tile["id"]] = document.line_of(path)
    return problems


def _apply_overrides(
    spec: dict[str, Any], patch: dict[str, Any], origins: Origins, document: SpecDocument, name: str
) -> dict[str, Any]:
    rest = {k: v for k, v in patch.items() if k != "tiles"}
    if rest:
        spec = origins.merge(
            spec, rest, Layer(document, ("dashboards", name), name, overrides=True, owner_kind="dashboard")
        )
    places = {tile["id"]: (r, t) for r, row in enumerate(spec["rows"]) for t, tile in enumerate(row["tiles"])}
    for tile_id, tile_patch in patch.get("tiles", {}).items():
        layer = Layer(document, ("dashboards", name, "tiles", tile_id), name, overrides=True, owner_kind="dashboard")
        if tile_id not in places:
            origins.layer = layer
            origins.problem(
                (), f"overrides tile {tile_id!r}, which dashboard {name} does not have (its tiles: {', '.join(places)})"
            )
            continue
        r, t = places[tile_id]
        spec["rows"][r]["tiles"][t] = origins.merge(
            spec["rows"][r]["tiles"][t], tile_patch, layer, path=("rows", r, "tiles", t)
        )
    return spec


def _merged_problems(dashboard: Dashboard, registry) -> list[SpecProblem]:
    """After merging, the spec must still match the schema, and each tile hold exactly one widget."""
    schema = {"$ref": "https://phase3ops.example/schemas/dashboard.schema.json#/$defs/dashboardSpec"}
    problems = schema_problems(MergedDocument(dashboard.document, dashboard.spec, dashboard.origins), schema, registry)
    if problems:
        return problems
    for r, row in enumerate(dashboard.spec["rows"]):
        for t, tile in enumerate(row["tiles"]):
            kinds = [k for k in WIDGET_KINDS if k in tile]
            if len(kinds) != 1:
                found = f"it has {' and '.join(kinds)}" if kinds else "it has none"
                problems.append(
                    dashboard.problem(
                        ("rows", r, "tiles", t),
                        f"tile {tile['id']!r} needs exactly one of {', '.join(WIDGET_KINDS)}: {found}",
                    )
                )
    return problems
