"""Deployed vs declared: what the analytics service serves, compared with what the stack
declares and what git holds.

Pure: Cloud Run v2 messages (run_v2.Service, run_v2.Revision) and strings in, findings
out; the check does the API calls and the git commands. Names as the API gives them:
`latest_ready_revision` is a full resource name, `traffic_statuses[].revision` a short
one, so every comparison is on the short name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud import run_v2

# Set on each revision by infra/components/analytics_service.py from the stack's analyticsImageCommit:
# the commit the revision's image was built from (not the one `pulumi up` ran from).
SOURCE_COMMIT_LABEL = "source-commit"
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

# is_ancestor(a, b): a is b or an ancestor of b; None when git cannot tell (a commit it does not have).
IsAncestor = Callable[[str, str], bool | None]


@dataclass
class Comparison:
    findings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def short_name(revision: str) -> str:
    return revision.rsplit("/", 1)[-1]


def _follows_latest(status: run_v2.TrafficTargetStatus) -> bool:
    from google.cloud import run_v2  # here, not at import: infra imports this module for its label

    return status.type_ == run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST


def serving(service: run_v2.Service) -> dict[str, int]:
    """Revision (short name) -> percent of requests it gets, as Cloud Run reports it, not as asked."""
    latest = short_name(service.latest_ready_revision)
    percents: dict[str, int] = {}
    for status in service.traffic_statuses:
        if status.percent > 0:
            # A LATEST target may leave `revision` empty: it is whatever is latest and ready.
            name = latest if _follows_latest(status) else short_name(status.revision)
            percents[name] = percents.get(name, 0) + status.percent
    return percents


def traffic_findings(service: run_v2.Service) -> Comparison:
    latest = short_name(service.latest_ready_revision)
    result = Comparison()
    for name, percent in sorted(serving(service).items()):
        if name != latest:
            result.findings.append(f"traffic pinned to old revision {name} ({percent}%) while latest is {latest}")
    pinned = [
        s
        for s in service.traffic_statuses
        if s.percent > 0 and not _follows_latest(s) and short_name(s.revision) == latest
    ]
    if pinned:
        # Serving the latest today, but `pulumi up` leaves traffic alone: the next revision would get none.
        result.details.append(
            f"traffic pinned by name to {latest}: a new revision will get no traffic until it is moved to LATEST"
        )
    return result


def image_digest(image: str) -> str | None:
    match = _DIGEST.search(image)
    return match.group(1) if match else None


def image_findings(revisions: list[run_v2.Revision], declared_image: str | None, declared_where: str) -> Comparison:
    result = Comparison()
    if not declared_image:
        result.details.append(f"declared image: unknown ({declared_where})")
        return result
    declared = image_digest(declared_image)
    for revision in revisions:
        for container in revision.containers:
            if image_digest(container.image) != declared:
                result.findings.append(
                    f"serving image digest differs from the stack's declared digest: revision {short_name(revision.name)} "
                    f"runs {container.image}, {declared_where} declares {declared}"
                )
    return result


def commit_findings(revision: run_v2.Revision, git_head: str | None, is_ancestor: IsAncestor) -> Comparison:
    """Which side is behind: the commit the revision's image was built from, or git's HEAD."""
    name = short_name(revision.name)
    deployed = revision.labels.get(SOURCE_COMMIT_LABEL, "")
    result = Comparison()
    if not deployed:
        result.details.append(
            f"revision {name}: deployed commit unknown (no {SOURCE_COMMIT_LABEL} label: the stack sets no analyticsImageCommit for its image)"
        )
    elif not _COMMIT.match(deployed):
        # Not set by the infra program (it accepts only a full commit): someone's hand-made label.
        result.details.append(
            f"revision {name}: deployed commit unknown ({SOURCE_COMMIT_LABEL} label {deployed!r} is not a full git commit)"
        )
    elif not git_head:
        result.details.append(f"revision {name} runs commit {deployed[:12]}; git commit unknown (no git checkout here)")
    elif deployed == git_head:
        result.details.append(f"revision {name} runs commit {deployed[:12]}, git HEAD")
    else:
        git_ahead, deployed_ahead = is_ancestor(deployed, git_head), is_ancestor(git_head, deployed)
        if git_ahead:
            result.findings.append(
                f"git is ahead of what is deployed (commit {git_head[:12]} not deployed): revision {name} runs {deployed[:12]}"
            )
        elif deployed_ahead:
            # The deployment is newer than this checkout: nothing is missing from the cloud.
            result.details.append(
                f"what is deployed is ahead of git (revision {name} runs {deployed[:12]}; this checkout is at {git_head[:12]}: pull)"
            )
        elif git_ahead is None:
            result.details.append(
                f"revision {name} runs {deployed[:12]}, a commit this checkout does not have (git fetch); git HEAD is {git_head[:12]}"
            )
        else:
            result.findings.append(
                f"git and what is deployed have diverged: revision {name} runs {deployed[:12]}, which is not in the history of git HEAD {git_head[:12]}"
            )
    return result


def compare(
    service: run_v2.Service,
    revisions: list[run_v2.Revision],
    declared_image: str | None,
    declared_where: str,
    git_head: str | None,
    is_ancestor: IsAncestor,
) -> Comparison:
    """`revisions`: the ones `serving(service)` names."""
    result = Comparison()
    parts = [traffic_findings(service), image_findings(revisions, declared_image, declared_where)]
    parts += [commit_findings(revision, git_head, is_ancestor) for revision in revisions]
    for part in parts:
        result.findings += part.findings
        result.details += part.details
    return result
