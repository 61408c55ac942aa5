"""The command line on misuse: every wrong argument gets a clear answer and exit 2, never a traceback,
a silent wait or a false result; every command documents itself."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.support.cli_process import run, run_in_process, user_environment
from tests.support.repo_copy import REPO_ROOT, copy_specs


def script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = user_environment()
    return subprocess.run(
        [f"scripts/{name}", *args],
        cwd=REPO_ROOT,
        env={**clean, "PYTHONWARNINGS": "ignore", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# 8. Emulator variables left pointing at nothing: fail in seconds, naming the variable.


@pytest.mark.parametrize("command", ["health", "reconcile"])
def test_an_emulator_that_does_not_answer_fails_in_seconds_naming_the_variable(command):
    started = time.monotonic()
    result = run(
        command, "--days", "2", env={"FIRESTORE_EMULATOR_HOST": "127.0.0.1:9", "PUBSUB_EMULATOR_HOST": "127.0.0.1:9"}
    )
    refused(result, "nothing answers at FIRESTORE_EMULATOR_HOST=127.0.0.1:9, PUBSUB_EMULATOR_HOST=127.0.0.1:9")
    assert "unset FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST to use Google Cloud" in result.stderr
    assert time.monotonic() - started < 30  # was: silent for over four minutes, then a RetryError


# 9. The no-project error named an option that did not exist.


def test_the_project_can_be_given_and_its_absence_names_the_real_option():
    result = run_in_process("reconcile", env={"GOOGLE_CLOUD_PROJECT": ""})
    refused(result, "no Google Cloud project: pass --project or set GOOGLE_CLOUD_PROJECT")
    assert "--project PROJECT" in run_in_process("reconcile", "--help").stdout


# 10. Numbers and paths that make no sense.


@pytest.mark.parametrize(
    "args, message",
    [
        (["health", "--days", "0"], "argument --days: 0 must be at least 1"),
        (["health", "--days", "-1"], "argument --days: -1 must be at least 1"),
        (["reconcile", "--days", "many"], "argument --days: 'many' is not a whole number"),
        (["local", "run-day", "--games", "0"], "argument --games: 0 must be at least 1"),
        (["local", "run-day", "--games", "-1"], "argument --games: -1 must be at least 1"),
        (["health", "--date", "2026-02-30"], "'2026-02-30' is not a YYYY-MM-DD date"),
        (["slo", "report", "--days", "0"], "argument --days: 0 must be at least 1"),
    ],
)
def test_a_number_that_checks_nothing_is_refused(args, message):
    refused(run_in_process(*args), message)


def test_a_directory_given_as_the_pipeline(tmp_path):
    refused(
        run_in_process("--pipeline", str(tmp_path), "validate"),
        f"{tmp_path}: <document>: --pipeline names a directory without a pipeline.yaml",
    )
    result = run_in_process("--pipeline", str(REPO_ROOT), "validate")
    assert result.returncode == 0 and f"valid: {REPO_ROOT / 'pipeline.yaml'}" in result.stdout


def test_date_and_days_together_mean_the_days_ending_at_the_date():
    import datetime as dt

    from phase3ops.checks.health import window

    today = dt.date(2026, 11, 29)
    assert window(today, dt.date(2026, 11, 20), 3) == (dt.date(2026, 11, 18), dt.date(2026, 11, 20))
    assert window(today, dt.date(2026, 11, 20), None) == (dt.date(2026, 11, 20), dt.date(2026, 11, 20))
    assert window(today, None, None) == (dt.date(2026, 11, 27), today)
    help_text = run_in_process("reconcile", "--help").stdout
    assert "[--date DATE]" in help_text and "[--days DAYS]" in help_text  # no longer mutually exclusive


# 11. Silent acceptance.


def test_validate_reads_the_pipeline_the_environment_names(tmp_path):
    repo = copy_specs(tmp_path)
    broken = repo / "pipeline.yaml"
    broken.write_text(broken.read_text().replace("min_fraction: 0.6", "min_fraction: 6", 1))
    result = run("validate", "--repo", str(REPO_ROOT), env={"PHASE3OPS_PIPELINE": str(broken)})
    refused(result, f"{broken}:")
    assert "spec.modes[0].min_fraction: 6 is greater than the maximum of 1" in result.stderr


def test_plan_says_it_does_not_take_a_pipeline():
    refused(run("--pipeline", str(REPO_ROOT / "pipeline.yaml"), "plan"), "--pipeline does not apply, use --repo")


def test_validate_refuses_a_stack_that_does_not_exist():
    refused(run("validate", "--stack", "nosuch"), "no stack nosuch: known stacks are dev, prod")


def test_a_mistyped_config_key_is_named_with_the_likely_one(tmp_path):
    repo = copy_specs(tmp_path)
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(
        stack.read_text().replace(
            "phase3-orchestration:serviceMaxInstances:", "phase3-orchestration:serviceMaxInstance:"
        )
    )
    result = run_in_process("plan", "--stack", "dev", "--repo", str(repo))
    refused(
        result,
        "phase3-orchestration:serviceMaxInstance is not declared in Pulumi.yaml; did you mean serviceMaxInstances?",
    )
    assert f"{stack}:" in result.stderr  # the file and line of the typo


# 13. Every command documents itself.


@pytest.mark.parametrize(
    "command",
    [
        ["validate"],
        ["plan"],
        ["health"],
        ["reconcile"],
        ["drift"],
        ["local"],
        ["local", "up"],
        ["local", "down"],
        ["local", "status"],
        ["local", "env"],
        ["local", "run-day"],
    ],
)
def test_every_command_has_a_description_and_its_exit_codes(command):
    result = run_in_process(*command, "--help")
    assert result.returncode == 0
    _usage, _, rest = result.stdout.partition("\n\n")
    description = rest.strip().splitlines()[0]
    assert len(description) > 20, result.stdout
    if command[0] != "local" or len(command) == 1:
        assert "exit codes:" in result.stdout, result.stdout
    if command[0] in ("health", "reconcile"):
        for variable in (
            "GOOGLE_CLOUD_PROJECT",
            "PHASE3OPS_WAREHOUSE",
            "FIRESTORE_EMULATOR_HOST",
            "PUBSUB_EMULATOR_HOST",
            "PHASE3OPS_PIPELINE",
        ):
            assert variable in result.stdout


@pytest.mark.parametrize(
    "wrapper, fragment",
    [
        ("phase3_health_check.sh", "usage: scripts/phase3_health_check.sh [-h]"),
        ("reconcile_phase3_completion.py", "usage: scripts/reconcile_phase3_completion.py [-h]"),
        ("check-deployment-drift.sh", "usage: scripts/check-deployment-drift.sh [-h]"),
    ],
)
def test_the_runbook_wrappers_show_their_own_name(wrapper, fragment):
    result = script(wrapper, "--help")
    assert result.returncode == 0 and result.stdout.startswith(fragment), result.stdout[:200]


def test_the_drift_wrapper_tells_the_truth_about_its_default_stack():
    assert "the stack to preview (default: $DRIFT_STACK, else prod)" in " ".join(
        script("check-deployment-drift.sh", "--help").stdout.split()
    )
    result = script("check-deployment-drift.sh", "--from-file", "/nonexistent.json", env={"DRIFT_STACK": "dev"})
    assert result.returncode == 2 and "Could not check drift for stack dev" in result.stderr


def test_an_slo_report_without_slos_is_refused_rather_than_a_full_budget(tmp_path):
    """A folder without SLO files would report nothing and pass: say where no SLO was found."""
    refused(run_in_process("slo", "report", "--slos", str(tmp_path)), f"no SLOs in {tmp_path} (slos/<name>.yaml)")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.yaml").write_text("kind: SLO\n")
    refused(run_in_process("slo", "report", "--slos", str(broken)), "bad.yaml")
