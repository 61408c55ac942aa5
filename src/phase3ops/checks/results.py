"""Check results in the gcpdiag style: each check has a title, an explanation
shown when it fails, the command that fixes it, and ok / failed / skipped."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"  # the check could not run: never reported as passing


@dataclass
class CheckResult:
    name: str
    title: str
    status: Status
    summary: str
    explanation: str = ""
    fix: str = ""
    findings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # shown with --verbose
    metrics: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "findings": self.findings,
            "fix": self.fix if self.status is Status.FAILED else "",
            "metrics": self.metrics,
        }


def render(results: list[CheckResult], header: str, verbose: bool = False) -> str:
    """Plain text for people and for grep: no colour codes, one status word per check."""
    lines = [header]
    width = max(len(r.title) for r in results) if results else 0
    for result in results:
        lines.append(f"{'[' + result.status.value.upper() + ']':<9} {result.title.ljust(width)}  {result.summary}")
        if result.status in (Status.FAILED, Status.ERROR):
            if result.explanation:
                lines.append(f"    Why it matters: {result.explanation}")
            lines += [f"    - {finding}" for finding in result.findings]
            if result.fix and result.status is Status.FAILED:
                lines.append(f"    Fix: {result.fix}")
        if verbose:
            lines += [f"    {detail}" for detail in result.details]
    failed = [r for r in results if r.status is Status.FAILED]
    errors = [r for r in results if r.status is Status.ERROR]
    lines.append("")
    if errors:
        lines.append(f"Could not check: {', '.join(r.title for r in errors)}")
    if failed:
        lines.append(f"{len(failed)} check{'s' if len(failed) != 1 else ''} failed:")
        lines += [f"  - {r.title}: {r.fix}" for r in failed]
    if not failed and not errors:
        lines.append("All checks passed")
    return "\n".join(lines)


def exit_code(results: list[CheckResult]) -> int:
    from phase3ops.checks import EXIT_CLEAN, EXIT_COULD_NOT_CHECK, EXIT_FINDINGS

    if any(r.status is Status.ERROR for r in results):
        return EXIT_COULD_NOT_CHECK
    if any(r.status is Status.FAILED for r in results):
        return EXIT_FINDINGS
    return EXIT_CLEAN
