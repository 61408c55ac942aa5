"""`phase3ops slo report` on synthetic histories: the numbers against hand-computed ones, a clean
month, a fast burn that holds in the report and in the deployed policy's conditions."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from phase3ops.orchestrator.completion_store import CompletionRecord
from phase3ops.orchestrator.readiness import decided_deadline
from phase3ops.orchestrator.trigger_claims import TriggerClaim
from phase3ops.slos.cloud_monitoring import burn_rate_policy_body
from phase3ops.slos.event_metrics import ORCHESTRATOR_HANDLER, StoredHistory
from phase3ops.slos.report import EXIT_CLEAN, EXIT_FINDINGS, as_json, evaluate_all, exit_code, render
from phase3ops.slos.specs import load_slo_specs
from phase3ops.spec.pipeline import load_pipeline_spec
from tests.support.repo_copy import REPO_ROOT

NOW = dt.datetime(2026, 3, 30, 12, 0, tzinfo=dt.UTC)
SPEC = load_pipeline_spec(REPO_ROOT / "pipeline.yaml")
SLOS = load_slo_specs(REPO_ROOT / "slos")


def trigger(game_date: dt.date, minutes_late: float = -120, degraded: bool = False) -> TriggerClaim:
    """A published overnight trigger, `minutes_late` after the overnight deadline (negative: before it)."""
    published_at = decided_deadline(SPEC, "overnight", game_date) + dt.timedelta(minutes=minutes_late)
    return TriggerClaim(
        game_date.isoformat(),
        game_date,
        f"p:{game_date}",
        "published",
        "delivery-1",
        1,
        60,
        900,
        {"mode": "overnight", "trigger_reason": "all_complete", "degraded": degraded},
        (),
        {},
        published_at=published_at.astimezone(dt.UTC),
    )


def record(game_date: dt.date, processor: str, runs: list[tuple[dt.datetime, str]]) -> CompletionRecord:
    return CompletionRecord(
        game_date,
        processor,
        runs[-1][1],
        True,
        "exec",
        "m",
        runs[-1][0],
        1,
        "t",
        runs=tuple(
            {"execution_id": f"{processor}-{i}", "status": status, "published_at": at, "outcome": "recorded"}
            for i, (at, status) in enumerate(runs)
        ),
    )


def refused(at: dt.datetime) -> dict:
    return {
        "handler": ORCHESTRATOR_HANDLER,
        "kind": "rejected",
        "rejected_at": at,
        "reason": "bad json",
        "game_date": None,
    }


def clean_month() -> StoredHistory:
    """28 game dates triggered two hours early on complete data; 40 successful runs a day; nothing refused."""
    days = [(NOW - dt.timedelta(days=d)).date() for d in range(2, 30)]
    runs = [
        record(
            day,
            f"proc{p}",
            [(dt.datetime.combine(day, dt.time(8 + p % 10), tzinfo=dt.UTC) + dt.timedelta(days=1), "success")],
        )
        for day in days
        for p in range(40)
    ]
    return StoredHistory(SPEC, claims=[trigger(day) for day in days], records=runs)


def status_of(statuses, name):
    return next(s for s in statuses if s.slo.name == name)


def test_a_clean_month_leaves_every_budget_whole():
    statuses = evaluate_all(SLOS, clean_month(), NOW)
    assert {s.slo.name: (s.state, s.budget_left) for s in statuses} == {
        "analytics-push-success": ("ok", 1.0),
        "orchestrator-delivery-success": ("ok", 1.0),
        "phase4-trigger-on-complete-data": ("ok", 1.0),
        "phase4-trigger-on-time": ("ok", 1.0),
    }
    on_time = status_of(statuses, "phase4-trigger-on-time")
    # The window starts 03-02 12:00 UTC; the first date's trigger went out 03-02 13:00 UTC (10:00 EST less two hours).
    assert on_time.window.total == 28
    assert all(not alert.firing for s in statuses for alert in s.alerts)
    assert exit_code(statuses) == EXIT_CLEAN
    assert "Every SLO within its budget" in render(statuses, NOW)


def test_the_numbers_match_hand_computed_ones():
    history = clean_month()
    # Two of the 28 dates late by 5 minutes: the last one (03-28, sent 03-29 14:05 UTC) and 03-18.
    late = {history.claims[0].game_date, history.claims[10].game_date}
    history.claims = [trigger(c.game_date, minutes_late=5) if c.game_date in late else c for c in history.claims]
    status = status_of(evaluate_all(SLOS, history, NOW), "phase4-trigger-on-time")
    # SLI 26/28; budget (1 - 0.95) x 28 = 1.4 bad events; 2 spent: 1 - 2/1.4 left.
    assert (status.window.total, status.window.bad) == (28, 2)
    assert status.sli == pytest.approx(26 / 28)
    assert status.budget_left == pytest.approx(1 - 2 / 1.4)
    assert status.state == "exhausted"
    [game_days] = status.alerts
    # Three days back (from 03-27 12:00 UTC, excluded): the triggers of 03-27 (sent 03-28 12:00) and of
    # 03-28 (late); 03-26's went out at 03-27 12:00, the window's open start. Six hours back: none.
    assert (game_days.long.total, game_days.long.bad) == (2, 1)
    assert game_days.long.burn_rate == pytest.approx((1 / 2) / 0.05)
    assert (game_days.short.total, game_days.short.bad) == (0, 0)
    assert game_days.short.burn_rate is None and not game_days.firing
    assert exit_code([status]) == EXIT_FINDINGS
    text = render([status], NOW)
    assert "[EXHAUSTED] Phase 4 triggered by its deadline" in text
    assert "SLI 92.9 % over 28 days (26 good of 28)" in text
    assert "error budget left -42.9 % (2 bad of 1.4 allowed)" in text
    assert "03-29 14:05 2026-03-28" in text  # the late date, listed


def test_an_event_exactly_one_window_ago_is_outside_it():
    history = StoredHistory(
        SPEC, records=[record(NOW.date(), "p", [(NOW - dt.timedelta(hours=1), "failed"), (NOW, "failed")])]
    )
    status = status_of(evaluate_all(SLOS, history, NOW), "analytics-push-success")
    fast = next(a for a in status.alerts if a.policy.name == "fast-burn")
    assert (fast.long.total, fast.long.bad) == (1, 1)  # (now - 1h, now]: the run at now counts, the one at now - 1h not
    assert status.window.total == 2


def fast_burn() -> StoredHistory:
    """The clean month, then the last hour's runs failing: 9 of 10 (the 3 in the last 5 minutes all)."""
    history = clean_month()
    times = [NOW - dt.timedelta(minutes=m) for m in (55, 50, 45, 40, 30, 20, 10, 4, 2, 0)]
    history.records.append(
        record(NOW.date(), "late", [(t, "success" if i == 0 else "failed") for i, t in enumerate(times)])
    )
    return history


