"""Period lookup at the edges: DST, boundaries, half-term, INSET, bank holiday, weekend, Week A/B."""

from __future__ import annotations

from datetime import date

import pytest

from monitor.config.loader import load_config
from monitor.tagging.timetable import SchoolClock, StaffTimetables
from tests.conftest import LONDON, london


@pytest.fixture(scope="module")
def clocks(example_config):
    return {s.id: SchoolClock(s, LONDON) for s in example_config.schools}


# (school, local wall-clock time, expected period, expected kind, expected day status)
CASES = [
    # oak-primary, a normal Monday in term (30 Nov 2026)
    ("oak-primary", (2026, 11, 30, 8, 29, 59), None, "closed", "outside-school-day"),
    ("oak-primary", (2026, 11, 30, 8, 30), None, "non-contact", "school-day"),  # day begun, no period
    ("oak-primary", (2026, 11, 30, 8, 45), "Registration", "contact", "school-day"),  # exactly at start
    ("oak-primary", (2026, 11, 30, 10, 29, 59), "Lesson 1", "contact", "school-day"),
    ("oak-primary", (2026, 11, 30, 10, 30), "Break", "non-contact", "school-day"),  # exactly at end
    ("oak-primary", (2026, 11, 30, 12, 30), "Lunch", "non-contact", "school-day"),
    ("oak-primary", (2026, 11, 30, 15, 59, 59), "After school", "non-contact", "school-day"),
    ("oak-primary", (2026, 11, 30, 16, 0), None, "closed", "outside-school-day"),
    # weekend, half-term, INSET, bank holiday, closure, holidays
    ("oak-primary", (2026, 11, 28, 10, 0), None, "closed", "weekend"),
    ("oak-primary", (2026, 10, 28, 10, 0), None, "closed", "half-term"),
    ("oak-primary", (2026, 11, 27, 10, 0), None, "closed", "inset"),
    ("oak-primary", (2027, 5, 3, 10, 0), None, "closed", "bank-holiday"),  # early May bank holiday
    ("oak-primary", (2027, 5, 10, 10, 0), None, "closed", "closure"),
    ("oak-primary", (2026, 12, 23, 10, 0), None, "closed", "holiday"),
    ("oak-primary", (2027, 5, 31, 10, 0), None, "closed", "half-term"),  # spring bank holiday in half-term
    # the Monday after each DST change: the same wall-clock period whatever the UTC offset
    ("oak-primary", (2026, 11, 2, 9, 15), "Lesson 1", "contact", "school-day"),  # GMT
    ("oak-primary", (2027, 3, 29, 9, 15), None, "closed", "holiday"),  # Easter holiday
    ("oak-primary", (2027, 4, 12, 9, 15), "Lesson 1", "contact", "school-day"),  # BST
    # ash-secondary two-week rotation: Week A from Monday 31 Aug 2026
    # (Mon 16 Nov is Week B, Mon 23 Nov Week A; Week A Wednesdays and Week B Tuesdays end with CPD)
    ("ash-secondary", (2026, 11, 18, 14, 30), "P5", "contact", "school-day"),  # Wed Week B
    ("ash-secondary", (2026, 11, 25, 14, 30), "Staff CPD", "non-contact", "school-day"),  # Wed Week A
    ("ash-secondary", (2026, 11, 17, 14, 30), "Staff CPD", "non-contact", "school-day"),  # Tue Week B
    ("ash-secondary", (2026, 11, 24, 14, 30), "P5", "contact", "school-day"),  # Tue Week A
    ("central-office", (2026, 12, 24, 10, 0), None, "closed", "closure"),
    ("central-office", (2026, 12, 25, 10, 0), None, "closed", "bank-holiday"),
    ("central-office", (2026, 12, 22, 10, 0), "Working day", "non-contact", "school-day"),
]


@pytest.mark.parametrize(("school", "local", "period", "kind", "day"), CASES)
def test_period_lookup(clocks, school, local, period, kind, day):
    when = clocks[school].at(london(*local))
    assert (when.period, when.kind, when.day) == (period, kind, day)


@pytest.mark.parametrize(
    ("local", "week"),
    [((2026, 8, 31, 9), "A"), ((2026, 9, 7, 9), "B"), ((2026, 9, 14, 9), "A"), ((2026, 11, 30, 9), "B"),
     ((2026, 9, 13, 9), "B")],
)
def test_week_rotation(clocks, local, week):
    assert clocks["ash-secondary"].at(london(*local)).week == week


