"""The report's figures: counts and minutes per period, per person, one session at a time."""

from __future__ import annotations

import pytest

from monitor.exports.report_stats import ReportStats, person_of
from monitor.observation import Exemption, Flag
from monitor.store.sessions import Session
from tests.conftest import LONDON

CONTACT = Flag("contact_time", "4.3", "contact time")
PUPILS = Flag("pupil_area", "4.3", "pupil area")
T = 1.79e9


def session(seconds: float = 60, flags=(CONTACT,), exemption=None, **kw) -> Session:
    return Session(device=kw.get("device", "D1"), platform=kw.get("platform", "youtube"), school="ash",
                   zone="classrooms", period=kw.get("period", "P3"), local_date=kw.get("day", "2026-11-02"),
                   first_seen=T, last_seen=T + seconds, flags=flags, exemption=exemption,
                   probably_teaching=kw.get("teaching", False), roles=kw.get("roles", ()))


# (sessions as (session, device alias, owner alias), the figures expected)
@pytest.mark.parametrize(
    ("rows", "total", "flagged", "flagged_minutes", "contact", "pupil", "exempt", "people"),
    [
        ([], 0, 0, 0.0, 0, 0, 0, 0),
        ([(session(90), "Device 01", "Staff 01")], 1, 1, 1.5, 1, 0, 0, 1),
        ([(session(60, (CONTACT, PUPILS)), "Device 01", None)], 1, 1, 1.0, 1, 1, 0, 1),
        ([(session(600, ()), "Device 01", "Staff 01")], 1, 0, 0.0, 0, 0, 0, 0),  # not flagged: no flag time
        ([(session(60, exemption=Exemption("mkt", "posts", "4.1")), "Device 01", "Staff 01")],
         1, 0, 0.0, 0, 0, 1, 0),
        ([(session(60), "Device 01", "Staff 01"), (session(120), "Device 02", "Staff 01")],
         2, 2, 3.0, 2, 0, 0, 1),  # one person, two devices
        ([(session(60, teaching=True), "Device 01", "Staff 01")], 1, 1, 1.0, 1, 0, 0, 1),  # still flagged
    ],
)
def test_figures(rows, total, flagged, flagged_minutes, contact, pupil, exempt, people):
    st = ReportStats(LONDON)
    for s, device, owner in rows:
        st.add(s, device, owner)
    f = st.figures
    got = (f.total, f.flagged, round(f.flagged_minutes, 2), f.contact, f.pupil, st.exempt, len(f.people))
    assert got == (total, flagged, flagged_minutes, contact, pupil, exempt, people)
    assert (st.total, st.flagged, st.contact, st.pupil) == (total, flagged, contact, pupil)


@pytest.mark.parametrize(
    ("device", "owner", "who"),
    [("Device 07", "Staff 03", "Staff 03"), ("Device 07", None, "Device 07"), ("ASH-LT-1", "S2001", "S2001")],
)
def test_person_of(device, owner, who):
    assert person_of(device, owner) == who


def test_people_ranked_by_flags_then_minutes_then_alias():
    st = ReportStats(LONDON)
    rows = [("Staff 01", 1, 60), ("Staff 02", 3, 60), ("Staff 03", 3, 120), ("Staff 04", 1, 60)]
    for alias, n, seconds in rows:
        for _ in range(n):
            st.add(session(seconds, (CONTACT, PUPILS)), "Device", alias)
    ranked = st.ranked_people()
    assert [p.alias for p in ranked] == ["Staff 03", "Staff 02", "Staff 01", "Staff 04"]
    top = ranked[0]
    assert (top.flagged, top.minutes, top.contact, top.contact_minutes, top.pupil, top.pupil_minutes) == \
        (3, 6.0, 3, 6.0, 3, 6.0)


@pytest.mark.parametrize(
    ("day", "week"),
    [("2026-11-02", "2026-11-02"), ("2026-11-08", "2026-11-02"), ("2026-11-09", "2026-11-09")],
)
def test_minutes_by_week(day, week):
    st = ReportStats(LONDON)
    st.add(session(150, day=day), "Device 01", None)
    assert st.by_week == {week: 1} and st.minutes_by_week == {week: 2.5}


def test_rows_capped_the_rest_counted():
    st = ReportStats(LONDON, max_rows=3)
    for _ in range(5):
        st.add(session(), "Device 01", None)
    assert len(st.rows) == 3 and st.rows_left_out == 2 and st.flagged == 5
    assert st.rows[0]["social.minutes"] == "1"
