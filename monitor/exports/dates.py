"""The days an export covers: ISO dates or words a timer can repeat, turned into local-time bounds."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.exports.request import ExportError

RELATIVE_DAYS = re.compile(r"^(\d{1,4})-days?-ago$")


def parse_day(text: str, today: date) -> date:
    """An ISO date, or `today`, `yesterday`, `N-days-ago` (for timers that run unattended)."""
    value = text.strip().lower()
    if value == "today":
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    m = RELATIVE_DAYS.match(value)
    if m:
        return today - timedelta(days=int(m.group(1)))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ExportError(f"{text!r} is not a date: give YYYY-MM-DD, today, yesterday or N-days-ago") \
            from None


def last_week(today: date) -> tuple[date, date]:
    """Monday to Sunday of the week before the one `today` is in."""
    monday = today - timedelta(days=today.weekday() + 7)
    return monday, monday + timedelta(days=6)


def day_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[first 00:00, the day after last 00:00) in local time: both days are included."""
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    after = last + timedelta(days=1)
    return start, datetime(after.year, after.month, after.day, tzinfo=tz)


__all__ = ["day_bounds", "last_week", "parse_day"]
