"""Drift: real Pulumi outputs and outputs derived from them, classified; the wrapper's lines and exit codes."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from phase3ops.drift.allowlist import AllowedDifference, apply_allowlist, load_allowlist
from phase3ops.drift.changes import KNOWN, OUTSIDE, UNATTRIBUTED, UNDEPLOYED, parse_preview
from phase3ops.drift.report import as_markdown, as_text
from tests.support.repo_copy import REPO_ROOT

# Real Pulumi CLI outputs, copied unchanged with their sources (see SOURCES.md there).
REFERENCE = REPO_ROOT / "tests" / "fixtures" / "pulumi-reference" / "pulumi-preview-json"
REAL_OUTPUTS = sorted(REFERENCE.glob("*.json*"))
assert len(REAL_OUTPUTS) == 6, f"the reference outputs are missing from {REFERENCE}"
STRATIFY = REFERENCE / "aws-s3-lambda_preview-show-sames_update.stratify.json"
ADOPTER = REFERENCE / "aws-drift_preview_update-replace-nested-detaileddiff.drift-adopter.json"
SMALL = REFERENCE / "random-tls-command_preview_create-update-replace-delete.drift-adopter.json"
CHANGED = REFERENCE / "dynamic-random-command_refresh-preview-only-streamed_drift-changed.sluiceway.jsonl"
GONE = REFERENCE / "local-random-command_refresh-preview-only-streamed_drift-gone.sluiceway.jsonl"


def kinds(result):
    return sorted((c.name, c.kind) for c in result.changes)


@pytest.mark.parametrize("path", REAL_OUTPUTS, ids=lambda p: p.name[:40])
def test_every_real_output_with_changes_is_reported_as_drift(path):
    result = parse_preview(path.read_text())
    assert result.drifted, "a preview with changes must never read as no drift"


def test_a_program_code_change_is_undeployed_not_drift():
    result = parse_preview(STRATIFY.read_text())
    assert kinds(result) == [("docsHandler", UNDEPLOYED)]
    assert result.changes[0].properties == ["code"]


def test_streamed_refresh_events_are_changes_outside_pulumi():
    changed = parse_preview(CHANGED.read_text())
    assert [(c.name, c.kind, c.op, c.properties) for c in changed.changes] == [("note", OUTSIDE, "update", ["text"])]
    gone = parse_preview(GONE.read_text())
    assert [(c.name, c.kind, c.op) for c in gone.changes] == [("notes", OUTSIDE, "delete")]


def test_null_detailed_diff_falls_back_to_diff_reasons_including_output_only_ones():
    result = parse_preview(SMALL.read_text())
    tls = next(c for c in result.changes if c.name == "tls-key-0")
    assert tls.op == "replace" and "publicKeyPem" in tls.properties and "algorithm" in tls.properties
    assert {c.op for c in result.changes} == {"create", "update", "replace", "delete"}


def derived_refresh_digest() -> dict:
    """A `preview --refresh` digest derived from the stratify sample: the refresh read a changed
    memory size for the function, then the preview wants it back."""
    document = json.loads(STRATIFY.read_text())
    step = next(s for s in document["steps"] if s["op"] == "update")
    refresh = copy.deepcopy(step)
    refresh["op"] = "update"
    refresh["detailedDiff"] = {"memorySize": {"kind": "update", "inputDiff": False}}
    refresh["oldState"]["outputs"]["memorySize"] = 128
    refresh["newState"].setdefault("outputs", {})["memorySize"] = 512
    document["steps"].insert(0, refresh)
    return document


def test_a_resource_the_refresh_found_changed_is_outside_pulumi():
    result = parse_preview(json.dumps(derived_refresh_digest()))
    assert kinds(result) == [("docsHandler", OUTSIDE)]


def test_refresh_steps_whose_outputs_changed_are_reported_even_without_a_preview_step():
    document = {
        "steps": [
            {
                "op": "refresh",
                "urn": "urn:pulumi:prod::p::gcp:pubsub/topic:Topic::t",
                "oldState": {"outputs": {"labels": {"a": "1"}}},
                "newState": {"outputs": {"labels": {"a": "2"}}},
            }
        ],
        "changeSummary": {"same": 1},
    }
    result = parse_preview(json.dumps(document))
    assert [(c.name, c.kind, c.properties) for c in result.changes] == [("t", OUTSIDE, ["labels"])]


def test_a_change_only_the_summary_counts_is_unattributed_drift():
    result = parse_preview(json.dumps({"steps": [], "changeSummary": {"same": 3, "update": 1}}))
    assert [(c.op, c.kind) for c in result.changes] == [("update", UNATTRIBUTED)] and result.drifted


def test_inputs_equal_to_the_deployed_ones_mean_the_cloud_moved():
    document = json.loads(STRATIFY.read_text())
    step = next(s for s in document["steps"] if s["op"] == "update")
    step["newState"]["inputs"]["code"] = step["oldState"]["inputs"]["code"]
    assert kinds(parse_preview(json.dumps(document))) == [("docsHandler", OUTSIDE)]


def test_a_new_function_source_hash_is_undeployed_code():
    urn = "urn:pulumi:prod::phase3-orchestration::phase3:infra:OrchestratorFunction$gcp:storage/bucketObject:BucketObject::src"
    step = {
        "op": "replace",
        "urn": urn,
        "diffReasons": ["name"],
        "detailedDiff": None,
        "oldState": {
            "type": "gcp:storage/bucketObject:BucketObject",
            "inputs": {"name": "fn-aaaaaaaaaaaa.zip"},
            "outputs": {},
        },
        "newState": {
            "type": "gcp:storage/bucketObject:BucketObject",
            "inputs": {"name": "fn-bbbbbbbbbbbb.zip"},
            "outputs": {},
        },
    }
    result = parse_preview(json.dumps({"steps": [step], "changeSummary": {"replace": 1}}))
    assert [(c.type, c.kind, c.properties) for c in result.changes] == [
        ("gcp:storage/bucketObject:BucketObject", UNDEPLOYED, ["name"])
    ]


def test_the_allowlist_turns_known_differences_into_known():
    document = {
        "steps": [
            {
                "op": "refresh",
                "urn": "urn:pulumi:prod::p::gcp:cloudrunv2/service:Service::svc",
                "oldState": {"outputs": {"client": "gcloud"}},
                "newState": {"outputs": {"client": "console"}},
            }
        ]
    }
    result = parse_preview(json.dumps(document))
    apply_allowlist(result.changes, load_allowlist(REPO_ROOT / "infra/drift-allowlist.yaml"), "prod")
    assert [(c.kind, c.allow_reason[:6]) for c in result.changes] == [(KNOWN, "gcloud")] and not result.drifted
    mixed = {
        "steps": [
            {
                "op": "refresh",
                "urn": "urn:pulumi:prod::p::gcp:cloudrunv2/service:Service::svc",
                "oldState": {"outputs": {"client": "a", "ingress": "x"}},
                "newState": {"outputs": {"client": "b", "ingress": "y"}},
            }
        ]
    }
    other = parse_preview(json.dumps(mixed))
    apply_allowlist(
        other.changes,
        [AllowedDifference("gcp:cloudrunv2/service:Service", "*", ("client",), "stamped by gcloud")],
        "prod",
    )
    assert other.changes[0].kind == OUTSIDE  # one unknown property keeps it drift


def test_reports():
    result = parse_preview(CHANGED.read_text())
    text = as_text(result, "prod")
    assert text.splitlines()[0] == "DRIFT in stack prod: 1 changed outside Pulumi"
    assert "\x1b[" not in text
    markdown = as_markdown(result, "prod")
    assert markdown.startswith("## DRIFT in stack prod")
    assert "| changed outside Pulumi | `note` | `pulumi-nodejs:dynamic:Resource` | update | `text` |" in markdown


def wrapper(*args, env=None):
    import os

    return subprocess.run(
        [str(REPO_ROOT / "scripts/check-deployment-drift.sh"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_the_drift_wrapper_lines_and_exit_codes(tmp_path):
    drifted = wrapper("--stack", "prod", "--from-file", str(CHANGED))
    assert drifted.returncode == 1 and drifted.stdout.splitlines()[0] == "DRIFT in stack prod: 1 changed outside Pulumi"
    clean = tmp_path / "clean.json"
    clean.write_text(
        json.dumps(
            {
                "steps": [{"op": "same", "urn": "urn:pulumi:prod::p::pulumi:pulumi:Stack::p-prod"}],
                "changeSummary": {"same": 1},
            }
        )
    )
    result = wrapper("--from-file", str(clean), env={"DRIFT_STACK": "dev"})
    assert result.returncode == 0 and result.stdout.strip() == "No drift in stack dev"
    failed = tmp_path / "failed.txt"
    failed.write_text("error: getting stack configuration: no credentials\n")
    result = wrapper("--stack", "prod", "--from-file", str(failed))
    assert result.returncode == 2 and "Could not check drift for stack prod" in result.stderr


def test_without_the_pulumi_cli_the_check_says_it_could_not_run():
    import os

    result = wrapper("--stack", "prod", env={"PATH": str(Path(os.__file__).parent) + ":/usr/bin:/bin"})
    assert result.returncode == 2 and "Pulumi CLI is not installed" in result.stderr


def test_the_workflows_validate_against_the_github_workflow_schema():
    import shutil
    import sys

    check = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    result = subprocess.run(
        [
            check,
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, sorted((REPO_ROOT / ".github/workflows").glob("*.yml"))),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    drift = (REPO_ROOT / ".github/workflows/drift.yml").read_text()
    assert (
        "--refresh --expect-no-changes --diff --json" in drift
        and "schedule:" in drift
        and "workflow_dispatch:" in drift
    )
    ci = (REPO_ROOT / ".github/workflows/ci.yml").read_text()
    assert "bash .ci/run" in ci and "phase3ops validate" in ci and ci.count("--policies") == 2