def test_a_fast_burn_fires_in_the_report_and_in_the_deployed_conditions():
    history = fast_burn()
    status = status_of(evaluate_all(SLOS, history, NOW), "analytics-push-success")
    fast = next(a for a in status.alerts if a.policy.name == "fast-burn")
    assert fast.long.burn_rate == pytest.approx((9 / 10) / 0.05)  # 18
    assert fast.short.burn_rate == pytest.approx((3 / 3) / 0.05)  # 20
    assert fast.firing and status.state == "burning"
    # The policy Cloud Monitoring evaluates: each condition's window and threshold, on the same events.
    slo = SLOS.slo("analytics-push-success")
    body = burn_rate_policy_body("p", slo, SLOS.alert_policies["fast-burn"], "https://r")
    assert body["combiner"] == "AND"
    held = []
    for condition in body["conditions"]:
        threshold = condition["condition_threshold"]
        window = re.search(r'"(\d+)s"\)$', threshold["filter"])
        assert window is not None, threshold["filter"]
        seconds = int(window.group(1))
        burn = next(w for w in (fast.long, fast.short) if w.seconds == seconds).burn_rate
        assert threshold["comparison"] == "COMPARISON_GT"
        held.append(burn > threshold["threshold_value"])
    assert held == [True, True]
    assert "FIRING" in render([status], NOW) and '"firing": true' in as_json([status], NOW)


def test_a_fast_burn_that_stopped_does_not_fire():
    """The short window is what lets the page close: an hour burning past 14.4, its last 5 minutes clean."""
    history = clean_month()
    times = [NOW - dt.timedelta(minutes=m) for m in (55, 50, 45, 40, 35, 30, 20, 15, 10, 4, 2, 0)]
    history.records.append(
        record(NOW.date(), "late", [(t, "failed" if i < 9 else "success") for i, t in enumerate(times)])
    )
    fast = next(
        a
        for a in status_of(evaluate_all(SLOS, history, NOW), "analytics-push-success").alerts
        if a.policy.name == "fast-burn"
    )
    assert fast.long.burn_rate == pytest.approx((9 / 12) / 0.05)  # 15: past the threshold
    assert fast.short.burn_rate == 0 and not fast.firing


def test_refused_messages_count_against_delivery_success_and_other_handlers_do_not():
    history = clean_month()
    history.refused = [
        refused(NOW - dt.timedelta(hours=2)),
        {**refused(NOW - dt.timedelta(hours=1)), "handler": "phase4-trigger-receipts"},
    ]
    status = status_of(evaluate_all(SLOS, history, NOW), "orchestrator-delivery-success")
    # Runs: 40 a day for 27 dates, and 20 of the first date's (those after 12:00 UTC); one refusal.
    assert (status.window.bad, status.window.total) == (1, 40 * 27 + 20 + 1)


def test_degraded_triggers_count_against_complete_data_only():
    history = clean_month()
    history.claims[-1] = trigger(history.claims[-1].game_date, degraded=True)
    statuses = evaluate_all(SLOS, history, NOW)
    assert status_of(statuses, "phase4-trigger-on-complete-data").window.bad == 1
    assert status_of(statuses, "phase4-trigger-on-time").window.bad == 0


def test_no_events_is_no_data_not_a_full_budget():
    statuses = evaluate_all(SLOS, StoredHistory(SPEC), NOW)
    assert {s.state for s in statuses} == {"no data"}
    assert all(s.budget_left is None and s.sli is None for s in statuses)
    assert exit_code(statuses) == EXIT_CLEAN


def test_a_trigger_sent_at_its_deadline_is_on_time_and_a_minute_later_is_not():
    day = (NOW - dt.timedelta(days=3)).date()
    statuses = evaluate_all(SLOS, StoredHistory(SPEC, claims=[trigger(day, minutes_late=0)]), NOW)
    assert status_of(statuses, "phase4-trigger-on-time").window.bad == 0
    statuses = evaluate_all(SLOS, StoredHistory(SPEC, claims=[trigger(day, minutes_late=1)]), NOW)
    assert status_of(statuses, "phase4-trigger-on-time").window.bad == 1
