"""Deployed vs declared: the comparison of the analytics service with the stack and git.

Every Service and Revision here is a real Cloud Run v2 message (google.cloud.run_v2), with
names in the formats the API gives them: `latest_ready_revision` a full resource name,
`traffic_statuses[].revision` a short one. No cloud and no client: the check only fetches
these messages and hands them to phase3ops.checks.deployed_revisions.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
from google.cloud import run_v2

from phase3ops.checks import deployed_revisions
from phase3ops.checks.deployed_revisions import SOURCE_COMMIT_LABEL, compare
from tests.support.shipped_plans import shipped_plan

SERVICE = "projects/nba-props-prod/locations/us-west2/services/nba-phase3-analytics-processors"
OLD, NEW = "nba-phase3-analytics-processors-00007-abc", "nba-phase3-analytics-processors-00012-xyz"
REGISTRY = "us-west2-docker.pkg.dev/nba-props-prod/phase3/nba-phase3-analytics-processors"
DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMAGE_A, IMAGE_B = f"{REGISTRY}@{DIGEST_A}", f"{REGISTRY}@{DIGEST_B}"
# A history: C1 <- C2 <- C3 on main; X1 on a branch from C1.
C1, C2, C3, X1 = ("1" * 40), ("2" * 40), ("3" * 40), ("9" * 40)
PARENTS = {C1: None, C2: C1, C3: C2, X1: C1}
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
BY_NAME = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION


def is_ancestor(ancestor: str, descendant: str) -> bool | None:
    if ancestor not in PARENTS or descendant not in PARENTS:
        return None  # as `git merge-base --is-ancestor` with a commit the clone lacks
    commit: str | None = descendant
    while commit is not None:
        if commit == ancestor:
            return True
        commit = PARENTS[commit]
    return False


def service(*traffic: run_v2.TrafficTargetStatus, latest: str = NEW) -> run_v2.Service:
    return run_v2.Service(
        name=SERVICE,
        latest_ready_revision=f"{SERVICE}/revisions/{latest}",
        latest_created_revision=f"{SERVICE}/revisions/{latest}",
        traffic_statuses=list(traffic) or [run_v2.TrafficTargetStatus(type_=LATEST, revision=latest, percent=100)],
        template=run_v2.RevisionTemplate(containers=[run_v2.Container(image=IMAGE_A)]),
    )


def revision(name: str = NEW, image: str = IMAGE_A, commit: str | None = C3) -> run_v2.Revision:
    labels = {"managed-by": "pulumi", "component": "analytics"} | ({SOURCE_COMMIT_LABEL: commit} if commit else {})
    return run_v2.Revision(
        name=f"{SERVICE}/revisions/{name}", service=SERVICE, labels=labels, containers=[run_v2.Container(image=image)]
    )


def healthy(**changes):
    arguments: dict[str, Any] = {
        "service": service(),
        "revisions": [revision()],
        "declared_image": IMAGE_A,
        "declared_where": "Pulumi.prod.yaml",
        "git_head": C3,
        "is_ancestor": is_ancestor,
    }
    return compare(**(arguments | changes))


def test_a_healthy_service_passes():
    result = healthy()
    assert result.findings == []
    assert f"revision {NEW} runs commit {C3[:12]}, git HEAD" in result.details


def test_a_latest_target_whose_status_names_no_revision_is_the_latest_ready_one():
    assert deployed_revisions.serving(service(run_v2.TrafficTargetStatus(type_=LATEST, percent=100))) == {NEW: 100}
    assert healthy(service=service(run_v2.TrafficTargetStatus(type_=LATEST, percent=100))).findings == []


def test_traffic_pinned_to_an_old_revision_is_reported():
    # Session 79: a manual `gcloud run services update-traffic --to-revisions OLD=100`.
    pinned = service(run_v2.TrafficTargetStatus(type_=BY_NAME, revision=OLD, percent=100))
    # What the check looked at before: latest ready == latest created, so it passed.
    assert pinned.latest_ready_revision == pinned.latest_created_revision
    assert deployed_revisions.serving(pinned) == {OLD: 100}
    result = healthy(service=pinned, revisions=[revision(OLD, commit=C3)])
    assert result.findings == [f"traffic pinned to old revision {OLD} (100%) while latest is {NEW}"]


def test_a_split_names_only_the_old_revision_and_its_share():
    split = service(
        run_v2.TrafficTargetStatus(type_=LATEST, revision=NEW, percent=90),
        run_v2.TrafficTargetStatus(type_=BY_NAME, revision=OLD, percent=10),
        run_v2.TrafficTargetStatus(
            type_=BY_NAME, revision="nba-phase3-analytics-processors-00003-zzz", percent=0, tag="rollback"
        ),
    )
    assert deployed_revisions.serving(split) == {NEW: 90, OLD: 10}
    result = healthy(service=split, revisions=[revision(), revision(OLD)])
    assert result.findings == [f"traffic pinned to old revision {OLD} (10%) while latest is {NEW}"]


def test_a_pin_by_name_to_the_latest_revision_is_not_a_finding_but_is_said():
    result = healthy(service=service(run_v2.TrafficTargetStatus(type_=BY_NAME, revision=NEW, percent=100)))
    assert result.findings == []
    assert any(detail.startswith(f"traffic pinned by name to {NEW}") for detail in result.details)


def test_a_serving_digest_other_than_the_declared_one_is_reported():
    result = healthy(revisions=[revision(image=IMAGE_B)])
    assert result.findings == [
        f"serving image digest differs from the stack's declared digest: revision {NEW} runs {IMAGE_B}, Pulumi.prod.yaml declares {DIGEST_A}"
    ]


def test_a_tag_is_not_the_declared_digest_and_another_registry_path_with_it_is():
    assert (
        healthy(revisions=[revision(image=f"{REGISTRY}:latest")]).findings[0].startswith("serving image digest differs")
    )
    assert (
        healthy(revisions=[revision(image=f"europe-docker.pkg.dev/mirror/phase3/analytics@{DIGEST_A}")]).findings == []
    )


def test_the_old_revision_a_pin_serves_is_compared_with_the_declared_digest_too():
    pinned = service(run_v2.TrafficTargetStatus(type_=BY_NAME, revision=OLD, percent=100))
    result = healthy(service=pinned, revisions=[revision(OLD, image=IMAGE_B, commit=C1)])
    assert [f.split(":")[0].split(" (")[0] for f in result.findings] == [
        f"traffic pinned to old revision {OLD}",
        "serving image digest differs from the stack's declared digest",
        "git is ahead of what is deployed",
    ]


def test_an_unknown_declared_image_is_said_not_failed():
    result = healthy(
        revisions=[revision(image=IMAGE_B)],
        declared_image=None,
        declared_where="Pulumi.prod.yaml not readable here: no such file",
    )
    assert result.findings == []
    assert "declared image: unknown (Pulumi.prod.yaml not readable here: no such file)" in result.details


def test_a_deployed_commit_behind_git_is_reported_as_git_ahead():
    result = healthy(revisions=[revision(commit=C1)])
    assert result.findings == [
        f"git is ahead of what is deployed (commit {C3[:12]} not deployed): revision {NEW} runs {C1[:12]}"
    ]


def test_a_checkout_behind_the_deployment_is_said_not_failed():
    result = healthy(git_head=C2)
    assert result.findings == []
    assert (
        f"what is deployed is ahead of git (revision {NEW} runs {C3[:12]}; this checkout is at {C2[:12]}: pull)"
        in result.details
    )


def test_a_deployment_from_a_branch_git_does_not_contain_has_diverged():
    result = healthy(revisions=[revision(commit=X1)])
    assert result.findings == [
        f"git and what is deployed have diverged: revision {NEW} runs {X1[:12]}, which is not in the history of git HEAD {C3[:12]}"
    ]


@pytest.mark.parametrize(
    "changes, said",
    [
        (
            {"revisions": [revision(commit=None)]},
            f"revision {NEW}: deployed commit unknown (no {SOURCE_COMMIT_LABEL} label: the stack sets no analyticsImageCommit",
        ),
        ({"git_head": None}, f"revision {NEW} runs commit {C3[:12]}; git commit unknown (no git checkout here)"),
        (
            {"revisions": [revision(commit="8" * 40)]},
            f"revision {NEW} runs {'8' * 12}, a commit this checkout does not have (git fetch)",
        ),
        # A label the infra program would not write (it accepts only a full commit): set by hand.
        (
            {"revisions": [revision(commit=C1[:12])]},
            f"revision {NEW}: deployed commit unknown ({SOURCE_COMMIT_LABEL} label '{C1[:12]}' is not a full git commit)",
        ),
        (
            {"revisions": [revision(commit=C1 + "-dirty")]},
            f"revision {NEW}: deployed commit unknown ({SOURCE_COMMIT_LABEL} label '{C1}-dirty'",
        ),
    ],
    ids=["no-label", "no-git", "commit-not-fetched", "short-commit", "not-a-commit"],
)
def test_an_unknown_commit_is_not_a_failure(changes, said):
    result = healthy(**changes)
    assert result.findings == []
    assert any(detail.startswith(said) for detail in result.details), result.details


# -- the check's git and stack-file side -------------------------------------------


def test_the_check_reads_git_and_the_declared_image_from_the_checkout(tmp_path):
    from phase3ops.checks.deployment_state import declared_image, git_head, git_is_ancestor
    from tests.support.repo_copy import REPO_ROOT, with_built_image

    built = "us-west2-docker.pkg.dev/nba-props-prod/phase3/nba-phase3-analytics-processors@sha256:" + "c" * 64
    image, where = declared_image(with_built_image(tmp_path / "deployed", "prod", built), "prod")
    assert (image, where) == (built, "Pulumi.prod.yaml") and deployed_revisions.image_digest(built)
    image, where = declared_image(REPO_ROOT, "prod")  # committed: the build has not set it, no stand-in leaks out
    assert image is None and "sets no analyticsImage" in where
    assert declared_image(tmp_path, "prod")[0] is None and declared_image(REPO_ROOT, None) == (None, "no stack given")
    assert git_head(tmp_path) is None  # not a checkout (as in the image): unknown, no exception
    first, second = commit_twice(tmp_path)
    assert git_head(tmp_path) == second
    assert (git_is_ancestor(tmp_path, first, second), git_is_ancestor(tmp_path, second, first)) == (True, False)
    assert git_is_ancestor(tmp_path, "8" * 40, second) is None


# -- where the label comes from: the stack's analyticsImageCommit, never the checkout ---------

SERVICE_TYPE, JOB_TYPE = "gcp:cloudrunv2/service:Service", "gcp:cloudrunv2/job:Job"
IMAGE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def plan_with_image_commit(tmp_path, line: str | None):
    """Plan stack dev from a copy (not a git checkout) whose Pulumi.dev.yaml gets `line` under config:."""
    from phase3ops.plan.plan import plan_stack
    from tests.support.repo_copy import copy_specs

    repo = copy_specs(tmp_path / "repo")
    stack = repo / "Pulumi.dev.yaml"
    if line is not None:
        stack.write_text(stack.read_text() + f"  {line}\n")
    return plan_stack(repo, "dev").result


def analytics_labels(result) -> tuple[dict, dict, list[dict]]:
    """(the service's revision template labels, the service's own labels, each job's and its executions' labels)."""
    [service_plan] = result.of_type(SERVICE_TYPE)
    jobs = result.of_type(JOB_TYPE)
    assert jobs
    job_labels = [labels for job in jobs for labels in (job.inputs["labels"], job.inputs["template"]["labels"])]
    return service_plan.inputs["template"]["labels"], service_plan.inputs["labels"], job_labels


def test_the_source_commit_label_comes_from_the_stacks_analytics_image_commit(tmp_path, monkeypatch):
    import subprocess as subprocess_module

    def no_git(args, *rest, **kwargs):
        if args and args[0] == "git":
            raise AssertionError(f"the infra program ran {args}: the label must come from stack config")
        return real_run(args, *rest, **kwargs)

    real_run = subprocess_module.run
    monkeypatch.setattr(subprocess_module, "run", no_git)
    template, service_labels, job_labels = analytics_labels(
        plan_with_image_commit(tmp_path, f"phase3-orchestration:analyticsImageCommit: {IMAGE_COMMIT}")
    )
    assert template[SOURCE_COMMIT_LABEL] == IMAGE_COMMIT
    assert SOURCE_COMMIT_LABEL not in service_labels  # a service label would not say which revision
    assert all(labels[SOURCE_COMMIT_LABEL] == IMAGE_COMMIT for labels in job_labels)  # the jobs run the same image


@pytest.mark.parametrize("line", [None, 'phase3-orchestration:analyticsImageCommit: ""'], ids=["absent", "empty"])
def test_without_an_image_commit_nothing_carries_the_label(tmp_path, line):
    template, service_labels, job_labels = analytics_labels(plan_with_image_commit(tmp_path, line))
    assert SOURCE_COMMIT_LABEL not in template and SOURCE_COMMIT_LABEL not in service_labels
    assert not [labels for labels in job_labels if SOURCE_COMMIT_LABEL in labels]
    # ... and the check says unknown, never fails.
    result = healthy(revisions=[revision(commit=None)])
    assert result.findings == []


def test_the_committed_stacks_leave_the_label_off():

    for stack in ("dev", "prod"):
        template, _, job_labels = analytics_labels(shipped_plan(stack))
        assert SOURCE_COMMIT_LABEL not in template and not [
            labels for labels in job_labels if SOURCE_COMMIT_LABEL in labels
        ]


@pytest.mark.parametrize(
    "value",
    [IMAGE_COMMIT[:12], IMAGE_COMMIT.upper(), IMAGE_COMMIT + "-dirty", "main", IMAGE_COMMIT + "0"],
    ids=["short", "uppercase", "dirty", "branch", "41-digits"],
)
def test_a_malformed_image_commit_is_an_error_naming_the_stack_file_and_key(tmp_path, value):
    from phase3ops.plan.plan import PlanError

    with pytest.raises(PlanError) as raised:
        plan_with_image_commit(tmp_path, f"phase3-orchestration:analyticsImageCommit: '{value}'")
    message = str(raised.value)
    assert (
        "phase3-orchestration:analyticsImageCommit in Pulumi.dev.yaml must be the full commit the image was built from"
        in message
    )
    assert repr(value) in message


def test_a_full_commit_is_a_valid_cloud_run_label_value():
    from infra.settings import GIT_COMMIT, LABEL_VALUE

    # Label values: at most 63 characters, lowercase letters, digits, _ and - (what infra.settings checks team with).
    assert GIT_COMMIT.match(IMAGE_COMMIT) and LABEL_VALUE.match(IMAGE_COMMIT)
    assert re.fullmatch(r"[a-z0-9_-]{1,63}", IMAGE_COMMIT)


def commit_twice(repo):
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    commits = []
    for text in ("one\n", "two\n"):
        (repo / "file").write_text(text)
        git("add", "file")
        git(
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            text.strip(),
        )
        commits.append(git("rev-parse", "HEAD"))
    return commits


# -- the field names, against Google's own API definitions -------------------------

# run_v2 message -> (SDK message, the fields deployed_revisions and the check read)
READ: dict[type[Any], tuple[str, list[str]]] = {
    run_v2.Service: (
        "GoogleCloudRunV2Service",
        ["name", "latest_ready_revision", "latest_created_revision", "traffic_statuses", "template"],
    ),
    run_v2.TrafficTargetStatus: ("GoogleCloudRunV2TrafficTargetStatus", ["type_", "revision", "percent"]),
    run_v2.Revision: ("GoogleCloudRunV2Revision", ["name", "labels", "containers"]),
    run_v2.RevisionTemplate: ("GoogleCloudRunV2RevisionTemplate", ["labels", "containers"]),
    run_v2.Container: ("GoogleCloudRunV2Container", ["image"]),
    run_v2.Job: (
        "GoogleCloudRunV2Job",
        ["labels", "template"],
    ),  # in a scheduled job: its image and source-commit label
}


def test_the_fields_read_are_in_the_installed_client_and_in_the_api_definitions():
    from tests.support.conformance.sdk import SdkUnavailable, json_fields, messages

    for message, (_, fields) in READ.items():
        assert set(fields) <= set(message.meta.fields), message.__name__
    try:
        api = messages("run", "v2")
    except SdkUnavailable as exc:
        pytest.skip(f"no Google Cloud SDK to read the API definitions from: {exc}")
    for _, (sdk_name, fields) in READ.items():
        declared = json_fields(getattr(api, sdk_name))
        for field in fields:
            # proto-plus appends _ to a name Python reserves (type_); JSON is camelCase.
            head, *rest = field.rstrip("_").split("_")
            assert head + "".join(word.title() for word in rest) in declared, (sdk_name, field)
    assert {"TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"} <= {
        value.name for value in api.GoogleCloudRunV2TrafficTargetStatus.TypeValueValuesEnum
    }
