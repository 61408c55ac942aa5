"""The dashboards of one stack, checked offline: schema, merge, lints, and the Dashboards API's own message types."""

from __future__ import annotations

from pathlib import Path

from phase3ops.alerts.specs import AlertSpecs
from phase3ops.dashboards.lints import LintContext, declared_log_metrics, lint
from phase3ops.dashboards.specs import DashboardSpecs, load_dashboard_specs
from phase3ops.spec.documents import SpecError, SpecProblem
from phase3ops.spec.pipeline import PipelineSpec

DASHBOARDS_DIR = "dashboards"


def deployed_names(pipeline: PipelineSpec) -> dict[str, str]:
    """Everything a dashboard filter may name, by name -> function | service | job | subscription | topic:
    what the infra deploys, and the Phase 4 subscription pipeline.yaml declares for watching."""
    names = dict(pipeline.deployed_workloads)
    names.update({name: "subscription" for name in pipeline.deployed_subscriptions})
    if pipeline.phase4_consumer is not None:  # Phase 4's own: not deployed here, but watched
        names[pipeline.phase4_consumer.subscription] = "subscription"
    names.update({name: "topic" for name in pipeline.deployed_topics})
    return names


def check_dashboards(
    directory: Path, stack: str | None, pipeline: PipelineSpec | None, alerts: AlertSpecs | None
) -> tuple[DashboardSpecs | None, list[SpecProblem]]:
    """The stack's dashboards (None if unusable) and every problem found in them.

    Without the pipeline (it did not load) only the files are checked; without
    the alert specs, a log metric an alert rule declares looks undeclared, so
    the lints wait for the alerts to be fixed.
    """
    try:
        specs = load_dashboard_specs(directory, stack, strict=False)
    except SpecError as error:
        return None, list(error.problems)
    problems = list(specs.problems)
    if pipeline is not None and alerts is not None:
        log_metrics, duplicates = declared_log_metrics(specs, alerts.rules)
        problems += duplicates + lint(specs, LintContext(deployed_names(pipeline), log_metrics))
    return specs, problems
