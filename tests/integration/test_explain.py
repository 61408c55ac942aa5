"""`phase3ops explain DATE` on dates the real pipeline built: the local environment's
analytics service, orchestrator and receipts recorder on the emulators.

One environment, five dates: a clean day, a chaos day (its text checked line
by line), a date with a rejected message, an incomplete date, and a date
nothing ran for.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.support.cli_process import phase3ops, run_in_process, state_of
from tests.support.completions import encode
from tests.support.reference_messages import reference_completion

pytestmark = [
    pytest.mark.emulators,
    pytest.mark.minutes_long(seconds=110),
    # One local environment serves the whole file (a module fixture): its tests stay on one worker.
    pytest.mark.xdist_group("explain-local-environment"),
]
CLEAN, CHAOS, REJECTED, INCOMPLETE, NOTHING = "2026-11-18", "2026-11-17", "2026-11-16", "2026-11-15", "2026-11-14"
TABLES = [
    "player_game_summary",
    "team_offense_game_summary",
    "team_defense_game_summary",
    "upcoming_player_game_context",
    "upcoming_team_game_context",
]
WHEN = r"\d\d-\d\d \d\d:\d\d:\d\d"


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("explain") / "local"
    up = phase3ops("local", "up", "--run-dir", str(run_dir))
    assert up.returncode == 0, up.stdout + up.stderr
    yield run_dir
    phase3ops("local", "down", "--run-dir", str(run_dir))


def explain(run_dir, date: str, *extra: str):
    """In this process (a second of importing less a call, and some are polled): one case runs it as
    the operator does, a process of its own (`test_a_clean_day_tells_one_trigger_and_no_findings`)."""
    return run_in_process("explain", date, "--local", str(run_dir), *extra)


def publish(run_dir, monkeypatch, payloads: list[bytes]) -> None:
    """Publish completion messages as a producer would, to the local completion topic."""
    import google.cloud.pubsub_v1 as pubsub_v1

    state = state_of(run_dir)
    for key, value in _env(run_dir).items():
        monkeypatch.setenv(key, value)
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(state["project"], "nba-phase3-analytics-complete")
    for payload in payloads:
        publisher.publish(topic, payload).result(timeout=30)


def _env(run_dir) -> dict[str, str]:
    exports = phase3ops("local", "env", "--run-dir", str(run_dir)).stdout
    return dict(re.findall(r"export (\w+)=(\S+)", exports))


def found(pattern: str, text: str) -> str:
    """The first group of `pattern`'s first match in `text`, which must have one."""
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return match.group(1)


def events_of(timeline: list[str]) -> list[str]:
    """The timeline's events as "subject: text", each wrapped event joined back into one line."""
    events: list[str] = []
    for line in timeline:
        if line.startswith(" " * 46):
            events[-1] += " " + line.strip()
            continue
        event = re.fullmatch(rf"{WHEN}  (\S+) +(\S.*)", line)
        assert event, line
        subject, text = event.groups()
        events.append(f"{subject}: {text}")
    return events


def _undated(lines: list[str]) -> list[str]:
    return [re.sub(r"explained at .*", "explained at", line) for line in lines]


