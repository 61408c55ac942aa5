"""The drift report: plain text for the terminal and CI logs, Markdown for a GitHub issue or Slack."""

from __future__ import annotations

import json

from phase3ops.drift.changes import CLASS_TITLES, KNOWN, OUTSIDE, UNATTRIBUTED, UNDEPLOYED, Change, PreviewResult

ORDER = (OUTSIDE, UNDEPLOYED, UNATTRIBUTED, KNOWN)


def _counts(result: PreviewResult) -> dict[str, int]:
    return {kind: sum(c.count for c in result.changes if c.kind == kind) for kind in ORDER}


def headline(result: PreviewResult, stack: str) -> str:
    counts = _counts(result)
    if not result.drifted:
        known = f" ({counts[KNOWN]} known permanent differences)" if counts[KNOWN] else ""
        return f"No drift in stack {stack}{known}"
    parts = [f"{counts[kind]} {CLASS_TITLES[kind]}" for kind in ORDER if counts[kind]]
    return f"DRIFT in stack {stack}: " + ", ".join(parts)


def _describe(change: Change) -> str:
    subject = f"{change.type} {change.name}" if change.urn else "(unnamed)"
    props = ", ".join(change.properties) if change.properties else "-"
    extra = f" [allowed: {change.allow_reason}]" if change.kind == KNOWN else ""
    times = f" x{change.count}" if change.count > 1 else ""
    return f"{subject}: {change.op}{times} ({props}){extra}"


def as_text(result: PreviewResult, stack: str, verbose: bool = False) -> str:
    lines = [headline(result, stack)]
    for kind in ORDER:
        changes = [c for c in result.changes if c.kind == kind]
        if not changes or (kind == KNOWN and not verbose):
            continue
        lines.append(f"{CLASS_TITLES[kind]}:")
        lines += [f"  - {_describe(c)}" for c in changes]
    if result.diagnostics and verbose:
        lines.append("diagnostics:")
        lines += [f"  {d}" for d in result.diagnostics]
    return "\n".join(lines)


def as_markdown(result: PreviewResult, stack: str) -> str:
    lines = [f"## {headline(result, stack)}", ""]
    if result.changes:
        lines += ["| class | resource | type | operation | properties |", "|---|---|---|---|---|"]
        for kind in ORDER:
            for change in (c for c in result.changes if c.kind == kind):
                props = ", ".join(f"`{p}`" for p in change.properties) or "-"
                op = f"{change.op} x{change.count}" if change.count > 1 else change.op
                lines.append(
                    f"| {CLASS_TITLES[kind]} | `{change.name or '?'}` | `{change.type or '?'}` | {op} | {props} |"
                )
        lines.append("")
    if any(c.kind == OUTSIDE for c in result.changes):
        lines.append(
            f"Changed outside Pulumi: decide per resource whether to adopt the change into code or revert it with `pulumi up --stack {stack}`."
        )
    if any(c.kind == UNDEPLOYED for c in result.changes):
        lines.append(f"Not yet deployed: merged code or specs are waiting for `pulumi up --stack {stack}`.")
    return "\n".join(lines)


def as_json(result: PreviewResult, stack: str) -> str:
    return json.dumps(
        {
            "stack": stack,
            "drift": bool(result.drifted),
            "summary": result.summary,
            "changes": [
                {
                    "class": c.kind,
                    "type": c.type,
                    "name": c.name,
                    "urn": c.urn,
                    "op": c.op,
                    "count": c.count,
                    "properties": c.properties,
                    "allowed_because": c.allow_reason,
                }
                for c in result.changes
            ],
        },
        indent=2,
    )
