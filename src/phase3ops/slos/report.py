"""`phase3ops slo report`: each SLI over its window, the error budget left and the burn rates
over every alert's windows, from what the pipeline stored.

The arithmetic is Cloud Monitoring's for a request-based SLO (Occurrences):

- SLI = good / total over the window (with bad events stated: (total - bad) / total);
- error budget = (1 - goal) x total; budget left = 1 - bad / budget, as
  select_slo_budget_fraction gives it (negative once overspent);
- burn rate over a lookback L = (bad_L / total_L) / (1 - goal), as select_slo_burn_rate
  gives it; a lookback without events has no burn rate, and its condition does not hold.

A burn-rate alert holds when both its long and its short window burn past the threshold, as
the deployed policy's two conditions (combiner AND) do.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from phase3ops.monitoring import durations
from phase3ops.slos.event_metrics import Event, StoredHistory, event_metric
from phase3ops.slos.specs import BurnRateAlert, Slo, SloSpecs

EXIT_CLEAN, EXIT_FINDINGS, EXIT_COULD_NOT_CHECK = 0, 1, 2


@dataclass(frozen=True)
class Window:
    seconds: int
    total: int
    bad: int
    goal: float

    @property
    def burn_rate(self) -> float | None:
        if self.total == 0:
            return None
        return (self.bad / self.total) / (1 - self.goal)


@dataclass(frozen=True)
class AlertState:
    policy: BurnRateAlert
    long: Window
    short: Window

    @property
    def firing(self) -> bool:
        return self.policy.fires(self.long.burn_rate, self.short.burn_rate)


@dataclass
class SloStatus:
    slo: Slo
    window: Window
    bad_events: list[Event] = field(default_factory=list)
    alerts: list[AlertState] = field(default_factory=list)

    @property
    def sli(self) -> float | None:
        return None if self.window.total == 0 else (self.window.total - self.window.bad) / self.window.total

    @property
    def budget_left(self) -> float | None:
        """The fraction of the error budget left: 1 untouched, 0 spent, negative overspent."""
        if self.window.total == 0:
            return None
        return 1 - self.window.bad / ((1 - self.slo.target) * self.window.total)

    @property
    def firing(self) -> list[AlertState]:
        return [alert for alert in self.alerts if alert.firing]

    @property
    def state(self) -> str:
        if self.window.total == 0:
            return "no data"
        if self.firing:
            return "burning"
        left = self.budget_left
        return "exhausted" if left is not None and left <= 0 else "ok"


def _events(history: StoredHistory, reference: str) -> list[Event]:
    metric = event_metric(reference)
    assert metric is not None, reference  # validate refuses an SLI on anything else
    return metric.stored(history)


def evaluate(
    slo: Slo, policies: dict[str, BurnRateAlert], history: StoredHistory, now: dt.datetime, days: int
) -> SloStatus:
    (_, numerator), (_, denominator) = slo.selectors()
    total_events = _events(history, denominator["metric"])
    counted = _events(history, numerator["metric"])
    if slo.counts_bad:
        bad_events = counted
    else:
        # Bad = the total's events that the good metric did not count (each event is one fact: same time, same subject).
        good = {(e.at, e.subject) for e in counted}
        bad_events = [e for e in total_events if (e.at, e.subject) not in good]

    def window(seconds: int) -> Window:
        start = now - dt.timedelta(seconds=seconds)
        return Window(
            seconds,
            sum(1 for e in total_events if start < e.at <= now),
            sum(1 for e in bad_events if start < e.at <= now),
            slo.target,
        )

    status = SloStatus(slo, window(days * 86400))
    start = now - dt.timedelta(days=days)
    status.bad_events = sorted((e for e in bad_events if start < e.at <= now), key=lambda e: e.at)
    for name in slo.alert_policy_names:
        policy = policies[name]
        status.alerts.append(
            AlertState(policy, window(policy.long_window_seconds), window(policy.short_window_seconds))
        )
    return status


def evaluate_all(specs: SloSpecs, history: StoredHistory, now: dt.datetime, days: int | None = None) -> list[SloStatus]:
    """`days`: the window to report over; by default each SLO's own."""
    return [evaluate(slo, specs.alert_policies, history, now, days or slo.window_days) for slo in specs.slos]


def exit_code(statuses: list[SloStatus]) -> int:
    return EXIT_FINDINGS if any(s.state in ("burning", "exhausted") for s in statuses) else EXIT_CLEAN


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _burn(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(statuses: list[SloStatus], now: dt.datetime, verbose: bool = False) -> str:
    lines = [f"SLO report at {now:%Y-%m-%d %H:%M} UTC"]
    for status in statuses:
        slo, window = status.slo, status.window
        lines.append("")
        lines.append(f"[{status.state.upper()}] {slo.display_name} ({slo.name})")
        lines.append(
            f"    SLI {_percent(status.sli)} over {window.seconds // 86400} days "
            f"({window.total - window.bad} good of {window.total}); objective {slo.target * 100:g} %"
        )
        if window.total:
            allowed = (1 - slo.target) * window.total
            lines.append(
                f"    error budget left {_percent(status.budget_left)} ({window.bad} bad of {allowed:.3g} allowed)"
            )
        for alert in status.alerts:
            policy = alert.policy
            op = ">=" if policy.inclusive else ">"
            lines.append(
                f"    {policy.name} ({policy.severity}, burn rate {op} {policy.threshold:g}): "
                f"{_burn(alert.long.burn_rate)} over {durations.human_seconds(alert.long.seconds)}, "
                f"{_burn(alert.short.burn_rate)} over {durations.human_seconds(alert.short.seconds)}"
                f"{'  FIRING' if alert.firing else ''}"
            )
        if verbose or status.state != "ok":
            shown = status.bad_events[-10:]
            if shown:
                more = len(status.bad_events) - len(shown)
                lines.append(f"    bad events{f' (last 10 of {len(status.bad_events)})' if more else ''}:")
                lines += [f"      {e.at:%m-%d %H:%M} {e.subject}" for e in shown]
    burning = [s for s in statuses if s.state in ("burning", "exhausted")]
    lines.append("")
    if burning:
        lines.append(
            f"{len(burning)} SLO{'s' if len(burning) != 1 else ''} need attention: "
            + ", ".join(s.slo.name for s in burning)
        )
        lines.append("See docs/runbook.md#slo-burn-rate-alerts")
    else:
        lines.append("Every SLO within its budget")
    return "\n".join(lines)


def as_json(statuses: list[SloStatus], now: dt.datetime) -> str:
    def one(status: SloStatus) -> dict[str, Any]:
        window = status.window
        return {
            "name": status.slo.name,
            "state": status.state,
            "objective": status.slo.target,
            "window_days": window.seconds // 86400,
            "good": window.total - window.bad,
            "bad": window.bad,
            "total": window.total,
            "sli": status.sli,
            "budget_left": status.budget_left,
            "alerts": [
                {
                    "policy": a.policy.name,
                    "severity": a.policy.severity,
                    "threshold": a.policy.threshold,
                    "long_window_seconds": a.long.seconds,
                    "long_burn_rate": a.long.burn_rate,
                    "short_window_seconds": a.short.seconds,
                    "short_burn_rate": a.short.burn_rate,
                    "firing": a.firing,
                }
                for a in status.alerts
            ],
            "bad_events": [{"at": e.at.isoformat(), "subject": e.subject} for e in status.bad_events],
        }

    return json.dumps({"at": now.isoformat(), "slos": [one(s) for s in statuses]}, indent=2)
