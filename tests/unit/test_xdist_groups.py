"""The tests of one `xdist_group` run on one worker: the suite's shared module fixtures rely on it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.repo_copy import REPO_ROOT

# A pytest run of its own (three interpreters), slow on a loaded machine: unsorted, it once came last and
# was the suite's last 15 s on one worker.
pytestmark = pytest.mark.minutes_long(seconds=5)

GROUPED = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("one-environment")


@pytest.mark.parametrize("n", range(8))
def test_records_its_worker(n):
    with open(os.path.join(os.environ["WORKERS_SEEN"], f"worker-{n}"), "w") as seen:
        seen.write(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_a_groups_tests_share_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    seen = tmp_path / "seen"
    seen.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "xdist",
            "-p",
            "tests.support.xdist_groups",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "test_grouped.py",
        ],
        cwd=tmp_path,
        # Only the plugins under test: the installed ones (hypothesis, timeout, ...) took half its time.
        env={
            "PYTHONPATH": str(REPO_ROOT),
            "PATH": "/usr/bin:/bin",
            "WORKERS_SEEN": str(seen),
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    workers = {path.read_text() for path in seen.glob("worker-*")}
    assert len(list(seen.glob("worker-*"))) == 8
    assert len(workers) == 1, workers
