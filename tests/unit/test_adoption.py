"""Adopting what the replaced pipeline already created under the names this stack uses.

A first `pulumi up` where a topic, the service, the function or the dataset
already exists fails with "already exists". `phase3ops plan --adopt` prints,
for each planned resource of those kinds, a check and the `pulumi import`
that adopts it as the program declares it (same name, same parent).
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from phase3ops.plan.adoption import adoptions
from tests.support.cli_process import run_in_process
from tests.support.repo_copy import REPO_ROOT
from tests.support.shipped_plans import shipped_plan

REPLACED_PIPELINE_NAMES = {
    "nba-phase3-trigger",
    "nba-phase3-analytics-complete",
    "nba-phase4-trigger",
    "nba-phase3-analytics-processors",
    "phase3-to-phase4-orchestrator",
    "nba_analytics",
}


@pytest.fixture(scope="module")
def prod():
    return shipped_plan("prod")


def test_every_resource_a_name_may_already_hold_has_an_import_as_the_program_declares_it(prod):
    found = adoptions(prod, "nba-props-prod")
    names = {a.resource.inputs.get("name") or a.resource.inputs.get("datasetId") for a in found}
    assert names >= REPLACED_PIPELINE_NAMES
    kinds = {a.resource.type for a in found}
    assert kinds == {
        "gcp:pubsub/topic:Topic",
        "gcp:pubsub/subscription:Subscription",
        "gcp:cloudfunctionsv2/function:Function",
        "gcp:cloudrunv2/service:Service",
        "gcp:cloudrunv2/job:Job",
        "gcp:bigquery/dataset:Dataset",
        "gcp:artifactregistry/repository:Repository",
    }
    for adoption in found:
        words = shlex.split(adoption.import_command)
        assert words[:4] == ["pulumi", "import", adoption.resource.type, adoption.resource.name]
        if adoption.resource.parent:  # imported at the root it would not be the resource the program declares
            assert words[words.index("--parent") + 1] == adoption.resource.parent


@pytest.mark.parametrize(
    ("type_token", "pattern"),
    [
        ("gcp:pubsub/topic:Topic", r"projects/nba-props-prod/topics/[\w-]+"),
        ("gcp:pubsub/subscription:Subscription", r"projects/nba-props-prod/subscriptions/[\w-]+"),
        ("gcp:cloudfunctionsv2/function:Function", r"projects/nba-props-prod/locations/us-west2/functions/[\w-]+"),
        ("gcp:cloudrunv2/service:Service", r"projects/nba-props-prod/locations/us-west2/services/[\w-]+"),
        ("gcp:cloudrunv2/job:Job", r"projects/nba-props-prod/locations/us-west2/jobs/[\w-]+"),
        ("gcp:bigquery/dataset:Dataset", r"projects/nba-props-prod/datasets/\w+"),
        (
            "gcp:artifactregistry/repository:Repository",
            r"projects/nba-props-prod/locations/us-west2/repositories/phase3",
        ),
    ],
)
def test_import_ids_take_the_form_pulumi_gcp_documents(prod, type_token, pattern):
    ids = [shlex.split(a.import_command)[4] for a in adoptions(prod, "nba-props-prod") if a.resource.type == type_token]
    assert ids and all(re.fullmatch(pattern, i) for i in ids), ids


def test_the_dataset_keeps_its_protection_when_adopted(prod):
    [dataset] = [a for a in adoptions(prod, "nba-props-prod") if a.resource.type == "gcp:bigquery/dataset:Dataset"]
    assert dataset.resource.protect and "--protect" in shlex.split(dataset.import_command)


def test_the_script_prints_an_import_only_for_what_exists(prod, tmp_path):
    """Run as the user would (`| sh`) with gcloud and bq stand-ins: one topic and the dataset exist."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, exists in (("gcloud", "nba-phase3-analytics-complete"), ("bq", "nba-props-prod:nba_analytics")):
        (bin_dir / tool).write_text(f'#!/bin/sh\ncase "$*" in *" {exists} "*|*" {exists}") exit 0;; esac\nexit 1\n')
        (bin_dir / tool).chmod(0o755)
    planned = run_in_process("plan", "--stack", "prod", "--repo", str(REPO_ROOT), "--adopt")
    assert planned.returncode == 0, planned.stderr
    script = planned.stdout
    printed = subprocess.run(
        ["sh"], input=script, capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, check=False
    ).stdout.splitlines()
    assert sorted(line.split()[4] for line in printed) == [
        "projects/nba-props-prod/datasets/nba_analytics",
        "projects/nba-props-prod/topics/nba-phase3-analytics-complete",
    ]
