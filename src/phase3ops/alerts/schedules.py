"""When the scheduled checks run: the longest gap between two runs of a cron schedule.

An absence condition on a metric only a scheduled job writes must stay quiet
between two runs of that job, or it fires every day. Cloud Scheduler reads a
unix-cron schedule (`minute hour day-of-month month day-of-week`) in the
job's time zone, so the gap between two daily runs is 24 hours, except on
the day the clocks change (25 hours in the autumn in America/New_York).

This reads the unix-cron forms (`*`, numbers, `a-b`, `*/n`, `a-b/n`, lists,
month and day names) and walks one year of runs in the time zone.
"""

from __future__ import annotations

import datetime as dt
import itertools
from functools import lru_cache
from zoneinfo import ZoneInfo

# A run of a scheduled check may end this long after it was scheduled: the
# job's task timeout (1800 s) once retried (max_retries 1), as
# infra/components/scheduled_checks.py deploys it. A metric the job writes
# arrives up to this late.
RUN_ALLOWANCE_SECONDS = 2 * 1800

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_NAMES = {
    3: {
        m: i
        for i, m in enumerate(
            ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
        )
    },
    4: {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
}
# One year from a fixed date, so both clock changes of any northern or southern time zone are inside.
_START = dt.date(2025, 1, 1)
_DAYS = 366 + 7


class ScheduleError(ValueError):
    pass


def _number(text: str, field: int) -> int:
    names = _NAMES.get(field, {})
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ScheduleError(f"{text!r} is not a {_FIELDS[field][0]}")
    return int(text)


def _values(text: str, field: int) -> tuple[set[int], bool]:
    """The values a field admits, and whether it is restricted (not `*`)."""
    name, low, high = _FIELDS[field]
    found: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleError(f"{part!r}: the step of a {name} must be a positive number")
        if body == "*":
            first, last = low, high if field != 4 else 6
        elif "-" in body:
            first_text, _, last_text = body.partition("-")
            first, last = _number(first_text, field), _number(last_text, field)
        else:
            first = last = _number(body, field)
            if step:
                last = high
        if not (low <= first <= high and low <= last <= high) or first > last:
            raise ScheduleError(f"{part!r} is not a {name} ({low}-{high})")
        found.update(range(first, last + 1, step or 1))
    if field == 4 and 7 in found:
        found = (found - {7}) | {0}
    return found, text != "*"


@lru_cache(maxsize=64)
def run_times(schedule: str, timezone: str) -> tuple[dt.datetime, ...]:
    """A year of the schedule's runs, in UTC, in order."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"{schedule!r} is not a cron schedule of five fields (minute hour day-of-month month day-of-week)"
        )
    (minutes, _), (hours, _), (days, days_set), (months, _), (weekdays, weekdays_set) = (
        _values(f, i) for i, f in enumerate(fields)
    )
    zone = ZoneInfo(timezone)
    runs = set()
    for offset in range(_DAYS):
        day = _START + dt.timedelta(days=offset)
        if day.month not in months:
            continue
        by_day, by_weekday = day.day in days, (day.isoweekday() % 7) in weekdays
        # unix-cron: when both day fields are restricted, either one matching is enough.
        if not ((by_day or by_weekday) if days_set and weekdays_set else (by_day and by_weekday)):
            continue
        for hour in hours:
            for minute in minutes:
                local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                runs.add(local.astimezone(dt.UTC))
    return tuple(sorted(runs))


def longest_gap_seconds(schedules: tuple[str, ...], timezone: str) -> int:
    """The longest time between two runs of any of the schedules (one job or several writing the same metric)."""
    runs = sorted({run for schedule in schedules for run in run_times(schedule, timezone)})
    if len(runs) < 2:
        raise ScheduleError(f"{', '.join(schedules)} runs at most once a year")
    return int(max((later - earlier).total_seconds() for earlier, later in itertools.pairwise(runs)))
