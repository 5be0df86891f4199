"""Export dates: ISO or words a timer can repeat, and the local-time bounds of whole days."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.exports.dates import day_bounds, last_week, parse_day
from monitor.exports.request import ExportError

LONDON = ZoneInfo("Europe/London")


TODAY = date(2026, 11, 26)  # a Thursday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-02", date(2026, 11, 2)),
        ("today", TODAY),
        ("yesterday", date(2026, 11, 25)),
        ("7-days-ago", date(2026, 11, 19)),
        ("1-day-ago", date(2026, 11, 25)),
        (" 2026-09-01 ", date(2026, 9, 1)),
    ],
)
def test_parse_day(text, expected):
    assert parse_day(text, TODAY) == expected


@pytest.mark.parametrize("text", ["2026-13-01", "last tuesday", "-3-days-ago", ""])
def test_parse_day_refuses(text):
    with pytest.raises(ExportError, match="is not a date"):
        parse_day(text, TODAY)


@pytest.mark.parametrize(
    ("today", "monday", "sunday"),
    [
        (date(2026, 11, 26), date(2026, 11, 16), date(2026, 11, 22)),  # a Thursday
        (date(2026, 11, 23), date(2026, 11, 16), date(2026, 11, 22)),  # a Monday: the week before
        (date(2026, 11, 29), date(2026, 11, 16), date(2026, 11, 22)),  # a Sunday
    ],
)
def test_last_week(today, monday, sunday):
    assert last_week(today) == (monday, sunday)


@pytest.mark.parametrize(
    ("first", "last", "hours"),
    [
        (date(2026, 11, 16), date(2026, 11, 22), 7 * 24),  # an ordinary week
        (date(2026, 3, 29), date(2026, 3, 29), 23),  # clocks go forward: a 23-hour day
        (date(2026, 10, 25), date(2026, 10, 25), 25),  # clocks go back: a 25-hour day
        (date(2026, 12, 31), date(2027, 1, 1), 48),  # across a year
    ],
)
def test_day_bounds_cover_whole_local_days(first, last, hours):
    start, end = day_bounds(first, last, LONDON)
    assert (start.hour, start.minute, end.hour, end.minute) == (0, 0, 0, 0)
    assert start.date() == first and (end.date() - last).days == 1
    assert (end.timestamp() - start.timestamp()) / 3600 == hours


def test_day_bounds_are_aware():
    start, end = day_bounds(date(2026, 6, 1), date(2026, 6, 1), LONDON)
    assert start == datetime(2026, 5, 31, 23, 0, tzinfo=ZoneInfo("UTC"))  # BST midnight
    assert end.utcoffset() is not None
