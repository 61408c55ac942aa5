#!/usr/bin/env python3
"""Rewrite src/phase3ops/monitoring/data/metric-descriptors.json from the Monitoring API.

scripts/refresh_metric_descriptors.py --project <any project with the Monitoring API on>
"""

import os
import sys
from pathlib import Path

VENV_PYTHON = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"

try:
    from phase3ops.monitoring.refresh_descriptors import main
except ImportError:
    # Run with another interpreter: use this checkout's virtual environment.
    if VENV_PYTHON.exists() and Path(sys.executable) != VENV_PYTHON:
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    print("phase3ops is not installed: run the README's set-up command first", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
