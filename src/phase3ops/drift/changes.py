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

Anything else is refused with a `PreviewParseError` naming the JSON path
(`steps[3].oldState.outputs`, `line 7: resOutputsEvent.metadata`): every
value the classification reads is checked to have the type the CLI writes
(or to be null or absent), a summary count must be a whole number from 0 to
MAX_COUNT, and JSON nested deeper than MAX_NESTING is refused before
anything recurses over it. The changes a summary counts and no step explains
are one `Change` per operation carrying the `count`, however large it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from phase3ops.input_bounds import OutOfBounds, capped, load_json, quoted

OUTSIDE, UNDEPLOYED, KNOWN, UNATTRIBUTED = "outside", "undeployed", "known", "unattributed"
CLASS_TITLES = {
    OUTSIDE: "changed outside Pulumi",
    UNDEPLOYED: "code or spec not yet deployed",
    KNOWN: "known permanent difference",
    UNATTRIBUTED: "changed (no step says what)",
}
CHANGING_OPS = {
    "create",
    "update",
    "replace",
    "delete",
    "create-replacement",
    "delete-replaced",
    "import",
    "import-replacement",
    "discard",
}
UNCHANGED_OPS = {"same", "read", "refresh"}
MAX_COUNT = 1_000_000  # changes of one operation in a summary: far more resources than any one stack holds
MAX_NESTING = 100  # JSON levels; real previews nest states about a dozen deep, and the comparisons recurse per level


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
    count: int = 1  # the changes this one stands for: >1 only for unattributed changes the summary counts


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
        document = None  # perhaps one event a line
    except RecursionError:
        raise PreviewParseError("the preview's JSON is nested too deeply to read") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise PreviewParseError(f"the preview's JSON cannot be read: {exc}") from None
    if isinstance(document, dict) and ("steps" in document or "changeSummary" in document):
        _check_nesting(document, "")
        return _from_digest(document)
    events: list[tuple[str, Any]] = []
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}: "
        try:
            event = load_json(line)
        except OutOfBounds as exc:
            raise PreviewParseError(f"line {number} is not JSON: {exc.reason}") from None
        _check_nesting(event, where)
        events.append((where, event))
    if not any(
        isinstance(e, dict) and ("resOutputsEvent" in e or "summaryEvent" in e or "resourcePreEvent" in e)
        for _, e in events
    ):
        raise PreviewParseError("neither a preview digest nor engine events")
    return _from_events(events)


# Each reader below returns the value at `path` when it has the type the CLI writes, treating null and
# absent as empty, and raises PreviewParseError naming the path otherwise.


