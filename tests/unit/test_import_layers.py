"""The import graph reads one way: no two packages import each other, no module cycle, and
no import tucked inside a function hides one (every import counts, wherever it is written)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "phase3ops"


def module_imports(source: Path = SOURCE) -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports, at any depth of its body."""
    modules = {
        ".".join(path.relative_to(source).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (source / PACKAGE).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in modules}
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def unit(module: str) -> str:
    """The layer a module belongs to: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_imports(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == PACKAGE:
            continue
        packages.setdefault(unit(module), set()).update(
            unit(t) for t in targets if t != PACKAGE and unit(t) != unit(module)
        )
    return packages


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


GRAPH = module_imports()


def test_the_graph_is_read_from_the_source():
    assert len(GRAPH) > 100
    assert "phase3ops.filters.language" in GRAPH["phase3ops.alerts.lints"]


def test_no_module_cycle_even_through_imports_inside_functions():
    assert cycles(GRAPH) == []


def test_no_two_packages_import_each_other_and_no_package_cycle():
    packages = package_imports(GRAPH)
    assert cycles(packages) == []


@pytest.mark.parametrize(
    "lower, higher",
    [
        ("filters", "alerts"),
        ("filters", "dashboards"),
        ("monitoring", "alerts"),
        ("monitoring", "dashboards"),
        ("monitoring", "checks"),
        ("alerts", "dashboards"),
        ("dashboards", "alerts"),
        ("alerts", "checks"),
        ("dashboards", "checks"),
        ("alerts", "validate"),
        ("dashboards", "validate"),
        ("spec", "alerts"),
    ],
)
def test_a_lower_layer_never_imports_a_higher_one(lower, higher):
    assert higher not in package_imports(GRAPH)[lower]


def test_the_shipped_package_imports_no_test_code():
    for path in (SOURCE / PACKAGE).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] != "tests", path
            elif isinstance(node, ast.Import):
                assert all(alias.name.split(".")[0] != "tests" for alias in node.names), path


def test_a_cycle_hidden_in_a_function_body_is_found(tmp_path):
    package = tmp_path / PACKAGE
    (package / "low").mkdir(parents=True)
    (package / "high").mkdir()
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("")
    (package / "high" / "__init__.py").write_text("")
    (package / "high" / "a.py").write_text("from phase3ops.low import b\n")
    (package / "low" / "b.py").write_text("def later():\n    from phase3ops.high import a\n")
    graph = module_imports(tmp_path)
    assert cycles(graph) == [["phase3ops.high.a", "phase3ops.low.b"]]
    assert cycles(package_imports(graph)) == [["high", "low"]]
