"""The report's words: minutes as a principal reads them, the idle-gap rule, escaping, the summary."""

from __future__ import annotations

from datetime import date

import pytest

from monitor.exports.report import ReportContext
from monitor.exports.report_stats import ReportStats
from monitor.exports.report_words import e, idle_gap_rule, long_date, minutes_text, summary_paragraphs
from monitor.observation import Flag
from monitor.store.chain import ChainHead
from monitor.store.sessions import Session
from tests.conftest import LONDON

CONTACT = Flag("contact_time", "4.3", "contact time")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0 minutes"),
        (0.2, "under a minute"),
        (0.5, "under a minute"),  # rounds to even: 0
        (0.51, "1 minute"),
        (1.0, "1 minute"),
        (47.4, "47 minutes"),
        (119.4, "119 minutes"),
        (120.0, "2 h 00 min"),
        (185.0, "3 h 05 min"),
        (60 * 1000 + 7, "1,000 h 07 min"),
    ],
)
def test_minutes_text(value, text):
    assert minutes_text(value) == text


@pytest.mark.parametrize(
    ("gap", "said"),
    [(300, "less than 5 minutes apart"), (60, "less than 1 minute apart"),
     (90, "less than 90 seconds apart")],
)
def test_idle_gap_rule_names_the_gap(gap, said):
    rule = idle_gap_rule(gap)
    assert said in rule and "first to its last sighting" in rule and "lower bound" in rule


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), ("<b>", "&lt;b&gt;"), ('a"b', "a&quot;b"), (3, "3"), ("it's", "it&#x27;s")],
)
def test_escape(value, text):
    assert e(value) == text


@pytest.mark.parametrize(
    ("day", "with_year", "text"),
    [(date(2026, 11, 2), True, "Monday 2 November 2026"), (date(2026, 11, 29), False, "Sunday 29 November")],
)
def test_long_date(day, with_year, text):
    assert long_date(day, with_year) == text


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(60, "1 minute</strong> of use in all"), (3 * 3600, "3 h 00 min</strong> of use in all"),
     (0, "0 minutes</strong> of use in all")],
)
def test_summary_gives_the_flagged_minutes(seconds, said):
    stats = ReportStats(LONDON)
    s = Session(device="D1", platform="youtube", school="ash-secondary", zone="classrooms", period="P3",
                local_date="2026-11-02", first_seen=1.79e9, last_seen=1.79e9 + seconds, flags=(CONTACT,))
    stats.add(s, "Device 01", "Staff 01")
    ctx = ReportContext("Trust", "Ash", "ash", date(2026, 11, 2), date(2026, 11, 8), "Europe/London", False,
                        False, None, 90, "now", "me", "0.1.0", "f" * 64, ChainHead(1, "0" * 64))
    assert said in " ".join(summary_paragraphs(ctx, stats))
