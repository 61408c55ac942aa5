"""Deployment state (cloud only): the functions are ACTIVE, the service's latest revision is ready
and serves all traffic, from the image the stack declares, built from a commit git holds (the
revision's source-commit label, from the stack's analyticsImageCommit; see deployed_revisions),
and every alert policy from alerts/ exists, enabled exactly when the stack's overrides say so."""

from __future__ import annotations

import os
import subprocess
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from phase3ops.alerts.specs import load_alert_specs
from phase3ops.checks import deployed_revisions
from phase3ops.checks.context import STACK_ENV, CheckContext
from phase3ops.checks.results import CheckResult, Status
from phase3ops.cloud import SettingError
from phase3ops.plan.stack_config import load_stack_config
from phase3ops.spec.documents import SpecError

if TYPE_CHECKING:
    from google.cloud import functions_v2, monitoring_v3, run_v2

NAME = "deployment_state"
TITLE = "Deployment state"
EXPLANATION = (
    "A function that is not ACTIVE or a revision that is not ready drops messages; traffic pinned to an old revision, "
    "or an image the stack does not declare, runs code nobody reviewed for this deploy; a missing alert policy pages nobody."
)


class CloudClients:
    """The API clients the cloud branch calls, each built when first used with Google's defaults
    (gRPC, the environment's credentials), so a run that needs no job or alert policies builds
    neither client. Tests assign clients of a local server instead."""

    @cached_property
    def functions(self) -> functions_v2.FunctionServiceClient:
        from google.cloud import functions_v2

        return functions_v2.FunctionServiceClient()

    @cached_property
    def services(self) -> run_v2.ServicesClient:
        from google.cloud import run_v2

        return run_v2.ServicesClient()

    @cached_property
    def revisions(self) -> run_v2.RevisionsClient:
        from google.cloud import run_v2

        return run_v2.RevisionsClient()

    @cached_property
    def jobs(self) -> run_v2.JobsClient:
        from google.cloud import run_v2

        return run_v2.JobsClient()

    @cached_property
    def alert_policies(self) -> monitoring_v3.AlertPolicyServiceClient:
        from google.cloud import monitoring_v3

        return monitoring_v3.AlertPolicyServiceClient()


def run(context: CheckContext, clients: CloudClients | None = None) -> CheckResult:
    if context.target != "cloud":
        return CheckResult(NAME, TITLE, Status.SKIPPED, "local environment: no deployment to check", EXPLANATION)
    from google.cloud import functions_v2

    clients = clients or CloudClients()
    findings, details = [], []
    location = f"projects/{context.project}/locations/{context.region}"
    for function_name in (context.spec.orchestrator.function_name, context.spec.orchestrator.receipts_function_name):
        function = clients.functions.get_function(name=f"{location}/functions/{function_name}")
        details.append(f"function {function_name}: {function.state.name}")
        if function.state != functions_v2.Function.State.ACTIVE:
            findings.append(f"function {function_name} is {function.state.name}, not ACTIVE")

    service_name = context.spec.analytics.service_name
    service = clients.services.get_service(name=f"{location}/services/{service_name}")
    ready = service.latest_ready_revision == service.latest_created_revision
    details.append(
        f"service {service_name}: latest {service.latest_created_revision}, ready {service.latest_ready_revision}"
    )
    if not ready:
        findings.append(
            f"service {service_name}: latest revision {service.latest_created_revision} is not ready "
            f"(serving {service.latest_ready_revision or 'nothing'})"
        )
    repo = Path(context.spec.source).resolve().parent  # the checkout (or the image's /app) holding pipeline.yaml
    revisions = [
        clients.revisions.get_revision(name=f"{service.name}/revisions/{name}")
        for name in deployed_revisions.serving(service)
    ]
    declared, where = declared_image(repo, context.stack)
    if declared is None and os.environ.get("CLOUD_RUN_JOB"):
        # The scheduled job's image has no stack files, but the same `pulumi up` gave this job the declared image.
        job = clients.jobs.get_job(name=f"{location}/jobs/{os.environ['CLOUD_RUN_JOB']}")
        declared, where = (
            job.template.template.containers[0].image,
            f"job {os.environ['CLOUD_RUN_JOB']} (deployed by the same stack)",
        )
        # No git in the image either: the job's own label says which commit this job's image was built from.
        built_from = job.labels.get(deployed_revisions.SOURCE_COMMIT_LABEL)
        details.append(
            f"job {os.environ['CLOUD_RUN_JOB']}: image built from commit {built_from[:12] if built_from else 'unknown'}"
        )
    compared = deployed_revisions.compare(
        service, revisions, declared, where, git_head(repo), lambda a, b: git_is_ancestor(repo, a, b)
    )
    findings += compared.findings
    details += compared.details

    if context.alerts_dir is not None:
        # `enabled` is a BoolValue: None would mean unset, which a listed policy never is (the API fills it in).
        deployed = {
            policy.user_labels.get("rule", ""): bool(policy.enabled)
            for policy in clients.alert_policies.list_alert_policies(name=f"projects/{context.project}")
            # The rules' policies; the SLOs' burn-rate policies carry `slo` instead.
            if policy.user_labels.get("managed-by") == "pulumi" and "rule" in policy.user_labels
        }
        findings += alert_policy_findings(expected_alert_states(context), deployed)
        details.append(f"{len(deployed)} alert policies deployed, stack {context.stack}")
    return CheckResult(
        NAME,
        TITLE,
        Status.FAILED if findings else Status.OK,
        f"{len(findings)} problems"
        if findings
        else "functions ACTIVE, latest revision ready and serving, alert policies deployed",
        EXPLANATION,
        "pulumi up --policy-pack policies (see docs/deploying.md)",
        findings,
        details,
    )


