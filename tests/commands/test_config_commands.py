"""`check-config` and `explain` helpers: the `--at` option as the tagging core's timestamp."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from monitor.commands.config_commands import at_timestamp
from monitor.errors import UserError
from tests.conftest import london


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("2026-09-30T08:30", "Europe/London", london(2026, 9, 30, 8, 30)),  # local, BST
        ("2026-12-01T08:30", "Europe/London", london(2026, 12, 1, 8, 30)),  # local, GMT
        ("2026-09-30", "Europe/London", london(2026, 9, 30)),  # a bare date is its start
        ("2026-09-30T08:30+00:00", "Europe/London", datetime(2026, 9, 30, 8, 30, tzinfo=UTC).timestamp()),
        ("2026-09-30T08:30Z", "Asia/Tokyo", datetime(2026, 9, 30, 8, 30, tzinfo=UTC).timestamp()),
    ],
)
def test_at_timestamp(text, tz, expected):
    assert at_timestamp(text, tz) == expected


def test_at_timestamp_defaults_to_now():
    before = time.time()
    assert before <= at_timestamp(None, "Europe/London") <= time.time()


def test_at_timestamp_bad_value_names_the_option():
    with pytest.raises(UserError, match=r"^--at: 'tomorrow' is not an ISO date or date-time"):
        at_timestamp("tomorrow", "Europe/London")
