"""A date's story for people: a time-ordered timeline, then readiness, the trigger,
the warehouse and the verdict. Plain text, aligned, at most 100 columns."""

from __future__ import annotations

import datetime as dt
import textwrap
import zoneinfo

from phase3ops.explain.story import DateStory, who

WIDTH = 100
_SUBJECT_WIDTH = 28


def render(story: DateStory) -> str:
    zone = zoneinfo.ZoneInfo(story.timezone)
    lines = [*_header(story, zone), "", *_timeline(story, zone), "", *_readiness(story), ""]
    if story.claim is not None:
        lines += [*_trigger(story), ""]
    lines += [*_warehouse(story), "", *_verdict(story)]
    return "\n".join(line.rstrip() for line in lines)


def _when(value: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%m-%d %H:%M:%S") if value else "(no time)".ljust(14)


def _header(story: DateStory, zone: zoneinfo.ZoneInfo) -> list[str]:
    claim = story.claim
    if claim is None and story.hold is not None and story.hold.state == "held":
        state = f"Phase 4 not triggered: held by the data gates ({', '.join(story.hold.blocked_by)})"
    elif claim is None:
        state = "Phase 4 not triggered"
    elif claim.is_published:
        degraded = ", degraded" if claim.decision.get("degraded") else ""
        state = (
            f"Phase 4 triggered once ({len(claim.messages)} messages, {claim.decision.get('trigger_reason')}{degraded})"
        )
        if claim.published_at:
            state += f", sent {_when(claim.published_at, zone)}, {_against(claim.published_at, story.deadline)}"
        sent = [f for f in story.follow_ups if f.is_published]
        if sent:
            state += f"; {len(sent)} follow-up{'s' if len(sent) != 1 else ''} for late data"
    else:
        state = f"trigger pending ({len(claim.published)} of {len(claim.messages)} messages confirmed)"
    games = f"{story.games} game{'s' if story.games != 1 else ''} scheduled"
    return [
        *_wrapped(f"Game date {story.game_date} ({story.timezone}): {state}"),
        *_wrapped(
            f"mode now: {story.mode_now or 'none'} · trigger deadline {_when(story.deadline, zone)[:11]} · {games} · "
            f"explained at {_when(story.now, zone)}"
        ),
    ]


def _against(sent: dt.datetime, deadline: dt.datetime) -> str:
    minutes = round(abs((deadline - sent).total_seconds()) / 60)
    span = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
    return f"{span} {'before' if sent <= deadline else 'after'} the deadline"


def _timeline(story: DateStory, zone: zoneinfo.ZoneInfo) -> list[str]:
    subject_width = min(_SUBJECT_WIDTH, max([len(e.subject) for e in story.events] + [len("what")]))
    text_width = WIDTH - 14 - 2 - subject_width - 2
    lines = [f"{'when':<14}  {'who':<{subject_width}}  what", f"{'-' * 14}  {'-' * subject_width}  {'-' * text_width}"]
    indent = " " * (14 + 2 + subject_width + 2)
    for event in story.events:
        wrapped = textwrap.wrap(event.text, text_width, break_on_hyphens=False, break_long_words=True) or [""]
        lines.append(f"{_when(event.at, zone)}  {event.subject[:subject_width]:<{subject_width}}  {wrapped[0]}")
        lines += [indent + rest for rest in wrapped[1:]]
    if not story.events:
        lines.append("(nothing happened yet)")
    return lines


def _readiness(story: DateStory) -> list[str]:
    lines = ["Readiness (the rules of pipeline.yaml over the counting completions; * the mode that applies now)"]
    width = max(len(j.mode) for j in story.judgements) + 1
    for judgement in story.judgements:
        verdict = "ready: " if judgement.readiness.ready else "not ready: "
        text = f"{judgement.mode + ('*' if judgement.applies_now else ''):<{width}}  {judgement.applies_to:<8}  {verdict}{judgement.readiness.reason}"
        lines += textwrap.wrap(text, WIDTH, subsequent_indent=" " * (width + 12))
    return lines


def _trigger(story: DateStory) -> list[str]:
    claim = story.claim
    assert claim is not None  # shown only for a date with a claim
    decision = claim.decision
    attempts = f", {claim.attempts} attempts" if claim.attempts > 1 else ""
    lines = _wrapped(
        f"Trigger {claim.trigger_id}: {claim.state}, decided under {decision.get('mode')} "
        f"({decision.get('trigger_reason')}), owner {who(claim.owner)}{attempts}"
    )
    # Where Phase 4's own record is readable (the local stand-in), whether it took each message.
    taken = story.phase4_taken
    trigger_ids = {m.part: m.trigger_id for m in claim.messages}
    lines.append(
        f"{'table':<28}  {'message id':<20}  {'confirmed by':<12}  receipts"
        + ("  Phase 4" if taken is not None else "")
    )
    lines.append(f"{'-' * 28}  {'-' * 20}  {'-' * 12}  {'-' * 8}" + ("  " + "-" * 9 if taken is not None else ""))
    for part in story.parts:
        receipts = str(len(part.receipt_message_ids)) if part.receipt_message_ids else "none"
        took = "" if taken is None else f"  {'took it' if taken.get(trigger_ids.get(part.part, '')) else 'not yet':<9}"
        lines.append(
            f"{part.part[:28]:<28}  {(part.message_id or '-')[:20]:<20}  {part.confirmed_by or 'not sent':<12}  {receipts:<8}{took}"
        )
    return lines


def _warehouse(story: DateStory) -> list[str]:
    lines = [
        "Warehouse: the date's rows per Phase 3 table, and its completion record",
        f"{'table':<28}  {'rows':>6}  {'duplicates':>10}  {'completion':<10}  {'reported':>8}  {'runs':>4}",
    ]
    lines.append(f"{'-' * 28}  {'-' * 6}  {'-' * 10}  {'-' * 10}  {'-' * 8}  {'-' * 4}")
    for table in story.tables:
        reported = "-" if table.reported_rows is None else str(table.reported_rows)
        lines.append(
            f"{table.table[:28]:<28}  {table.rows:>6}  {table.duplicates:>10}  {(table.status or 'none'):<10}  {reported:>8}  {table.runs:>4}"
        )
    return lines


def _verdict(story: DateStory) -> list[str]:
    lines = [textwrap.fill(f"note: {note}", WIDTH, subsequent_indent="      ") for note in story.notes]
    if not story.findings:
        return [*lines, "No findings: the date is consistent"]
    lines.append(f"{len(story.findings)} finding{'s' if len(story.findings) != 1 else ''}:")
    lines += [textwrap.fill(f"  - {finding}", WIDTH, subsequent_indent="    ") for finding in story.findings]
    return lines


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, subsequent_indent="  ", break_on_hyphens=False)
