"""Pulumi entry point (Pulumi.yaml: main: infra/). `phase3ops plan` runs this same file under mocks."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Pulumi runs this file as a script from infra/; make `infra.*` importable as a
# package, from this checkout even if another one is already on the path.
if str(REPO_ROOT) in sys.path:
    sys.path.remove(str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT))

from infra.program import deploy  # noqa: E402

deploy(REPO_ROOT)
