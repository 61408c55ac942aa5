"""Pulumi entry point (Pulumi.yaml: main: infra/). `phase3ops plan` runs this same file under mocks."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Pulumi runs this file as a script from infra/; make `infra.*` importable as a package.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from infra.program import deploy  # noqa: E402

deploy(REPO_ROOT)
