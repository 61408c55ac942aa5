#!/usr/bin/env python3
"""Runbook: reconcile Phase 3 completion tracking with the warehouse.

    scripts/reconcile_phase3_completion.py [--days N] [--date YYYY-MM-DD] [--fix] [--local] [--json]

Dry run unless --fix. Exit 0 consistent (or repaired), 1 issues found or a
fix failed, 2 could not check.
"""

import os
import sys
from pathlib import Path

VENV_PYTHON = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"

try:
    from phase3ops.cli import main
except ImportError:
    # Run with another interpreter: use this checkout's virtual environment.
    if VENV_PYTHON.exists() and Path(sys.executable) != VENV_PYTHON:
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    print("phase3ops is not installed: run the README's set-up command first", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    invoked = os.path.relpath(sys.argv[0])  # the usage shows the name the runbook gives
    sys.exit(main(["reconcile", *sys.argv[1:]], prog=invoked if not invoked.startswith("..") else sys.argv[0]))
