"""The chaos day's late scraper delivers only after the orchestrator decided the date.

Its data must be late for the trigger: on a busy machine the orchestrator may
still be evaluating the date's gates when the last first run is recorded, and
rows landing then would be part of the trigger (no follow-up), not late data.
"""

from __future__ import annotations

from phase3ops.local.run_day import the_date_is_decided


def test_nothing_decided_before_the_claim_exists():
    assert not the_date_is_decided(None, held=False)


def test_a_claim_still_evaluating_its_gates_has_not_decided():
    gating = {"state": "pending", "decision": {"gating": True}, "messages": []}
    assert not the_date_is_decided(gating, held=False)


def test_a_claim_with_its_messages_written_has_decided_sent_or_not():
    message = {"part": "player_game_summary", "trigger_id": "t"}
    assert the_date_is_decided({"state": "pending", "messages": [message]}, held=False)
    assert the_date_is_decided({"state": "published", "messages": [message]}, held=False)


def test_a_held_date_has_decided_with_no_claim():
    assert the_date_is_decided(None, held=True)
