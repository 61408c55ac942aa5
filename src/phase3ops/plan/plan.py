"""Plan a stack offline: its config, the real program under mocks, the resource graph."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from phase3ops.plan.mocks import PlanMocks
from phase3ops.plan.preconditions import Precondition, preconditions
from phase3ops.plan.runner import PlanResult, program_from_main, run_program
from phase3ops.plan.stack_config import StackConfig, load_stack_config
from phase3ops.spec.pipeline import load_pipeline_spec


class PlanError(RuntimeError):
    """The program could not be planned; the message says why (a config key, an unmocked invoke)."""


@dataclass
class StackPlan:
    config: StackConfig
    result: PlanResult
    preconditions: list[Precondition]


def plan_stack(repo_root: Path, stack: str) -> StackPlan:
    config = load_stack_config(repo_root, stack)
    project = config.values.get("gcp:project")
    if not project:
        raise PlanError(f"gcp:project is not set in Pulumi.{stack}.yaml (pulumi config set gcp:project <project id>)")
    _forget_program_modules()
    try:
        result = run_program(
            program_from_main(config.main), PlanMocks(project), config.project, stack, config.values, config.secret_keys
        )
    except Exception as exc:
        raise PlanError(f"planning stack {stack} failed: {type(exc).__name__}: {exc}") from exc
    return StackPlan(config, result, preconditions(config, load_pipeline_spec(repo_root / "pipeline.yaml")))


def _forget_program_modules() -> None:
    """Import the program's own files on every plan (a test may plan a modified copy)."""
    for name in program_modules():
        del sys.modules[name]


def program_modules() -> dict[str, ModuleType]:
    """The Pulumi program's modules (the `infra` package) loaded in this process."""
    return {name: module for name, module in sys.modules.items() if name == "infra" or name.startswith("infra.")}
