"""The orchestrator function's source bundle, named by its content.

The bundle is exactly the files the function needs: its source root
(functions/orchestrator: main.py, requirements.txt), pipeline.yaml, and the
phase3ops modules main.py imports, found by following the import
statements, plus the package data those modules read (JSON Schemas). The
object name carries a hash of those files' paths and bytes, so a change to
any of them redeploys the function and a change anywhere else does not (a
fixed name never redeployed; a timestamped one redeployed on every run).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from phase3ops.python_imports import imported_modules

PACKAGE = "phase3ops"
SOURCE_ROOT = Path("functions/orchestrator")
PACKAGE_ROOT = Path("src")
PACKAGE_DATA = {"phase3ops/spec": ("schemas/*.json",)}
EXTRA_FILES = {"pipeline.yaml": Path("pipeline.yaml")}


@dataclass(frozen=True)
class FunctionSource:
    files: dict[str, Path]  # path inside the bundle -> file in the repository
    digest: str  # sha256 over the bundle's paths and contents

    @property
    def object_name(self) -> str:
        return f"phase3-to-phase4-orchestrator-{self.digest[:20]}.zip"

    @property
    def short_hash(self) -> str:
        return self.digest[:12]


def collect_function_source(repo_root: Path) -> FunctionSource:
    repo_root = Path(repo_root)
    files: dict[str, Path] = {}
    for path in sorted((repo_root / SOURCE_ROOT).iterdir()):
        if path.is_file() and path.suffix in (".py", ".txt"):
            files[path.name] = path
    for bundle_path, relative in EXTRA_FILES.items():
        files[bundle_path] = repo_root / relative
    for module_file in _imported_package_files(repo_root, repo_root / SOURCE_ROOT / "main.py"):
        files[module_file.relative_to(repo_root / PACKAGE_ROOT).as_posix()] = module_file
    for package_dir, patterns in PACKAGE_DATA.items():
        if (repo_root / PACKAGE_ROOT / package_dir / "__init__.py").is_file() and any(
            name.startswith(package_dir + "/") for name in files
        ):
            for pattern in patterns:
                for data in sorted((repo_root / PACKAGE_ROOT / package_dir).glob(pattern)):
                    files[data.relative_to(repo_root / PACKAGE_ROOT).as_posix()] = data
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the function bundle needs files that do not exist: {', '.join(missing)}")
    ordered = dict(sorted(files.items()))
    digest = hashlib.sha256()
    for bundle_path, file in ordered.items():
        digest.update(bundle_path.encode() + b"\0" + file.read_bytes() + b"\0")
    return FunctionSource(ordered, digest.hexdigest())


def _imported_package_files(repo_root: Path, entry: Path) -> list[Path]:
    """Every phase3ops module reachable from `entry` by import statements, with its packages' __init__.py."""
    package_root = repo_root / PACKAGE_ROOT
    found: set[Path] = set()
    pending = [entry]
    while pending:
        source = pending.pop()
        for module in _imports(source):
            for candidate in _module_files(package_root, module):
                if candidate not in found:
                    found.add(candidate)
                    pending.append(candidate)
    return sorted(found)


def _imports(path: Path) -> set[str]:
    modules = imported_modules(path.read_text(encoding="utf-8"), str(path))
    return {m for m in modules if m == PACKAGE or m.startswith(PACKAGE + ".")}


def _module_files(package_root: Path, module: str) -> list[Path]:
    """The file of `module` (if it is one) and the __init__.py of every package on its path."""
    parts = module.split(".")
    files = []
    for depth in range(1, len(parts) + 1):
        init = package_root.joinpath(*parts[:depth], "__init__.py")
        if init.is_file():
            files.append(init)
    module_file = package_root.joinpath(*parts[:-1], parts[-1] + ".py")
    if module_file.is_file():
        files.append(module_file)
    return files