def _boarding_school(write_config, example_data):
    """A school with Sunday periods and a term spanning both DST changes."""
    school = example_data["schools"][0]
    school["timetable"]["days"]["sunday"] = [
        {"name": "Chapel", "start": "09:00", "end": "10:00", "kind": "contact"}
    ]
    school["timetable"]["days"]["saturday"] = [
        {"name": "Night study", "start": "01:00", "end": "03:00", "kind": "contact"}
    ]
    school["timetable"]["day_start"] = "00:30"
    school["calendar"]["terms"] = [{"name": "All year", "start": "2026-09-01", "end": "2027-08-31"}]
    school["calendar"]["inset_days"] = []
    school["calendar"]["closures"] = []
    config = load_config(write_config(example_data))
    return SchoolClock(config.schools[0], LONDON)


@pytest.mark.parametrize(
    ("utc", "period"),
    [
        # Sunday 25 Oct 2026: clocks go back at 02:00 BST (01:00 UTC); Chapel is 09:00-10:00 GMT
        ((2026, 10, 25, 8, 30), None),
        ((2026, 10, 25, 9, 0), "Chapel"),
        ((2026, 10, 25, 9, 59), "Chapel"),
        ((2026, 10, 25, 10, 0), None),
        # Sunday 28 Mar 2027: clocks go forward at 01:00 GMT; Chapel is 09:00-10:00 BST = 08:00-09:00 UTC
        ((2027, 3, 28, 7, 59), None),
        ((2027, 3, 28, 8, 0), "Chapel"),
        ((2027, 3, 28, 8, 59), "Chapel"),
        ((2027, 3, 28, 9, 0), None),
    ],
)
def test_dst_change_days(write_config, example_data, utc, period):
    from datetime import UTC, datetime

    clock = _boarding_school(write_config, example_data)
    assert clock.at(datetime(*utc, tzinfo=UTC).timestamp()).period == period


def test_repeated_hour_on_autumn_change(write_config, example_data):
    """01:00-02:00 local happens twice on 25 Oct 2026: both are that local hour."""
    from datetime import UTC, datetime

    clock = _boarding_school(write_config, example_data)
    first = clock.at(datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp())  # 01:30 BST
    second = clock.at(datetime(2026, 10, 25, 1, 30, tzinfo=UTC).timestamp())  # 01:30 GMT
    assert first.local.hour == second.local.hour == 1
    assert first.local.utcoffset() != second.local.utcoffset()
    # Saturday-night study (01:00-03:00 on Saturdays) does not leak into the Sunday
    assert first.period is None and second.period is None


def test_bank_holidays_follow_the_nation(write_config, example_data):
    example_data["schools"][0]["calendar"]["nation"] = "scotland"
    example_data["schools"][0]["calendar"]["terms"] = [
        {"name": "All year", "start": "2026-09-01", "end": "2027-08-31"}
    ]
    config = load_config(write_config(example_data))
    clock = SchoolClock(config.schools[0], LONDON)
    assert clock.day_status(date(2026, 11, 30)) == "bank-holiday"  # St Andrew's Day, Scotland only
    # England's late-August bank holiday is not Scotland's (theirs is the first Monday)
    assert clock.day_status(date(2027, 8, 30)) == "school-day"
    assert clock.day_status(date(2027, 8, 2)) == "bank-holiday"


def test_staff_timetable_beats_school(example_config, clocks):
    staff = StaffTimetables(example_config.staff_periods)
    # S2002 is free in Week B Monday P1 while the school has a lesson
    when = clocks["ash-secondary"].at(london(2026, 11, 30, 9, 0))
    assert (when.period, when.kind, when.week) == ("P1", "contact", "B")
    assert staff.kind_for("S2002", when) == "non-contact"
    # a row without a week applies to both weeks
    tuesday = clocks["ash-secondary"].at(london(2026, 12, 1, 9, 0))
    assert staff.kind_for("S2003", tuesday) == "non-contact"
    # someone without a row: no opinion, the school's timetable stands
    assert staff.kind_for("S9999", when) is None


@pytest.mark.parametrize(("school", "day", "period", "kind"), [
    ("ash-secondary", date(2026, 11, 30), "P1", "contact"),  # Week B Monday: S2002's own row says free
    ("ash-secondary", date(2026, 11, 25), "Staff CPD", "non-contact"),  # Week A Wednesday
    ("ash-secondary", date(2026, 11, 18), "Staff CPD", None),  # Week B Wednesday has P5 instead
    ("ash-secondary", date(2026, 11, 28), "P1", None),  # a Saturday: no periods
    ("oak-primary", date(2026, 11, 30), "Lunch", "non-contact"),
])
def test_period_kind_is_the_schools_for_everyone(clocks, school, day, period, kind):
    assert clocks[school].period_kind(day, period) == kind