def expected_alert_states(context: CheckContext) -> dict[str, bool]:
    """Each rule's `enabled` as the infra program deployed it: the stack's overrides applied."""
    if context.alerts_dir is None:
        raise SettingError("no alerts directory: the rules in alerts/ decide which alert policies should exist")
    if not context.stack:
        raise SettingError(
            f"which stack was deployed? set {STACK_ENV} or pass --stack: its alerts/stacks/<stack>.yaml decides which rules are enabled"
        )
    return {rule.name: rule.enabled for rule in load_alert_specs(context.alerts_dir, context.stack).rules}


def alert_policy_findings(expected: dict[str, bool], deployed: dict[str, bool]) -> list[str]:
    findings = []
    for name, enabled in sorted(expected.items()):
        if name not in deployed:
            findings.append(f"alert policy {name} from alerts/{name}.yaml is not deployed")
        elif deployed[name] != enabled:
            findings.append(
                f"alert policy {name} is {'disabled' if enabled else 'enabled'} in Cloud Monitoring; the stack deploys it {'enabled' if enabled else 'disabled'}"
            )
    return findings


def declared_image(repo: Path, stack: str | None) -> tuple[str | None, str]:
    """The analytics image the stack file declares, and where that was read (or why it could not be)."""
    if not stack:
        return None, "no stack given"
    try:
        config = load_stack_config(repo, stack)
    except (SpecError, OSError) as exc:
        reason = exc.problems[0] if isinstance(exc, SpecError) and exc.problems else exc
        return None, f"Pulumi.{stack}.yaml not readable here: {reason}"
    key = f"{config.project}:analyticsImage"
    if key in config.stand_ins:  # the build sets it where it deploys; this checkout has none
        return None, f"Pulumi.{stack}.yaml sets no analyticsImage here (the build sets it where it deploys)"
    return config.values.get(key), f"Pulumi.{stack}.yaml"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None  # no git (the image has none): the commit comparison says unknown, never fails


def git_head(repo: Path) -> str | None:
    result = _git(repo, "rev-parse", "--verify", "HEAD")
    return result.stdout.strip() if result is not None and result.returncode == 0 else None


def git_is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool | None:
    result = _git(repo, "merge-base", "--is-ancestor", ancestor, descendant)
    # 0 yes, 1 no; anything else (a commit this clone lacks) is not an answer.
    return None if result is None or result.returncode not in (0, 1) else result.returncode == 0
