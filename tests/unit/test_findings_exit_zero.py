"""The scheduled jobs pass --findings-exit-zero: a finding pages through its metric, only a failure to run fails the execution."""

from __future__ import annotations

import pytest

from phase3ops import cli


@pytest.mark.parametrize("command", ["health", "reconcile", "holds"])
@pytest.mark.parametrize("returned, flag, expected", [(1, True, 0), (1, False, 1), (2, True, 2), (0, True, 0)])
def test_findings_exit_zero_maps_only_findings(monkeypatch, command, returned, flag, expected):
    monkeypatch.setattr(cli, f"_{command}", lambda args: returned)
    argv = [command, "--days", "3"] + (["--findings-exit-zero"] if flag else [])
    assert cli.main(argv) == expected


def test_every_scheduled_check_in_pipeline_yaml_passes_it():
    from phase3ops.spec.pipeline import load_pipeline_spec
    from tests.support.repo_copy import REPO_ROOT

    spec = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
    assert all("--findings-exit-zero" in check.args for check in spec.scheduled_checks)
