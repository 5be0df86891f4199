"""The previous period and the weekly trend, from a real store; what the store does not hold is marked."""

from __future__ import annotations

from datetime import date

import pytest

from monitor.exports.report_stats import Figures, ReportStats
from monitor.exports.report_trend import (
    TREND_WEEKS,
    History,
    comparison_html,
    monday_of,
    read_history,
    trend_bars,
)
from monitor.observation import Flag
from monitor.store.sessions import Session
from monitor.store.sqlite import open_store
from tests.conftest import LONDON, london

CONTACT = Flag("contact_time", "4.3", "contact time")
FIRST, LAST = date(2026, 11, 2), date(2026, 11, 8)  # a week's export


def session(day: date, minutes: int = 2, flags=(CONTACT,), school: str = "ash", device: str = "D1"
            ) -> Session:
    start = london(day.year, day.month, day.day, 11, 30)
    return Session(device=device, platform="youtube", school=school, zone="classrooms", period="P3",
                   local_date=day.isoformat(), first_seen=start, last_seen=start + 60 * minutes, flags=flags,
                   owner="S1")


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        yield s


@pytest.mark.parametrize(
    ("held_from", "first", "last", "held"),
    [
        (None, date(2026, 10, 1), date(2026, 10, 7), "none"),
        (date(2026, 10, 1), date(2026, 10, 1), date(2026, 10, 7), "all"),
        (date(2026, 10, 3), date(2026, 10, 1), date(2026, 10, 7), "part"),
        (date(2026, 10, 8), date(2026, 10, 1), date(2026, 10, 7), "none"),
        (date(2026, 10, 7), date(2026, 10, 1), date(2026, 10, 7), "part"),
    ],
)
def test_held(held_from, first, last, held):
    assert History(first, last, Figures(), held_from).held(first, last) == held


@pytest.mark.parametrize(
    ("written", "prev_flagged", "prev_minutes", "prev_total"),
    [
        ([], 0, 0.0, 0),
        ([session(date(2026, 10, 26), 3)], 1, 3.0, 1),  # Monday of the previous week
        ([session(date(2026, 11, 1), 4), session(date(2026, 10, 25), 9)], 1, 4.0, 1),  # the 25th: before it
        ([session(date(2026, 10, 27), 5, flags=())], 0, 0.0, 1),  # recorded, not flagged
        ([session(date(2026, 10, 27), 5, school="oak")], 0, 0.0, 0),  # another school's
        ([session(date(2026, 11, 2), 5)], 0, 0.0, 0),  # the export's own first day
    ],
)
def test_previous_period(store, written, prev_flagged, prev_minutes, prev_total):
    store.write_sessions(written, now=london(2026, 11, 30))
    history = read_history(store, "ash", FIRST, LAST, LONDON)
    assert (history.previous_first, history.previous_last) == (date(2026, 10, 26), date(2026, 11, 1))
    p = history.previous
    assert (p.flagged, p.flagged_minutes, p.total) == (prev_flagged, prev_minutes, prev_total)


def test_trend_reaches_back_and_marks_what_the_store_never_held(store):
    # the store's history starts on Wednesday 14 October: two weeks of context are held, one in part
    days = [date(2026, 10, 14), date(2026, 10, 20), date(2026, 10, 21), date(2026, 10, 28)]
    store.write_sessions([session(d, device=f"D{i}") for i, d in enumerate(days)], now=london(2026, 11, 30))
    history = read_history(store, "ash", FIRST, LAST, LONDON)
    st = ReportStats(LONDON)
    st.add(session(FIRST, 7), "Device 01", "Staff 01")
    bars = trend_bars(history, st, FIRST, LAST)
    assert len(bars) == TREND_WEEKS + 1
    assert [b.kind for b in bars] == ["missing"] * 5 + ["part", "context", "context", "export"]
    assert [b.flagged for b in bars[5:]] == [1, 2, 1, 1]
    assert bars[5].label == "w/c 12 Oct 2026" and bars[-1].minutes == 7.0


@pytest.mark.parametrize(
    ("first", "last", "export_weeks"),
    [
        (date(2026, 11, 2), date(2026, 11, 29), 4),
        (date(2026, 11, 4), date(2026, 11, 10), 2),  # Wednesday to Tuesday: two weeks touched
    ],
)
def test_a_bar_for_every_export_week(first, last, export_weeks):
    bars = trend_bars(None, ReportStats(LONDON), first, last)
    assert [b.kind for b in bars] == ["export"] * export_weeks
    assert bars[0].label == f"w/c {monday_of(first).day} Nov 2026"


def test_a_week_begun_before_the_export_counts_its_first_days_from_the_context(store):
    first, last = date(2026, 11, 4), date(2026, 11, 10)
    store.write_sessions([session(date(2026, 11, 2))], now=london(2026, 11, 30))
    history = read_history(store, "ash", first, last, LONDON)
    st = ReportStats(LONDON)
    st.add(session(date(2026, 11, 5)), "Device 01", None)
    bars = trend_bars(history, st, first, last)
    assert bars[TREND_WEEKS].label == "w/c 2 Nov 2026" and bars[TREND_WEEKS].flagged == 2


@pytest.mark.parametrize(
    ("held_from", "now", "before", "expected"),
    [
        (date(2026, 1, 1), 10, 5, ["<td>10</td><td>5</td><td>+100%</td>"]),
        (date(2026, 1, 1), 5, 10, ["<td>5</td><td>10</td><td>-50%</td>"]),
        (date(2026, 1, 1), 3, 3, ["no change"]),
        (date(2026, 1, 1), 3, 0, ["<td>new</td>"]),
        (date(2026, 10, 29), 3, 1, ["its figures are partial", "Thursday 29 October 2026"]),
        (date(2026, 11, 2), 3, 0, ["<td>not in the store</td>", "holds nothing from the previous period"]),
        (None, 3, 0, ["<td>not in the store</td>"]),
    ],
)
def test_comparison(held_from, now, before, expected):
    history = History(date(2026, 10, 26), date(2026, 11, 1), Figures(flagged=before), held_from)
    st = ReportStats(LONDON)
    st.figures.flagged = now
    html = comparison_html(history, st, flagged_only=False)
    row = html.split("Flagged (clause 4.3)</th>")[1].split("</tr>")[0]
    for text in expected:
        assert text in row or text in html, text
    assert "Monday 26 October 2026 to Sunday 1 November 2026" in html


@pytest.mark.parametrize(("flagged_only", "has_total"), [(False, True), (True, False)])
def test_comparison_leaves_out_total_of_a_flagged_only_export(flagged_only, has_total):
    history = History(date(2026, 10, 26), date(2026, 11, 1), Figures(), date(2026, 1, 1))
    html = comparison_html(history, ReportStats(LONDON), flagged_only)
    assert ("Accesses recorded" in html) is has_total
    assert comparison_html(None, ReportStats(LONDON), flagged_only) == ""


def test_long_export_trend_is_bounded():
    bars = trend_bars(None, ReportStats(LONDON), date(2025, 1, 6), date(2026, 12, 27))
    assert len(bars) == 60 and {b.kind for b in bars} == {"export"}
