"""The values a config is written in: weekdays, MACs, host:port, clock times and dates."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from monitor.config.values import MAC_RE, WEEKDAYS, normalise_mac, parse_clock, parse_day, split_hostport


def test_weekdays_run_monday_to_sunday_like_date_weekday():
    assert WEEKDAYS[date(2026, 9, 7).weekday()] == "monday"
    assert WEEKDAYS[date(2026, 9, 13).weekday()] == "sunday"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"),
        ("aabb.ccdd.eeff", "aa:bb:cc:dd:ee:ff"),
        ("aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"),
        ("3C52821000FF", "3c:52:82:10:00:ff"),
    ],
)
def test_normalise_mac_accepts_the_common_forms(raw, expected):
    assert normalise_mac(raw) == expected
    assert MAC_RE.match(normalise_mac(raw))


@pytest.mark.parametrize("raw", ["zz:zz", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", ""])
def test_normalise_mac_names_the_bad_value(raw):
    with pytest.raises(ValueError, match=f"^{raw!r} is not a MAC address$"):
        normalise_mac(raw)


@pytest.mark.parametrize(
    ("value", "allow_zero", "expected"),
    [
        ("127.0.0.1:9464", False, ("127.0.0.1", 9464)),
        ("[::1]:8080", False, ("::1", 8080)),
        ("gateway.local:65535", False, ("gateway.local", 65535)),
        ("127.0.0.1:0", True, ("127.0.0.1", 0)),
    ],
)
def test_split_hostport(value, allow_zero, expected):
    assert split_hostport(value, allow_zero=allow_zero) == expected


@pytest.mark.parametrize("value", ["localhost", ":8080", "host:", "host:http", "host:65536", "host:0"])
def test_split_hostport_names_the_bad_value(value):
    with pytest.raises(ValueError, match=f"^{value!r} is not host:port$"):
        split_hostport(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("09:00", time(9, 0)),
        ("9:05", time(9, 5)),
        (" 23:59 ", time(23, 59)),
        ("08:30:15", time(8, 30, 15)),
        (time(7, 0), time(7, 0)),
    ],
)
def test_parse_clock_accepts_written_times(value, expected):
    assert parse_clock(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (540, "540 is a number, not a time: YAML reads an unquoted 9:00 as 540; "
              'write it in quotes, "09:00"'),
        (630, "630 is a number, not a time: YAML reads an unquoted 10:30 as 630; "
              'write it in quotes, "10:30"'),
        (9, '9 is a number, not a time: write it in quotes as "HH:MM"'),
        (True, 'True is not a time: write it in quotes as "HH:MM"'),
        ("24:00", "'24:00' is not a time of day (\"HH:MM\", 00:00 to 23:59)"),
        ("9am", "'9am' is not a time of day (\"HH:MM\", 00:00 to 23:59)"),
    ],
)
def test_parse_clock_says_why_not(value, message):
    with pytest.raises(ValueError) as info:
        parse_clock(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2026-09-03", date(2026, 9, 3)), (date(2026, 9, 3), date(2026, 9, 3)),
     ("2028-02-29", date(2028, 2, 29))],
)
def test_parse_day_accepts_dates(value, expected):
    assert parse_day(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-02-30", "'2026-02-30' is not a date: day is out of range for month"),
        ("2026-13-01", "'2026-13-01' is not a date: month must be in 1..12"),
        ("2026-9-3", "'2026-9-3' is not a date (YYYY-MM-DD)"),
        (20260903, "20260903 is not a date (YYYY-MM-DD)"),
        (datetime(2026, 9, 3, 8, 0),
         "2026-09-03 08:00:00 has a time of day: give the date only (YYYY-MM-DD)"),
    ],
)
def test_parse_day_says_why_not(value, message):
    with pytest.raises(ValueError) as info:
        parse_day(value)
    assert str(info.value) == message
