"""`local up` and the user's pipeline.yaml: a mistake starts nothing, an edit restarts what reads the spec,
a spec no service can run stops part-way and says what it left running."""

from __future__ import annotations

import pytest

from tests.support.cli_process import all_pids, phase3ops, state_of
from tests.support.processes import alive
from tests.support.repo_copy import copy_specs

pytestmark = [pytest.mark.emulators, pytest.mark.minutes_long(seconds=55)]


def test_a_broken_spec_starts_nothing_and_an_edited_one_is_applied(tmp_path):
    repo = copy_specs(tmp_path / "repo")
    run_dir = tmp_path / "local"
    spec = repo / "pipeline.yaml"
    good = spec.read_text()
    spec.write_text(good.replace("min_fraction: 0.6", "min_fraction: 6", 1))
    line = next(n for n, text in enumerate(spec.read_text().splitlines(), 1) if "min_fraction: 6" in text)

    broken = phase3ops("local", "up", "--repo", str(repo), "--run-dir", str(run_dir))
    assert broken.returncode == 2
    assert (
        f"{spec}:{line}: spec.modes[0].min_fraction: 6 is greater than the maximum of 1" in broken.stderr
    )  # the user's file and line
    assert not (run_dir / "state.json").exists() or not state_of(run_dir)["components"]  # nothing was started

    spec.write_text(good)
    try:
        assert phase3ops("local", "up", "--repo", str(repo), "--run-dir", str(run_dir)).returncode == 0
        before = {k: c["pid"] for k, c in state_of(run_dir)["components"].items()}
        spec.write_text(good.replace("max_wait_seconds: 120", "max_wait_seconds: 90"))
        edited = phase3ops("local", "up", "--repo", str(repo), "--run-dir", str(run_dir))
        assert edited.returncode == 0 and "changed: regenerating" in edited.stdout, edited.stdout
        after = {k: c["pid"] for k, c in state_of(run_dir)["components"].items()}
        assert {k for k in before if before[k] != after[k]} == {
            "analytics",
            "orchestrator",
            "receipts",
        }  # what reads the spec
        assert "max_wait_seconds: 90" in (run_dir / "pipeline.yaml").read_text()

        # A spec the schema accepts but a service cannot run: `up` stops part-way and says what it left running.
        unimplemented = good.replace("  processors:\n", "  processors:\n" + _unimplemented_processor(), 1)
        spec.write_text(unimplemented)
        partial = phase3ops("local", "up", "--repo", str(repo), "--run-dir", str(run_dir))
        assert partial.returncode == 2, partial.stdout + partial.stderr
        assert "local up failed:" in partial.stderr and "left running: firestore emulator" in partial.stderr
        assert "`phase3ops local down` stops them" in partial.stderr
    finally:
        pids = all_pids(run_dir) if (run_dir / "state.json").exists() else []
        down = phase3ops("local", "down", "--run-dir", str(run_dir))
    assert down.returncode == 0
    assert not [pid for pid in pids if alive(pid)]


def _unimplemented_processor() -> str:
    """A sixth processor the spec allows and no module implements: the analytics service cannot start."""
    return (
        "    - name: team_pace_summary\n"
        "      output_table: team_pace_summary\n"
        "      primary_key: [game_date, team_abbr]\n"
        "      class_name: TeamPaceSummaryProcessor\n"
        "      entities: teams\n"
        "      columns:\n"
        "        game_date: DATE\n"
        "        team_abbr: STRING\n"
        "        processed_at: TIMESTAMP\n"
    )
