"""Per-person totals: aliases, most flags first, a running share, the long tail summed."""

from __future__ import annotations

import re

import pytest

from monitor.exports.report_people import people_html
from monitor.exports.report_stats import ReportStats
from monitor.observation import Flag
from monitor.store.sessions import Session
from tests.conftest import LONDON

CONTACT = Flag("contact_time", "4.3", "contact time")


def stats(counts: dict[str, int]) -> ReportStats:
    st = ReportStats(LONDON)
    for alias, n in counts.items():
        for _ in range(n):
            st.add(Session(device="D", platform="youtube", school="ash", zone="classrooms", period="P1",
                           local_date="2026-11-02", first_seen=1.79e9, last_seen=1.79e9 + 120,
                           flags=(CONTACT,)), "Device 01", alias)
    return st


def aliases(html: str) -> list[str]:
    return re.findall(r'<tr class="person"><td>([^<]*)</td>', html)


@pytest.mark.parametrize(
    ("counts", "max_people", "shown", "rest", "lead"),
    [
        ({"Staff 01": 1, "Staff 02": 8, "Staff 03": 1}, 25, ["Staff 02", "Staff 01", "Staff 03"], None,
         "1 person of 3 with a flag accounts for half or more of the flagged accesses (80%)."),
        ({"Staff 01": 2, "Staff 02": 2}, 25, ["Staff 01", "Staff 02"], None,
         "1 person of 2 with a flag accounts for half or more"),
        ({f"Staff {i:02d}": 10 - i for i in range(10)}, 3, ["Staff 00", "Staff 01", "Staff 02"],
         '<tr class="rest"><td>7 more people</td><td>28</td>', "4 people of 10"),  # 10+9+8+7 of 55
        ({"Staff 01": 3, "Staff 02": 1}, 1, ["Staff 01"], '<td>1 more person</td><td>1</td>',
         "1 person of 2"),
        ({"<script>": 1}, 25, ["&lt;script&gt;"], None, "1 person of 1"),
    ],
)
def test_people_table(counts, max_people, shown, rest, lead):
    html = people_html(stats(counts), identified=False, max_people=max_people)
    assert aliases(html) == shown and lead in html and "<script>" not in html
    assert (rest in html) if rest else 'class="rest"' not in html


def test_running_share_and_minutes():
    html = people_html(stats({"Staff 01": 3, "Staff 02": 1}), identified=False)
    assert "<td>Staff 01</td><td>3</td><td>6 minutes</td><td>3 (6 minutes)</td><td>0 (0 minutes)</td>" \
           "<td>1</td><td>75% (75%)</td>" in html
    assert "<td>25% (100%)</td>" in html


@pytest.mark.parametrize(("identified", "header"), [(False, "Person (alias)"), (True, "Person (staff id")])
def test_header_says_what_the_names_are(identified, header):
    assert header in people_html(stats({"Staff 01": 1}), identified=identified)


def test_nobody_flagged():
    assert 'id="no-people"' in people_html(ReportStats(LONDON), identified=False)
