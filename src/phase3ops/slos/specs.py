"""Loading `slos/`: SLOs and burn-rate alert policies in OpenSLO v1, and per-stack overrides.

slos/
  <slo>.yaml                  kind: SLO (openslo/v1), the indicator inline
  alert-policies/<name>.yaml  kind: AlertPolicy (openslo/v1), one burn-rate condition inline
  stacks/<stack>.yaml         kind: SLOOverrides: a stack's objectives and alert policies
  schema/                     the JSON Schemas of the kinds above

As with alerts/, every file is checked against its schema and every problem of every file is
collected before anything is raised. References between the files (an SLO's alertPolicyRef, a
policy's targetRef to alerts/channels.yaml) are checked by `phase3ops.slos.lints`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phase3ops.monitoring import durations
from phase3ops.spec.documents import (
    KindLoader,
    PathPart,
    SpecDocument,
    SpecError,
    SpecProblem,
    name_problems,
)

SLOS_DIR = "slos"
POLICIES_DIR = "alert-policies"
STACKS_DIR = "stacks"
SCHEMA_DIR = "schema"
SERVICE_ID = "phase3-handoff"  # the custom service every SLO belongs to (the schema's spec.service)
RUNBOOK_ANNOTATION = "phase3ops/runbook"
EVENTS_PER_DAY_ANNOTATION = "phase3ops/events-per-day"
SHORT_WINDOW_DIVISOR = 12  # the SRE workbook's multi-window alerts: the short window is 1/12 of the long
_SCHEMAS = {
    "SLO": "slo.schema.json",
    "AlertPolicy": "slo-alert-policy.schema.json",
    "SLOOverrides": "slo-stack-overrides.schema.json",
}


@dataclass(frozen=True)
class Slo:
    name: str
    spec: dict[str, Any]  # the file's spec with the stack's overrides applied
    metadata: dict[str, Any]
    document: SpecDocument
    overridden: dict[str, SpecDocument]  # field -> the overrides file that replaced it

    @property
    def source(self) -> str:
        return self.document.file

    def problem(self, path: Sequence[PathPart], message: str) -> SpecProblem:
        """A problem at `spec.<path>`, located in the overrides file when the stack replaced that field."""
        if path and isinstance(path[0], str) and path[0] in self.overridden:
            return self.overridden[path[0]].problem(["slos", self.name, *path], message)
        return self.document.problem(["spec", *path], message)

    @property
    def display_name(self) -> str:
        return self.metadata.get("displayName") or self.name

    @property
    def target(self) -> float:
        objective = self.spec["objectives"][0]
        return objective["target"] if "target" in objective else objective["targetPercent"] / 100

    @property
    def window_days(self) -> int:
        return durations.seconds(self.spec["timeWindow"][0]["duration"]) // 86400

    @property
    def ratio(self) -> dict[str, Any]:
        return self.spec["indicator"]["spec"]["ratioMetric"]

    @property
    def counts_bad(self) -> bool:
        """Whether the indicator states bad events (bad/total) rather than good ones (good/total)."""
        return "bad" in self.ratio

    def selectors(self) -> list[tuple[list[PathPart], dict[str, Any]]]:
        """(path under spec, metric source spec) of the ratio's two sides, numerator first."""
        numerator = "bad" if self.counts_bad else "good"
        return [
            (
                ["indicator", "spec", "ratioMetric", side, "metricSource", "spec"],
                self.ratio[side]["metricSource"]["spec"],
            )
            for side in (numerator, "total")
        ]

    @property
    def alert_policy_names(self) -> list[str]:
        return [ref["alertPolicyRef"] for ref in self.spec["alertPolicies"]]

    @property
    def runbook(self) -> str | None:
        return self.metadata.get("annotations", {}).get(RUNBOOK_ANNOTATION)

    @property
    def events_per_day(self) -> float | None:
        """The annotation as a positive, finite number; None when absent or not such a number."""
        text = self.metadata.get("annotations", {}).get(EVENTS_PER_DAY_ANNOTATION)
        try:
            value = float(text) if text is not None else None
        except ValueError:
            return None
        return value if value is not None and 0 < value < float("inf") else None


