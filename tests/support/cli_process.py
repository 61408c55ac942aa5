"""The `phase3ops` command as a user runs it: a process of its own, emulator variables cleared.

`run` is the command offline (a fixed project id); `phase3ops` the command
pointed at a local environment by its flags, as `local` and the checks take them;
`run_in_process` a command that never touches a store (a refusal, --help, `validate`,
`alerts test`, a plan under mocks), without a new interpreter."""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from phase3ops.plan.plan import program_modules
from tests.support.repo_copy import REPO_ROOT


def user_environment(*, keep_project: bool = True) -> dict[str, str]:
    """This process's environment as a user's shell has it: no emulator variables and no PHASE3OPS_
    settings (a test's own, or the shared emulators' address), and without keep_project no project."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_EMULATOR_HOST")
        and not k.startswith("PHASE3OPS_")
        and (keep_project or k != "GOOGLE_CLOUD_PROJECT")
    }


def phase3ops(
    *args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None, timeout: float = 400
) -> subprocess.CompletedProcess:
    clean = user_environment(keep_project=False)
    return subprocess.run(
        [sys.executable, "-m", "phase3ops.cli", *args],
        cwd=cwd,
        env={**clean, "PYTHONWARNINGS": "ignore", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def state_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


def run(
    *args: str, env: dict[str, str] | None = None, cwd=REPO_ROOT, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "phase3ops.cli", *args],
        cwd=cwd,
        env=_offline_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _offline_environment(env: dict[str, str] | None) -> dict[str, str]:
    """What `run` and `run_in_process` give the command: a user's shell, a fixed project id."""
    return {**user_environment(), "PYTHONWARNINGS": "ignore", "GOOGLE_CLOUD_PROJECT": "cli-test", **(env or {})}


def run_in_process(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    """`run` for a command that never touches a store (a refusal of its arguments or its configuration,
    its --help, `validate`, `alerts test`, a plan under mocks): in this process, with the same
    environment and working directory, for a second less a case (the interpreter and Google's client
    libraries importing). What it prints, to stdout and stderr, and its exit code come back as `run`
    returns them. Each command keeps one case that runs it as a process of its own."""
    from phase3ops import cli

    saved, stdout, stderr = dict(os.environ), io.StringIO(), io.StringIO()
    # A plan puts its checkout first on sys.path and leaves its program's modules loaded: not for the next test.
    saved_path, saved_program = list(sys.path), program_modules()
    os.environ.clear()
    os.environ.update(_offline_environment(env))
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = cli.main(list(args))
            except SystemExit as exit_:  # as the interpreter ends: None is 0, a message goes to stderr as 1
                if exit_.code is None or isinstance(exit_.code, int):
                    code = exit_.code or 0
                else:
                    print(exit_.code, file=sys.stderr)
                    code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sys.path[:] = saved_path
        for name in set(program_modules()) - set(saved_program):
            del sys.modules[name]
        sys.modules.update(saved_program)
    return subprocess.CompletedProcess(["phase3ops", *args], code, stdout.getvalue(), stderr.getvalue())


def accepted(run_dir: Path, date: str) -> dict[str, int]:
    ledger = run_dir / "data" / "phase4-accepted.jsonl"
    entries = [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []
    return dict(collections.Counter(e["source_table"] for e in entries if e["game_date"] == date))


def all_pids(run_dir: Path) -> list[int]:
    return [c["pid"] for c in state_of(run_dir)["components"].values()]
