"""`phase3ops trigger | skip | retrigger` on misuse: every wrong argument is named, exit 2, nothing reached.

No emulator runs here and none is pointed at: a command that got past its
arguments would fail on the project instead, so these also show that the
arguments are checked before any store is touched.
"""

from __future__ import annotations

import pytest

from tests.support.cli_process import run, run_in_process

VALID = {
    "trigger": ["trigger", "2026-11-28", "--force"],
    "skip": ["skip", "2026-11-28", "player_game_summary"],
    "retrigger": ["retrigger", "2026-11-28"],
}


def refused(result, fragment: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", sorted(VALID))
@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda a: [a[0], "2026-02-30", *a[2:], "--reason", "r"], "argument DATE: '2026-02-30' is not a calendar date"),
        (
            lambda a: [a[0], "28/11/2026", *a[2:], "--reason", "r"],
            "argument DATE: '28/11/2026' is not a YYYY-MM-DD date",
        ),
        (lambda a: [*a, "--reason", "   "], "argument --reason: must not be empty"),
        (lambda a: [*a, "--reason", "x" * 501], "argument --reason: 501 characters; at most 500"),
        (lambda a: a, "the following arguments are required: --reason"),
        (lambda a: [*a, "--reason", "r", "--operator", ""], "argument --operator: must not be empty"),
    ],
)
def test_a_bad_argument_is_named_and_exits_2(command, change, fragment):
    refused(run_in_process(*change(VALID[command])), fragment)


def test_without_an_operator_the_command_says_where_it_looks():
    result = run(*VALID["skip"], "--reason", "r", env={"USER": "", "CLOUDSDK_CORE_ACCOUNT": ""})
    refused(result, "argument --operator: no operator: pass --operator or set $CLOUDSDK_CORE_ACCOUNT or $USER")


def test_an_unknown_processor_is_named_with_the_known_ones():
    refused(
        run("skip", "2026-11-28", "box_scores", "--reason", "r", "--operator", "me"),
        "argument PROCESSOR: unknown processor 'box_scores': one of player_game_summary, team_offense_game_summary",
    )


def test_trigger_needs_force_and_retrigger_a_bounded_cascade():
    refused(run("trigger", "2026-11-28", "--reason", "r", "--operator", "me"), "argument --force: required")
    refused(
        run("retrigger", "2026-11-28", "--cascade", "31", "--reason", "r"),
        "argument --cascade: 31 must be between 0 and 30",
    )
    refused(
        run("retrigger", "2026-11-28", "--cascade", "-1", "--reason", "r"),
        "argument --cascade: -1 must be between 0 and 30",
    )


@pytest.mark.parametrize("command", sorted(VALID))
def test_every_override_command_documents_itself(command):
    result = run(command, "--help")
    assert result.returncode == 0
    description = result.stdout.partition("\n\n")[2].strip().splitlines()[0]
    assert len(description) > 40, result.stdout
    for text in (
        "exit codes: 0 done, 1 refused or not finished",
        "CLOUDSDK_CORE_ACCOUNT",
        "phase3_overrides",
        "--reason REASON",
        "GOOGLE_CLOUD_PROJECT",
        "FIRESTORE_EMULATOR_HOST",
    ):
        assert text in result.stdout, text