@dataclass(frozen=True)
class BurnRateAlert:
    """An OpenSLO AlertPolicy with its one inline burn-rate condition."""

    name: str
    spec: dict[str, Any]
    metadata: dict[str, Any]
    document: SpecDocument

    def problem(self, path: Sequence[PathPart], message: str) -> SpecProblem:
        return self.document.problem(["spec", *path], message)

    @property
    def display_name(self) -> str:
        return self.metadata.get("displayName") or self.name

    @property
    def condition(self) -> dict[str, Any]:
        return self.spec["conditions"][0]["spec"]["condition"]

    @property
    def severity(self) -> str:
        return self.spec["conditions"][0]["spec"]["severity"]

    @property
    def threshold(self) -> float:
        return float(self.condition["threshold"])

    @property
    def inclusive(self) -> bool:
        return self.condition["op"] == "gte"

    @property
    def long_window_seconds(self) -> int:
        return durations.seconds(self.condition["lookbackWindow"])

    @property
    def short_window_seconds(self) -> int:
        return self.long_window_seconds // SHORT_WINDOW_DIVISOR

    @property
    def alert_after_seconds(self) -> int:
        return durations.seconds(self.condition.get("alertAfter", "0m"))

    @property
    def targets(self) -> list[str]:
        return [target["targetRef"] for target in self.spec["notificationTargets"]]

    def fires(self, long_burn: float | None, short_burn: float | None) -> bool:
        """Both windows burn past the threshold (a window without events has no burn rate)."""
        if long_burn is None or short_burn is None:
            return False
        if self.inclusive:
            return long_burn >= self.threshold and short_burn >= self.threshold
        return long_burn > self.threshold and short_burn > self.threshold


@dataclass(frozen=True)
class SloSpecs:
    directory: Path
    stack: str | None
    slos: tuple[Slo, ...]
    alert_policies: dict[str, BurnRateAlert]
    problems: tuple[SpecProblem, ...] = ()  # problems that leave every SLO usable, reported with the lints'

    def slo(self, name: str) -> Slo:
        return next(slo for slo in self.slos if slo.name == name)


def load_slo_specs(directory: Path, stack: str | None = None, strict: bool = True) -> SloSpecs:
    """Parse and schema-check every file of `directory`; apply the stack's overrides.

    Raises SpecError for anything that leaves an SLO unusable; with strict (the default) the
    remaining problems (a name that does not match its file, an override of no SLO) raise too."""
    directory = Path(directory)
    loader = KindLoader(directory / SCHEMA_DIR, _SCHEMAS)
    problems, load = loader.problems, loader.load

    if not directory.is_dir():
        return SloSpecs(directory, stack, (), {})
    slo_docs = [doc for path in sorted(directory.glob("*.yaml")) if (doc := load(path, "SLO")) is not None]
    policy_docs = [
        doc
        for path in sorted((directory / POLICIES_DIR).glob("*.yaml"))
        if (doc := load(path, "AlertPolicy")) is not None
    ]
    overrides_doc = None
    overrides_path = directory / STACKS_DIR / f"{stack}.yaml"
    if stack is not None and overrides_path.is_file():
        overrides_doc = load(overrides_path, "SLOOverrides")
        if overrides_doc is not None and overrides_doc.data["stack"] != stack:
            problems.append(overrides_doc.problem(["stack"], f"must be {stack!r} (the file name)"))
    if problems:
        raise SpecError(problems)

    soft: list[SpecProblem] = []
    seen: dict[str, str] = {}
    overrides = overrides_doc.data["slos"] if overrides_doc is not None else {}
    slos = []
    for document in slo_docs:
        data = document.data
        soft.extend(name_problems(document, seen))
        name = data["metadata"]["name"]
        replaced = overrides.get(name, {})
        assert not replaced or overrides_doc is not None  # overrides is empty without it
        slos.append(
            Slo(
                name,
                {**data["spec"], **replaced},
                data["metadata"],
                document,
                dict.fromkeys(replaced, overrides_doc) if overrides_doc is not None else {},
            )
        )
    for name in overrides:
        if name not in seen:
            assert overrides_doc is not None
            soft.append(overrides_doc.problem(["slos", name], f"overrides {name!r}, which no SLO file defines"))
    policies: dict[str, BurnRateAlert] = {}
    policy_names: dict[str, str] = {}
    for document in policy_docs:
        soft.extend(name_problems(document, policy_names))
        data = document.data
        policies[data["metadata"]["name"]] = BurnRateAlert(
            data["metadata"]["name"], data["spec"], data["metadata"], document
        )
    if strict and soft:
        raise SpecError(soft)
    return SloSpecs(directory, stack, tuple(slos), policies, tuple(soft))
