"""Parse `pulumi preview --json` digests and streamed engine events into classified changes.

Classes:
- `outside`: changed outside Pulumi. Evidence: a refresh that read a
  different state (a `refresh` step whose outputs changed, a streamed
  refresh event with op update/delete), or a change whose program inputs
  equal the last deployed inputs (the cloud moved, the program did not).
- `undeployed`: code or spec not yet deployed: the program's inputs differ
  from the last deployed ones (a new function source hash, a new threshold),
  or the program adds or removes a resource.
- `known`: every changed property is in the checked-in allow-list.
- `unattributed`: the summary counts a change no step explains (detailedDiff
  null and no diffReasons). Reported as drift, never as "no drift".

Things the real outputs do that this handles: `detailedDiff` null while
`diffReasons` name the keys; `diffReasons` naming output-only properties;
refresh changes visible only in `changeSummary`; secrets as "[secret]" or
as signature-wrapped objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

OUTSIDE, UNDEPLOYED, KNOWN, UNATTRIBUTED = "outside", "undeployed", "known", "unattributed"
CLASS_TITLES = {
    OUTSIDE: "changed outside Pulumi",
    UNDEPLOYED: "code or spec not yet deployed",
    KNOWN: "known permanent difference",
    UNATTRIBUTED: "changed (no step says what)",
}
CHANGING_OPS = {"create", "update", "replace", "delete", "create-replacement", "delete-replaced", "import", "import-replacement", "discard"}
UNCHANGED_OPS = {"same", "read", "refresh"}


class PreviewParseError(ValueError):
    pass


@dataclass
class Change:
    urn: str
    type: str
    name: str
    op: str
    properties: list[str]
    kind: str = UNDEPLOYED
    reasons: list[str] = field(default_factory=list)
    allow_reason: str = ""


@dataclass
class PreviewResult:
    changes: list[Change]
    summary: dict[str, int]
    diagnostics: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> list[Change]:
        return [c for c in self.changes if c.kind != KNOWN]


def parse_preview(text: str) -> PreviewResult:
    """A preview digest (one JSON document) or streamed engine events (one JSON object per line)."""
    stripped = text.strip()
    if not stripped:
        raise PreviewParseError("the preview printed nothing")
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, dict) and ("steps" in document or "changeSummary" in document):
        return _from_digest(document)
    events = []
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise PreviewParseError(f"line {number} is not JSON: {exc}") from None
    if not any(isinstance(e, dict) and ("resOutputsEvent" in e or "summaryEvent" in e or "resourcePreEvent" in e) for e in events):
        raise PreviewParseError("neither a preview digest nor engine events")
    return _from_events(events)


def _split_urn(urn: str) -> tuple[str, str]:
    parts = urn.split("::")
    return (parts[2].rsplit("$", 1)[-1], parts[3]) if len(parts) >= 4 else ("", urn)


def _changed_keys(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    old, new = old or {}, new or {}
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))


def _top_level(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def _from_digest(document: dict[str, Any]) -> PreviewResult:
    """`preview --refresh` lists every resource's refresh step first (op `refresh`,
    or `update`/`delete` where the read found a difference), then the preview's
    own steps. A URN listed twice therefore shows its refresh first."""
    occurrences: dict[str, list[dict[str, Any]]] = {}
    for step in document.get("steps") or []:
        occurrences.setdefault(step.get("urn", ""), []).append(step)
    changes: list[Change] = []
    for urn, steps in occurrences.items():
        refresh = steps[0] if len(steps) > 1 or steps[0].get("op") == "refresh" else None
        planned = steps[-1] if steps[-1].get("op") in CHANGING_OPS and steps[-1] is not refresh else None
        refreshed_keys = _refresh_differences(refresh) if refresh is not None else []
        resource_type, name = _split_urn(urn)
        if planned is None:
            if refreshed_keys:
                changes.append(Change(urn, resource_type, name, "refresh", refreshed_keys, OUTSIDE))
            continue
        old, new = planned.get("oldState") or {}, planned.get("newState") or {}
        detailed = planned.get("detailedDiff") or {}
        reasons = list(planned.get("diffReasons") or planned.get("replaceReasons") or [])
        properties = sorted(detailed) if detailed else reasons
        op = planned.get("op", "")
        change = Change(urn, planned.get("type") or (new or old).get("type") or resource_type, name, op, properties, reasons=reasons)
        # The preview reverts what the refresh read: the cloud moved, not the program.
        change.kind = OUTSIDE if refreshed_keys else _classify(change, old, new)
        changes.append(change)
    summary = {k: int(v) for k, v in (document.get("changeSummary") or {}).items()}
    _add_unattributed(changes, summary)
    return PreviewResult(changes, summary, [d.get("message", "") for d in document.get("diagnostics") or []])


def _refresh_differences(step: dict[str, Any]) -> list[str]:
    op = step.get("op", "")
    old, new = step.get("oldState") or {}, step.get("newState") or {}
    if op == "delete" or (op == "refresh" and old and not new):
        return ["(deleted outside Pulumi)"]
    if op in ("update", "refresh"):
        return sorted(step.get("detailedDiff") or {}) or _changed_keys(old.get("outputs"), new.get("outputs"))
    return []


def _classify(change: Change, old: dict[str, Any], new: dict[str, Any]) -> str:
    if change.op in ("create", "import") or not old:
        return UNDEPLOYED  # the program adds it
    if change.op in ("delete", "discard") or not new:
        return UNDEPLOYED  # the program no longer has it
    old_inputs, new_inputs = old.get("inputs") or {}, new.get("inputs") or {}
    keys = {_top_level(p) for p in change.properties} or set(old_inputs) | set(new_inputs)
    if any(_comparable(old_inputs.get(k)) != _comparable(new_inputs.get(k)) for k in keys):
        return UNDEPLOYED
    return OUTSIDE  # the program asks for what it deployed; the resource itself is different


def _comparable(value: Any) -> Any:
    """Inputs as the program states them: drop the bridge's bookkeeping (`__defaults`)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k != "__defaults"}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _from_events(events: Iterable[dict[str, Any]]) -> PreviewResult:
    changes: list[Change] = []
    summary: dict[str, int] = {}
    diagnostics: list[str] = []
    for event in events:
        if "resOutputsEvent" in event:
            metadata = event["resOutputsEvent"].get("metadata") or {}
            op = metadata.get("op", "")
            if op in UNCHANGED_OPS:
                continue
            urn = metadata.get("urn", "")
            old, new = metadata.get("old") or {}, metadata.get("new") or {}
            detailed = metadata.get("detailedDiff") or {}
            if op == "delete":
                properties = ["(deleted outside Pulumi)"]
            else:
                properties = sorted(detailed) or list(metadata.get("diffs") or []) or _changed_keys(old.get("outputs"), new.get("outputs"))
            resource_type, name = _split_urn(urn)
            # A refresh event says what the cloud holds now: changed (or gone) outside Pulumi.
            changes.append(Change(urn, metadata.get("type") or resource_type, name, op, properties, OUTSIDE))
        elif "summaryEvent" in event:
            summary = {k: int(v) for k, v in (event["summaryEvent"].get("resourceChanges") or {}).items()}
        elif "diagnosticEvent" in event:
            diagnostic = event["diagnosticEvent"]
            if diagnostic.get("severity") in ("error", "warning"):
                diagnostics.append(diagnostic.get("message", "").strip())
    _add_unattributed(changes, summary)
    return PreviewResult(changes, summary, diagnostics)


def _add_unattributed(changes: list[Change], summary: dict[str, int]) -> None:
    """Counted changes no step accounts for still count as drift."""
    listed: dict[str, int] = {}
    for change in changes:
        listed[change.op] = listed.get(change.op, 0) + 1
    # `preview --refresh` does not count its refresh steps in the summary.
    for op, count in summary.items():
        if op in UNCHANGED_OPS:
            continue
        for _ in range(count - listed.get(op, 0)):
            changes.append(Change("", "", "", op, [], UNATTRIBUTED))
