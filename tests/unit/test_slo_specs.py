"""slos/: the shipped SLOs are valid, and each kind of bad SLO spec fails at its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from phase3ops.slos.lints import single_bad_event_burn
from phase3ops.slos.specs import load_slo_specs
from phase3ops.validate import validate
from tests.support.repo_copy import REPO_ROOT, copy_specs

ON_TIME = "slos/phase4-trigger-on-time.yaml"
ANALYTICS = "slos/analytics-push-success.yaml"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return copy_specs(tmp_path_factory.mktemp("specs"))


@pytest.fixture
def repo(pristine, tmp_path) -> Path:
    # Only slos/ and the docs change in these tests: link the rest of the copy.
    for entry in pristine.iterdir():
        if entry.name in ("slos", "docs"):
            import shutil

            shutil.copytree(entry, tmp_path / entry.name)
        else:
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


def edit(repo: Path, file: str, old: str, new: str) -> None:
    path = repo / file
    text = path.read_text()
    assert text.count(old) == 1, (file, old)
    path.write_text(text.replace(old, new))


def line_of(repo: Path, file: str, fragment: str) -> int:
    return next(n for n, line in enumerate((repo / file).read_text().splitlines(), 1) if fragment in line)


def test_the_shipped_slos_are_valid_for_every_stack():
    report = validate(REPO_ROOT)
    assert report.ok, report.problems
    assert {stack: len(specs.slos) for stack, specs in report.slos.items()} == {"": 4, "dev": 4, "prod": 4}
    assert report.slos["dev"].slo("analytics-push-success").alert_policy_names == ["slow-burn"]
    assert report.slos["prod"].slo("analytics-push-success").alert_policy_names == ["fast-burn", "slow-burn"]


CASES = [
    # (file, old, new, the line holding this fragment after the edit, what the message says)
    (
        ON_TIME,
        "metric: log:phase3_phase4_triggers_on_time",
        "metric: log:phase3_phase4_trigger_on_time",
        "log:phase3_phase4_trigger_on_time",
        "is not an SLI event metric (did you mean log:phase3_phase4_triggers_on_time?",
    ),
    (ON_TIME, "target: 0.95", "target: 1.0", "target: 1.0", "1.0 is greater than or equal to the maximum of 1"),
    (ON_TIME, "target: 0.95", "target: 0.99995", "displayName: 95 %", "Cloud Monitoring takes at most 0.9999"),
    (ON_TIME, "duration: 28d", "duration: 31d", "duration: 31d", "at most 30 days"),
    (
        ON_TIME,
        "  alertPolicies:\n    - alertPolicyRef: game-day-burn\n",
        "",
        "spec:",
        "'alertPolicies' is a required property",
    ),
    (
        ON_TIME,
        "alertPolicyRef: game-day-burn",
        "alertPolicyRef: game-day-burns",
        "alertPolicyRef: game-day-burns",
        "no alert policy 'game-day-burns' in slos/alert-policies/",
    ),
    (
        ON_TIME,
        "alertPolicyRef: game-day-burn",
        "alertPolicyRef: fast-burn",
        "alertPolicyRef: fast-burn",
        "fast-burn pages, and at 1 events a day one bad event in its 1h window is a burn rate of 20.0",
    ),
    (
        ON_TIME,
        "runbook.md#slo-phase4-trigger-on-time",
        "runbook.md#slo-trigger-on-time",
        "phase3ops/runbook",
        "docs/runbook.md has no section #slo-trigger-on-time",
    ),
    (
        ON_TIME,
        "metric: log:phase3_phase4_triggers\n",
        'metric: log:phase3_phase4_triggers\n              filter: metric.labels.x="1"\n',
        "filter: metric.labels.x",
        "a filter on top would count events the SLO report cannot tell apart",
    ),
    (
        ON_TIME,
        'phase3ops/events-per-day: "1"',
        'phase3ops/events-per-day: "daily"',
        "phase3ops/events-per-day",
        "phase3ops/events-per-day 'daily' is not a positive number",
    ),
    (
        ON_TIME,
        '    phase3ops/events-per-day: "1"\n',
        "",
        "annotations:",
        "metadata.annotations has no phase3ops/events-per-day",
    ),
    (
        "slos/alert-policies/slow-burn.yaml",
        "targetRef: phase3-oncall",
        "targetRef: phase3-pager",
        "targetRef: phase3-pager",
        "no channel 'phase3-pager' in alerts/channels.yaml",
    ),
    (
        "slos/alert-policies/slow-burn.yaml",
        "lookbackWindow: 6h",
        "lookbackWindow: 5m",
        "lookbackWindow: 5m",
        "the short window is a twelfth of the lookback",
    ),
    (
        "slos/alert-policies/game-day-burn.yaml",
        "lookbackWindow: 3d",
        "lookbackWindow: 4w",
        "alertPolicyRef: game-day-burn",
        "looks back 4w, as long as the SLO's window or longer",
    ),
]


@pytest.mark.parametrize("file, old, new, fragment, message", CASES, ids=[c[-1][:40] for c in CASES])
def test_a_bad_slo_spec_fails_at_its_file_and_line(repo, file, old, new, fragment, message):
    edit(repo, file, old, new)
    problems = validate(repo, stacks=[]).problems
    where = ON_TIME if fragment == "alertPolicyRef: game-day-burn" else file  # the SLO that uses the policy
    located = [p for p in problems if message in p.message and p.file.endswith(where)]
    assert located, [str(p) for p in problems]
    assert located[0].line == line_of(repo, where, fragment), str(located[0])


def test_a_stack_override_that_breaks_an_slo_is_reported_in_the_overrides_file(repo):
    edit(
        repo,
        "slos/stacks/dev.yaml",
        "    alertPolicies:\n      - alertPolicyRef: slow-burn\n",
        "    objectives:\n      - target: 0.99995\n",
    )
    problems = [p for p in validate(repo, stacks=["dev"]).problems if "0.9999" in p.message]
    assert [(p.file.endswith("slos/stacks/dev.yaml"), p.line, p.message.endswith("[stack dev]")) for p in problems] == [
        (True, line_of(repo, "slos/stacks/dev.yaml", "target: 0.99995"), True)
    ]


def test_an_override_of_no_slo_and_an_unused_policy_are_reported(repo):
    edit(repo, "slos/stacks/dev.yaml", "  analytics-push-success:", "  analytics-push-succes:")
    edit(repo, ANALYTICS, "    - alertPolicyRef: fast-burn\n", "")
    messages = [p.message for p in validate(repo).problems]
    assert any("overrides 'analytics-push-succes', which no SLO file defines" in m for m in messages), messages
    assert any("alert policy 'fast-burn' is used by no SLO" in m for m in messages), messages


def test_every_problem_of_every_slo_file_is_reported_at_once(repo):
    edit(repo, ON_TIME, "target: 0.95", "target: 1.5")
    edit(repo, ANALYTICS, "duration: 28d", "duration: 28 days")
    files = {Path(p.file).name for p in validate(repo, stacks=[]).problems}
    assert {"phase4-trigger-on-time.yaml", "analytics-push-success.yaml"} <= files


def test_one_bad_event_pages_only_where_events_are_too_few():
    # 40 events a day: an hour holds 1.67; one failure is 60 % of them, a burn rate of 12 against 95 %.
    assert single_bad_event_burn(40, 3600, 0.95) == pytest.approx((1 / (40 / 24)) / 0.05)
    assert single_bad_event_burn(1, 3600, 0.95) == pytest.approx(20)  # at least one event in any window
    specs = load_slo_specs(REPO_ROOT / "slos")
    fast = specs.alert_policies["fast-burn"]
    assert not fast.fires(single_bad_event_burn(40, fast.long_window_seconds, 0.95), 12)
    assert fast.fires(single_bad_event_burn(1, fast.long_window_seconds, 0.95), 20)
