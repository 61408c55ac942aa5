"""`phase3ops validate`: every spec checked offline, every problem reported at once.

Above the kinds it checks (the pipeline, alerts, dashboards): what one kind
may name is decided by another, and only this module sees them all.

Checks the pipeline spec, then the alert specs, the dashboards and the SLOs as each
stack will deploy them (the base files, and the base merged with
alerts/stacks/<stack>.yaml and dashboards/stacks/<stack>.yaml for every stack
that has a Pulumi.<stack>.yaml or an overrides file), through the schemas,
the lints and the Cloud Monitoring APIs' own message types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from phase3ops.alerts.lints import LintContext, lint
from phase3ops.alerts.references import UnresolvedReference
from phase3ops.alerts.specs import STACKS_DIR, AlertSpecs, load_alert_specs
from phase3ops.dashboards.lints import LintContext as DashboardLintContext
from phase3ops.dashboards.lints import declared_log_metrics
from phase3ops.dashboards.lints import lint as lint_dashboards
from phase3ops.dashboards.specs import DashboardSpecs, load_dashboard_specs
from phase3ops.slos.lints import LintContext as SloLintContext
from phase3ops.slos.lints import lint as lint_slos
from phase3ops.slos.specs import SLOS_DIR, SloSpecs, load_slo_specs
from phase3ops.spec.documents import SpecError, SpecProblem
from phase3ops.spec.pipeline import PipelineSpec, load_pipeline_spec

DASHBOARDS_DIR = "dashboards"


@dataclass
class ValidationReport:
    stacks: list[str]
    problems: list[SpecProblem] = field(default_factory=list)
    specs: dict[str, AlertSpecs] = field(default_factory=dict)  # by stack ("" = base files)
    dashboards: dict[str, DashboardSpecs] = field(default_factory=dict)  # likewise
    slos: dict[str, SloSpecs] = field(default_factory=dict)  # likewise

    @property
    def ok(self) -> bool:
        return not self.problems


def known_stacks(repo_root: Path, alerts_dir: Path) -> list[str]:
    stacks = {p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in repo_root.glob("Pulumi.*.yaml")}
    stacks |= {p.stem for p in (alerts_dir / STACKS_DIR).glob("*.yaml")}
    stacks |= {p.stem for p in (repo_root / DASHBOARDS_DIR / STACKS_DIR).glob("*.yaml")}
    stacks |= {p.stem for p in (repo_root / SLOS_DIR / STACKS_DIR).glob("*.yaml")}
    return sorted(stacks)


def lint_context(pipeline: PipelineSpec, specs: AlertSpecs, repo_root: Path) -> LintContext:
    return LintContext(frozenset(c.name for c in specs.channels), pipeline.deployed_workloads, repo_root, pipeline)


def validate(repo_root: Path, pipeline_path: Path | None = None, stacks: list[str] | None = None) -> ValidationReport:
    alerts_dir = repo_root / "alerts"
    stacks = known_stacks(repo_root, alerts_dir) if stacks is None else stacks
    report = ValidationReport(stacks)
    try:
        pipeline = load_pipeline_spec(pipeline_path or repo_root / "pipeline.yaml")
    except SpecError as error:
        report.problems.extend(error.problems)
        pipeline = None
    # The rules' {{pipeline....}} references name this pipeline, not whatever lies beside alerts/.
    referenced = pipeline if pipeline is not None else _unloadable(pipeline_path or repo_root / "pipeline.yaml")
    base: set[SpecProblem] = set()
    for stack in ["", *stacks]:
        specs = None
        try:
            specs = load_alert_specs(alerts_dir, stack or None, strict=False, pipeline=referenced)
            found = list(specs.problems) + (lint(specs, lint_context(pipeline, specs, repo_root)) if pipeline else [])
            report.specs[stack] = specs
        except SpecError as error:
            found = list(error.problems)
        dashboards, dashboard_problems = check_dashboards(repo_root / DASHBOARDS_DIR, stack or None, pipeline, specs)
        found += dashboard_problems
        if dashboards is not None:
            report.dashboards[stack] = dashboards
        slos, slo_problems = check_slos(repo_root, stack or None, specs)
        found += slo_problems
        if slos is not None:
            report.slos[stack] = slos
        if not stack:
            base = set(found)
            report.problems.extend(found)
        else:
            # Only what the stack's overrides change is news; say which stack.
            report.problems.extend(
                SpecProblem(p.file, p.line, p.path, f"{p.message} [stack {stack}]") for p in found if p not in base
            )
    report.problems = sorted(set(report.problems), key=lambda p: (p.file, p.line or 0, p.path, p.message))
    return report


def _unloadable(path: Path):
    def pipeline():
        raise UnresolvedReference(f"{path.name} could not be loaded (its problems are listed with the others)")

    return pipeline


def deployed_names(pipeline: PipelineSpec) -> dict[str, str]:
    """Everything a dashboard filter may name, by name -> function | service | job | subscription | topic:
    what the infra deploys, and the Phase 4 subscription pipeline.yaml declares for watching."""
    names = dict(pipeline.deployed_workloads)
    names.update(dict.fromkeys(pipeline.deployed_subscriptions, "subscription"))
    if pipeline.phase4_consumer is not None:  # Phase 4's own: not deployed here, but watched
        names[pipeline.phase4_consumer.subscription] = "subscription"
    names.update(dict.fromkeys(pipeline.deployed_topics, "topic"))
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
        problems += duplicates + lint_dashboards(specs, DashboardLintContext(deployed_names(pipeline), log_metrics))
    return specs, problems


def check_slos(
    repo_root: Path, stack: str | None, alerts: AlertSpecs | None
) -> tuple[SloSpecs | None, list[SpecProblem]]:
    """The stack's SLOs (None if unusable) and every problem found in them; their alert policies
    name the channels of alerts/, so the lints wait for the alerts to load."""
    try:
        specs = load_slo_specs(repo_root / SLOS_DIR, stack, strict=False)
    except SpecError as error:
        return None, list(error.problems)
    problems = list(specs.problems)
    if alerts is not None:
        context = SloLintContext(repo_root, frozenset(c.name for c in alerts.channels), specs.alert_policies)
        problems += lint_slos(specs, context)
    return specs, problems
