"""Run `pulumi preview --refresh --expect-no-changes --diff --json` for a stack, when the CLI is installed."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class PreviewFailed(RuntimeError):
    """The preview itself did not run (CLI missing, login, credentials, config); not drift."""


@dataclass(frozen=True)
class PreviewOutput:
    stdout: str
    returncode: int


def run_preview(stack: str, cwd: Path, timeout: float = 1800) -> PreviewOutput:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise PreviewFailed("the Pulumi CLI is not installed; install it, or pass a saved preview with --from-file")
    command = [
        pulumi,
        "preview",
        "--stack",
        stack,
        "--refresh",
        "--expect-no-changes",
        "--diff",
        "--json",
        "--non-interactive",
    ]
    try:
        completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PreviewFailed(f"pulumi preview did not finish within {timeout:.0f}s") from None
    # --expect-no-changes makes a preview with changes exit non-zero; it still prints the JSON.
    if completed.returncode != 0 and '"steps"' not in completed.stdout and "Event" not in completed.stdout:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-15:])
        raise PreviewFailed(f"pulumi preview failed (exit {completed.returncode}):\n{tail}")
    return PreviewOutput(completed.stdout, completed.returncode)
