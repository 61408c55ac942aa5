"""A scratch copy of the repository's specs, for tests that break or extend them."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATHS = (
    "pipeline.yaml",
    "alerts",
    "dashboards",
    "slos",
    "docs",
    "Pulumi.yaml",
    "Pulumi.dev.yaml",
    "Pulumi.prod.yaml",
    "infra",
    "functions",
    "policies",
    "src",
)


def copy_specs(destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    for name in SPEC_PATHS:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, destination / name)
    return destination


def with_built_image(destination: Path, stack: str, image: str) -> Path:
    """A copy of the specs as a deploy checkout has them once the build set the stack's image."""
    copy_specs(destination)
    stack_file = destination / f"Pulumi.{stack}.yaml"
    stack_file.write_text(stack_file.read_text() + f"  phase3-orchestration:analyticsImage: {image}\n")
    return destination