def wait_for(condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_a_clean_day_tells_one_trigger_and_no_findings(local):
    day = phase3ops("local", "run-day", "--run-dir", str(local), "--date", CLEAN, "--games", "2")
    assert day.returncode == 0, day.stdout[-3000:]
    told = phase3ops("explain", CLEAN, "--local", str(local))
    assert told.returncode == 0, told.stdout + told.stderr
    lines = told.stdout.splitlines()
    header = " ".join(line.strip() for line in lines[:2])
    assert re.fullmatch(
        rf"Game date {CLEAN} \(America/New_York\): Phase 4 triggered once \(5 messages, (all_complete|critical_plus_majority_\d+pct)\), "
        rf"sent {WHEN}, \d+ h \d\d min after the deadline",
        header,
    ), header
    assert lines[-1] == "No findings: the date is consistent"
    assert max(len(line) for line in lines) <= 100
    story = json.loads(explain(local, CLEAN, "--json").stdout)
    assert story["trigger"]["state"] == "published" and story["findings"] == []
    assert [p["receipt_message_ids"] for p in story["trigger"]["parts"]] == [
        [p["message_id"]] for p in story["trigger"]["parts"]
    ]
    assert {t["table"]: (t["rows"], t["duplicates"], t["status"]) for t in story["tables"]} == {
        "player_game_summary": (52, 0, "success"),
        "team_offense_game_summary": (4, 0, "success"),
        "team_defense_game_summary": (4, 0, "success"),
        "upcoming_player_game_context": (52, 0, "success"),
        "upcoming_team_game_context": (4, 0, "success"),
    }


def test_the_chaos_day_ends_with_its_own_story_line_by_line(local):
    day = phase3ops("local", "run-day", "--run-dir", str(local), "--date", CHAOS, "--games", "3", "--chaos")
    assert day.returncode == 0, day.stdout[-4000:]
    marker = f"The story of {CHAOS}, from what the pipeline stored (phase3ops explain {CHAOS} --local):"
    assert marker in day.stdout
    told = day.stdout.split(marker, 1)[1].strip("\n").splitlines()
    again = explain(local, CHAOS)  # the command tells the same story (only "explained at" moves on)
    assert again.returncode == 0
    assert _undated(again.stdout.strip("\n").splitlines()) == _undated(told)
    assert max(len(line) for line in told) <= 100

    # The header: the date is days old, so its deadline had passed while the team tables were empty (the late
    # scraper): triggered degraded at once, then one follow-up per team table when their rows landed.
    blank = told.index("")
    header = " ".join(line.strip() for line in told[:blank])
    assert re.fullmatch(
        rf"Game date {CHAOS} \(America/New_York\): Phase 4 triggered once \(5 messages, critical_plus_majority_60pct, "
        rf"degraded\), sent {WHEN}, \d+ h \d\d min after the deadline; 2 follow-ups for late data "
        rf"mode now: overnight · trigger deadline 11-18 10:00 · 3 games scheduled · explained at {WHEN}",
        header,
    ), header
    assert told[blank + 1] == "when".ljust(14) + "  " + "who".ljust(28) + "  what"
    assert told[blank + 2] == "-" * 14 + "  " + "-" * 28 + "  " + "-" * 54

    # The timeline: every line a time, a subject and text, or the wrapped rest of one; in time order.
    end = told.index("", blank + 3)
    timeline = told[blank + 3 : end]
    events = events_of(timeline)
    times = [line[:14] for line in timeline if not line.startswith(" ")]
    assert times == sorted(times)

    def position(pattern: str) -> int:
        found = [i for i, event in enumerate(events) if re.fullmatch(pattern, event)]
        assert found, f"no event matches {pattern!r} in:\n" + "\n".join(events)
        return found[0]

    # The killed processor instance: granted the lock, died; the service's run took the lock over.
    doomed = position(
        r"player_game_summary: lock token (\d+) granted to chaos-doomed-instance: no completion came from it"
    )
    takeover = position(
        r"player_game_summary: lock token \d+ taken over by vm:\w+ from chaos-doomed-instance \(its lease ran out\)"
    )
    pgs_run = position(
        r"player_game_summary: success, 78 rows, lock token \d+ held by vm:\w+, took [\d.]+ s: recorded .*\(run player_game_summary-\S+\)"
    )
    # The killed orchestrator: claimed, sent 2 of 5, died; the next delivery found 2 receipts and sent the other 3.
    claimed = position(
        r"trigger: claimed by delivery \d+ \(handling \w+\): overnight, critical_plus_majority_60pct on 3 completions; 5 Phase 4 messages"
    )
    confirmed = position(
        r"trigger: \w+, \w+ confirmed sent by their receipts \(found by delivery \d+ \(handling \w+\)\): not re-sent"
    )
    taken = position(
        r"trigger: claim taken over by delivery \d+ \(handling \w+\) from delivery \d+ \(handling \w+\) \(attempt 2\): its lease and "
        r"the receipt grace ran out"
    )
    complete = position(r"trigger: trigger complete: all 5 messages sent")
    assert doomed < takeover < pgs_run and claimed < confirmed and claimed < taken < complete
    # The late scraper: the team processors' successful runs came after the trigger, and each table's new
    # rows earned Phase 4 one follow-up.
    for table in ("team_offense_game_summary", "team_defense_game_summary"):
        late = position(
            rf"{table}: success, 6 rows, lock token \d+ held by vm:\w+, took [\d.]+ s: late, after the trigger; recorded .*"
        )
        follow_up = position(rf"trigger: follow-up for {table} sent \(\d+, confirmed by publisher\)")
        assert claimed < late and complete < follow_up
    # Phase 4 got one message per table and one per follow-up, each seen once by the receipts recorder.
    receipts = [e for e in events if e.startswith("trigger: receipt: the Phase 4 topic carried")]
    assert sorted(found(r"for (\w+)$", e) for e in receipts) == sorted([*TABLES, *TABLES[1:3]])
    assert not [e for e in events if "DUPLICATE" in e]
    # Locally, Phase 4's own ledger (the stand-in's) says it took every message once: 5 and the 2 follow-ups.
    took = [e for e in events if "Phase 4 (stand-in) took nba-phase3-to-phase4:" in e]  # ids may wrap across lines
    assert len(took) == len(TABLES) + 2, "\n".join(events)

    # The summaries after the timeline, line by line.
    rest = told[end + 1 :]
    assert (
        rest[0] == "Readiness (the rules of pipeline.yaml over the counting completions; * the mode that applies now)"
    )
    assert rest[1] == "overnight*  past      ready: all_complete: 5/5 of overnight's processors"
    assert rest[2] == "same_day    today     ready: all_complete: 2/2 of same_day's processors"
    assert rest[3] == "tomorrow    tomorrow  ready: all_complete: 2/2 of tomorrow's processors"
    assert rest[4] == ""
    assert re.fullmatch(rf"Trigger nba-phase3-to-phase4:{CHAOS}: published, decided under overnight", rest[5])
    assert re.fullmatch(r"  \(critical_plus_majority_60pct\), owner delivery \d+ \(handling \w+\), 2 attempts", rest[6])
    assert rest[7] == "table                         message id            confirmed by  receipts  Phase 4"
    assert all(line.endswith("took it") for line in rest[9:14])
    parts = {line.split()[0]: line.split()[2:4] for line in rest[9:14]}
    assert {table: by for table, (by, _) in parts.items()} == {
        "player_game_summary": "receipt",
        "team_offense_game_summary": "receipt",
        "team_defense_game_summary": "publisher",
        "upcoming_player_game_context": "publisher",
        "upcoming_team_game_context": "publisher",
    }
    assert {receipts for _, receipts in parts.values()} == {"1"}
    assert rest[14] == ""
    assert rest[15] == "Warehouse: the date's rows per Phase 3 table, and its completion record"
    rows = {line.split()[0]: line.split()[1:5] for line in rest[18:23]}
    assert rows == {
        "player_game_summary": ["78", "0", "success", "78"],
        "team_offense_game_summary": ["6", "0", "success", "6"],
        "team_defense_game_summary": ["6", "0", "success", "6"],
        "upcoming_player_game_context": ["78", "0", "success", "78"],
        "upcoming_team_game_context": ["6", "0", "success", "6"],
    }
    assert rest[23:] == [
        "",
        "note: triggered degraded at its deadline: data_exists, record_counts, game_count still failed;",
        "      follow-ups (in the timeline) told Phase 4 of the data that came later",
        "No findings: the date is consistent",
    ]


def test_a_rejected_message_is_part_of_the_story_and_a_finding(local, monkeypatch):
    assert phase3ops("local", "run-day", "--run-dir", str(local), "--date", REJECTED, "--games", "2").returncode == 0
    bad = {**reference_completion("player_game_summary", REJECTED), "status": "finished"}
    publish(local, monkeypatch, [encode(bad)])
    told = wait_for(lambda: (r := explain(local, REJECTED)).returncode == 1 and r)
    lines = told.stdout.splitlines()
    events = events_of(lines[lines.index("") + 3 : lines.index("", lines.index("") + 1)])
    message_id = found(r"message (\d+) rejected", told.stdout)
    assert [e for e in events if "rejected" in e] == [
        f"PlayerGameSummaryProcessor: message {message_id} rejected (status): "
        "status: 'finished' is not one of ['success', 'partial', 'failed', 'no_data', 'skipped']"
    ]
    assert "1 finding:" in told.stdout and "1 rejected message(s) name this date" in told.stdout
    assert json.loads(explain(local, REJECTED, "--json").stdout)["rejected_messages"] == 1


def test_an_incomplete_date_says_what_is_missing(local, monkeypatch):
    publish(
        local,
        monkeypatch,
        [
            encode(reference_completion(name, INCOMPLETE))
            for name in ("team_offense_game_summary", "upcoming_team_game_context")
        ],
    )
    # Until both completions are in the story (every table is named in the warehouse's table from the start).
    told = wait_for(lambda: (r := explain(local, INCOMPLETE)).stdout.count(": recorded (run ") == 2 and r)
    assert told.returncode == 1, told.stdout + told.stderr
    lines = told.stdout.splitlines()
    assert lines[0] == f"Game date {INCOMPLETE} (America/New_York): Phase 4 not triggered"
    assert "overnight*  past      not ready: overnight waiting: 2/5 of overnight's processors, critical" in told.stdout
    assert "past its trigger deadline and not ready" in told.stdout
    assert "Trigger " not in told.stdout


def test_a_date_nothing_ran_for_is_a_clear_exit_2(local):
    told = explain(local, NOTHING)
    assert told.returncode == 2 and told.stdout == ""
    assert f"nothing is stored for {NOTHING}" in told.stderr and "Traceback" not in told.stderr
    bad = explain(local, "2026-02-30")
    assert bad.returncode == 2 and "2026-02-30" in bad.stderr and "Traceback" not in bad.stderr
