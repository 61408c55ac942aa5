"""The text of `phase3ops explain`: aligned, at most 100 columns, and honest about what is pending.

The stories here are built from the same dataclasses `read_story` fills from
Firestore; the integration tests read real ones (tests/integration/test_explain.py).
"""

from __future__ import annotations

import datetime as dt

from phase3ops.explain.story import CLAIM, RUN, DateStory, Event, ModeJudgement, TableState, TriggerPart, who
from phase3ops.explain.timeline import WIDTH, render
from phase3ops.orchestrator.phase4_trigger import TriggerMessage
from phase3ops.orchestrator.readiness import Readiness
from phase3ops.orchestrator.trigger_claims import PublishedPart, TriggerClaim

UTC = dt.UTC
DAY = dt.date(2026, 11, 27)
DEADLINE = dt.datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # 10:00 in New York


def story(claim: TriggerClaim | None = None, findings=(), notes=(), events=()) -> DateStory:
    return DateStory(
        game_date=DAY,
        timezone="America/New_York",
        now=dt.datetime(2026, 11, 28, 16, 0, tzinfo=UTC),
        deadline=DEADLINE,
        mode_now="overnight",
        games=1,
        events=list(events),
        claim=claim,
        findings=list(findings),
        notes=list(notes),
        judgements=[
            ModeJudgement(
                "overnight",
                "past",
                True,
                Readiness(
                    "overnight",
                    False,
                    (),
                    ("upcoming_player_game_context",),
                    "overnight waiting: 4/5 of overnight's processors, critical upcoming_player_game_context missing",
                ),
            )
        ],
        tables=[TableState("player_game_summary", "player_game_summary", 26, 0, "success", True, 26, 1)],
    )


def claim(published: dict[str, PublishedPart], state: str, published_at=None) -> TriggerClaim:
    messages = tuple(
        TriggerMessage(t, f"p:{DAY}:{t}", DAY.isoformat(), {})
        for t in ("player_game_summary", "team_offense_game_summary")
    )
    return TriggerClaim(
        DAY.isoformat(),
        DAY,
        f"p:{DAY}",
        state,
        "delivery-1234-0a1b2c3d",
        1,
        60,
        900,
        {"mode": "overnight", "trigger_reason": "all_complete"},
        messages,
        published,
        claimed_at=DEADLINE - dt.timedelta(hours=3),
        published_at=published_at,
    )


def test_a_long_event_wraps_under_its_own_column_and_nothing_passes_100_columns():
    long = Event(
        DEADLINE,
        "upcoming_player_game_context",
        RUN,
        "success, 130 rows, lock token 12 held by vm:0123456789ab, took 1.2 s: "
        "recorded (replaces the earlier run) (run upcoming_player_game_context-20261127-0123456789ab)",
    )
    text = render(story(events=[long]))
    lines = text.splitlines()
    assert max(map(len, lines)) <= WIDTH
    first = next(i for i, line in enumerate(lines) if line.startswith("11-28 10:00:00"))
    assert lines[first].startswith("11-28 10:00:00  upcoming_player_game_context  success, 130 rows")
    assert lines[first + 1].startswith(" " * 46) and lines[first + 1].strip()  # the rest, under "what"
    assert "upcoming_player_game_context-20261127-0123456789ab)" in text.replace("\n" + " " * 46, " ")


def test_times_are_told_in_the_pipeline_time_zone_against_the_deadline():
    sent = claim(
        {
            "player_game_summary": PublishedPart("1", "publisher"),
            "team_offense_game_summary": PublishedPart("2", "receipt"),
        },
        "published",
        published_at=DEADLINE - dt.timedelta(minutes=75),
    )
    lines = render(story(sent)).splitlines()
    assert (
        lines[0] == "Game date 2026-11-27 (America/New_York): Phase 4 triggered once (2 messages, all_complete), sent"
    )
    assert lines[1] == "  11-28 08:45:00, 1 h 15 min before the deadline"
    late = claim(sent.published, "published", published_at=DEADLINE + dt.timedelta(minutes=5))
    assert "11-28 10:05:00, 5 min after the deadline" in render(story(late))


def test_a_pending_trigger_shows_what_was_not_sent_and_the_verdict_lists_findings():
    pending = claim({"player_game_summary": PublishedPart("1", "publisher")}, "pending")
    text = render(
        story(
            pending,
            findings=["the trigger claim is pending (1 of 2 messages confirmed, owner delivery 1234) for 180 min"],
            events=[Event(DEADLINE, "trigger", CLAIM, "claimed by delivery 1234")],
        )
    )
    story_with_parts = story(pending)
    story_with_parts.parts = [
        TriggerPart("player_game_summary", "1", "publisher", ("1",)),
        TriggerPart("team_offense_game_summary", None, None, ()),
    ]
    assert "trigger pending (1 of 2 messages confirmed)" in text.splitlines()[0]
    assert text.splitlines()[-2:] == [
        "1 finding:",
        "  - the trigger claim is pending (1 of 2 messages confirmed, owner delivery 1234) for 180 min",
    ]
    table = render(story_with_parts)
    assert "team_offense_game_summary     -                     not sent      none" in table
    assert "player_game_summary           1                     publisher     1" in table


def test_claim_owners_read_as_deliveries_or_as_themselves():
    assert who("delivery-1234567-0a1b2c3d") == "delivery 1234567 (handling 0a1b2c3d)"
    assert who("delivery-m-last-0a1b2c3d") == "delivery m-last (handling 0a1b2c3d)"
    assert who("reconcile:host-42") == "reconcile:host-42"
    assert who(None) == "None"


def test_a_date_with_no_events_says_so_and_notes_come_before_the_verdict():
    text = render(story(notes=["not triggered yet: overnight waiting"]))
    assert "(nothing happened yet)" in text
    assert text.splitlines()[-2:] == [
        "note: not triggered yet: overnight waiting",
        "No findings: the date is consistent",
    ]
