"""SessionFilter: which sessions to read, as one portable WHERE clause over indexed columns."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.store.filter import EVERY_SESSION, SessionFilter, epoch

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("where", "clause", "params"),
    [
        (EVERY_SESSION, "", []),
        (SessionFilter(school="oak"), " WHERE school = ?", ["oak"]),
        (SessionFilter(flagged=True), " WHERE flagged = ?", [1]),
        (SessionFilter(flagged=False), " WHERE flagged = ?", [0]),
        (SessionFilter(device="D1", owner="S1"), " WHERE device = ? AND owner = ?", ["D1", "S1"]),
        (SessionFilter(platform="tiktok"), " WHERE platform = ?", ["tiktok"]),
        (SessionFilter(since=10), " WHERE first_seen >= ?", [10.0]),
        (SessionFilter(until=20.5), " WHERE first_seen < ?", [20.5]),
        (SessionFilter(school="oak", flagged=True, since=1, until=2),
         " WHERE school = ? AND flagged = ? AND first_seen >= ? AND first_seen < ?", ["oak", 1, 1.0, 2.0]),
        (SessionFilter(limit=5), "", []),  # the limit is the caller's: it needs an ORDER BY first
    ],
)
def test_sql(where, clause, params):
    assert where.sql() == (clause, params)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (5, 5.0),
        (1.5, 1.5),
        (datetime(2026, 9, 21, 0, 0, tzinfo=LONDON), datetime(2026, 9, 20, 23, 0, tzinfo=UTC).timestamp()),
    ],
)
def test_epoch(value, expected):
    assert epoch(value) == expected


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="naive datetime"):
        SessionFilter(since=datetime(2026, 9, 21)).sql()


def test_filters_are_values():
    assert SessionFilter(school="oak") == SessionFilter(school="oak")
    assert len({SessionFilter(school="oak"), SessionFilter(school="oak"), EVERY_SESSION}) == 2
