"""The report's detail rows: minutes beside each session, escaped, capped, listed apart."""

from __future__ import annotations

import re

import pytest

from monitor.exports.report_detail import apart_html, exemptions_html, table_html
from monitor.exports.report_stats import ReportStats
from monitor.observation import Exemption, Flag
from monitor.store.sessions import Session
from tests.conftest import LONDON

CONTACT = Flag("contact_time", "4.3", "contact time")


def session(seconds: float, **kw) -> Session:
    return Session(device="D", platform="youtube", school="ash", zone=kw.get("zone", "classrooms"),
                   period="P1", local_date="2026-11-02", first_seen=1.79e9, last_seen=1.79e9 + seconds,
                   flags=kw.get("flags", (CONTACT,)), exemption=kw.get("exemption"),
                   hostnames=kw.get("hostnames", ("www.youtube.com",)),
                   probably_teaching=kw.get("teaching", False), roles=kw.get("roles", ()))


@pytest.mark.parametrize(
    ("seconds", "cell"),
    [(0, "0"), (30, "0.5"), (90, "1.5"), (3600, "60"), (100.2, "1.67")],
)
def test_each_row_has_its_minutes(seconds, cell):
    st = ReportStats(LONDON)
    st.add(session(seconds), "Device 01", "Staff 01")
    assert re.findall(r'<td class="minutes">([^<]*)</td>', table_html(st, identified=False)) == [cell]


@pytest.mark.parametrize(
    ("sessions", "present", "absent"),
    [
        ([], ['id="no-flagged"'], ["<table"]),
        ([session(60, hostnames=("<img src=x>.youtube.com",))], ["&lt;img src=x&gt;.youtube.com"], ["<img"]),
        ([session(60)] * 3, ["The table shows the first 2 rows; 1 more are in sessions.csv."], []),
        ([session(60, exemption=Exemption("mkt", "posts", "4.1"))], ['<tr class="exempt">', "mkt (4.1)"], []),
    ],
)
def test_table(sessions, present, absent):
    st = ReportStats(LONDON, max_rows=2)
    for s in sessions:
        st.add(s, "Device 01", "Staff 01")
    html = table_html(st, identified=False) + exemptions_html(st)
    for text in present:
        assert text in html
    for text in absent:
        assert text not in html


@pytest.mark.parametrize(
    ("s", "table"),
    [(session(60, teaching=True), "teaching-table"),
     (session(60, flags=(), roles=("embed",)), "embed-table")],
)
def test_listed_apart(s, table):
    st = ReportStats(LONDON)
    st.add(s, "Device 01", None)
    assert f'<table id="{table}">' in apart_html(st, identified=False)
    assert st.rows == []