def _check_nesting(value: Any, where: str) -> None:
    """Refuse JSON nested deeper than MAX_NESTING, without recursing over it."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_NESTING:
            raise PreviewParseError(f"{where}JSON nested more than {MAX_NESTING} levels deep")
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)


def _refuse(path: str, expected: str, value: Any) -> PreviewParseError:
    return PreviewParseError(f"{path or 'the preview'} must be {expected}, got {quoted(value)}")


def _object(value: Any, path: str, required: bool = False) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _refuse(path, "a JSON object", value)
    return value


def _array(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _refuse(path, "a JSON array", value)
    return value


def _text(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _refuse(path, "a string", value)
    return value


def _texts(value: Any, path: str) -> list[str]:
    items = _array(value, path)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise _refuse(f"{path}[{index}]", "a string", item)
    return items


def _counts(value: Any, path: str) -> dict[str, int]:
    counts = {}
    for op, count in _object(value, path).items():
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
            raise _refuse(f"{path}.{capped(op, 80)}", f"a whole number from 0 to {MAX_COUNT:,}", count)
        counts[op] = count
    return counts


def _state(value: Any, path: str) -> dict[str, Any]:
    """A resource state (`oldState`, `newState`, an event's `old`/`new`): the parts read below."""
    state = _object(value, path)
    _text(state.get("type"), f"{path}.type")
    _object(state.get("inputs"), f"{path}.inputs")
    _object(state.get("outputs"), f"{path}.outputs")
    return state


def _step(value: Any, path: str) -> dict[str, Any]:
    step = _object(value, path, required=True)
    for key in ("urn", "op", "type"):
        _text(step.get(key), f"{path}.{key}")
    _state(step.get("oldState"), f"{path}.oldState")
    _state(step.get("newState"), f"{path}.newState")
    _object(step.get("detailedDiff"), f"{path}.detailedDiff")
    _texts(step.get("diffReasons"), f"{path}.diffReasons")
    _texts(step.get("replaceReasons"), f"{path}.replaceReasons")
    return step


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
    for index, step in enumerate(_array(document.get("steps"), "steps")):
        step = _step(step, f"steps[{index}]")
        occurrences.setdefault(step.get("urn") or "", []).append(step)
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
        change = Change(
            urn, planned.get("type") or (new or old).get("type") or resource_type, name, op, properties, reasons=reasons
        )
        # The preview reverts what the refresh read: the cloud moved, not the program.
        change.kind = OUTSIDE if refreshed_keys else _classify(change, old, new)
        changes.append(change)
    summary = _counts(document.get("changeSummary"), "changeSummary")
    _add_unattributed(changes, summary)
    diagnostics = [
        _text(_object(d, f"diagnostics[{i}]", required=True).get("message"), f"diagnostics[{i}].message")
        for i, d in enumerate(_array(document.get("diagnostics"), "diagnostics"))
    ]
    return PreviewResult(changes, summary, diagnostics)


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


def _from_events(events: Iterable[tuple[str, Any]]) -> PreviewResult:
    changes: list[Change] = []
    summary: dict[str, int] = {}
    diagnostics: list[str] = []
    for where, event in events:
        event = _object(event, f"{where}an engine event", required=True)
        if "resOutputsEvent" in event:
            path = f"{where}resOutputsEvent.metadata"
            metadata = _object(
                _object(event["resOutputsEvent"], f"{where}resOutputsEvent", required=True).get("metadata"), path
            )
            for key in ("op", "urn", "type"):
                _text(metadata.get(key), f"{path}.{key}")
            _state(metadata.get("old"), f"{path}.old")
            _state(metadata.get("new"), f"{path}.new")
            _object(metadata.get("detailedDiff"), f"{path}.detailedDiff")
            _texts(metadata.get("diffs"), f"{path}.diffs")
            op = metadata.get("op") or ""
            if op in UNCHANGED_OPS:
                continue
            urn = metadata.get("urn") or ""
            old, new = metadata.get("old") or {}, metadata.get("new") or {}
            detailed = metadata.get("detailedDiff") or {}
            if op == "delete":
                properties = ["(deleted outside Pulumi)"]
            else:
                properties = (
                    sorted(detailed)
                    or list(metadata.get("diffs") or [])
                    or _changed_keys(old.get("outputs"), new.get("outputs"))
                )
            resource_type, name = _split_urn(urn)
            # A refresh event says what the cloud holds now: changed (or gone) outside Pulumi.
            changes.append(Change(urn, metadata.get("type") or resource_type, name, op, properties, OUTSIDE))
        elif "summaryEvent" in event:
            summary_event = _object(event["summaryEvent"], f"{where}summaryEvent", required=True)
            summary = _counts(summary_event.get("resourceChanges"), f"{where}summaryEvent.resourceChanges")
        elif "diagnosticEvent" in event:
            diagnostic = _object(event["diagnosticEvent"], f"{where}diagnosticEvent", required=True)
            if _text(diagnostic.get("severity"), f"{where}diagnosticEvent.severity") in ("error", "warning"):
                diagnostics.append(_text(diagnostic.get("message"), f"{where}diagnosticEvent.message").strip())
    _add_unattributed(changes, summary)
    return PreviewResult(changes, summary, diagnostics)


def _add_unattributed(changes: list[Change], summary: dict[str, int]) -> None:
    """Counted changes no step accounts for still count as drift."""
    listed: dict[str, int] = {}
    for change in changes:
        listed[change.op] = listed.get(change.op, 0) + 1
    # `preview --refresh` does not count its refresh steps in the summary.
    for op, count in summary.items():
        unexplained = count - listed.get(op, 0)
        if op not in UNCHANGED_OPS and unexplained > 0:
            changes.append(Change("", "", "", op, [], UNATTRIBUTED, count=unexplained))
