"""Deployment state (cloud only): the functions are ACTIVE, the service's latest revision is ready,
and every alert policy from alerts/ exists, enabled exactly when the stack's overrides say so."""

from __future__ import annotations

from phase3ops.checks.context import CheckContext
from phase3ops.checks.results import CheckResult, Status

NAME = "deployment_state"
TITLE = "Deployment state"
EXPLANATION = "A function that is not ACTIVE or a revision that is not ready drops messages; a missing alert policy pages nobody."


def run(context: CheckContext) -> CheckResult:
    if context.target != "cloud":
        return CheckResult(NAME, TITLE, Status.SKIPPED, "local environment: no deployment to check", EXPLANATION)
    from google.cloud import functions_v2, monitoring_v3, run_v2

    findings, details = [], []
    location = f"projects/{context.project}/locations/{context.region}"
    functions = functions_v2.FunctionServiceClient()
    for function_name in (context.spec.orchestrator.function_name, context.spec.orchestrator.receipts_function_name):
        function = functions.get_function(name=f"{location}/functions/{function_name}")
        details.append(f"function {function_name}: {function.state.name}")
        if function.state != functions_v2.Function.State.ACTIVE:
            findings.append(f"function {function_name} is {function.state.name}, not ACTIVE")

    service_name = context.spec.analytics.service_name
    service = run_v2.ServicesClient().get_service(name=f"{location}/services/{service_name}")
    ready = service.latest_ready_revision == service.latest_created_revision
    details.append(f"service {service_name}: latest {service.latest_created_revision}, ready {service.latest_ready_revision}")
    if not ready:
        findings.append(
            f"service {service_name}: latest revision {service.latest_created_revision} is not ready "
            f"(serving {service.latest_ready_revision or 'nothing'})"
        )

    if context.alerts_dir is not None:
        deployed = {
            policy.user_labels.get("rule"): policy.enabled
            for policy in monitoring_v3.AlertPolicyServiceClient().list_alert_policies(name=f"projects/{context.project}")
            if policy.user_labels.get("managed-by") == "pulumi"
        }
        findings += alert_policy_findings(expected_alert_states(context), deployed)
        details.append(f"{len(deployed)} alert policies deployed, stack {context.stack}")
    return CheckResult(
        NAME,
        TITLE,
        Status.FAILED if findings else Status.OK,
        f"{len(findings)} problems" if findings else "function ACTIVE, revision ready, alert policies deployed",
        EXPLANATION,
        "pulumi up --policy-pack policies (see README: Deploying)",
        findings,
        details,
    )


def expected_alert_states(context: CheckContext) -> dict[str, bool]:
    """Each rule's `enabled` as the infra program deployed it: the stack's overrides applied."""
    from phase3ops.alerts.specs import load_alert_specs
    from phase3ops.checks.context import STACK_ENV
    from phase3ops.cloud import SettingError

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
            findings.append(f"alert policy {name} is {'disabled' if enabled else 'enabled'} in Cloud Monitoring; the stack deploys it {'enabled' if enabled else 'disabled'}")
    return findings
