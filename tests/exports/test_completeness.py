"""How complete a period was, day by day, from ledger intervals; and the words the report may use."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.exports.completeness import (
    DnsOnlyTally,
    assess,
    coverage_html,
    none_flagged_sentence,
    outage_windows,
)
from monitor.store.coverage import Interval, LedgerView
from tests.store_helpers import event

TZ = ZoneInfo("Europe/London")
DAY1 = date(2026, 10, 5)  # a Monday, BST
START = datetime(2026, 10, 5, tzinfo=TZ).timestamp()
H = 3600.0
NOW = START + 10 * 86400


def whole_day(**kw) -> list[Interval]:
    """A day of one-hour intervals, lan1 and the proxy up throughout unless `kw` changes an hour."""
    hours = []
    for h in range(24):
        i = Interval(START + h * H, START + (h + 1) * H, {"lan1": {"up_seconds": H, "packets": 100,
                                                                    "kernel_drops": 0}},
                     "live", H, True, H)
        for name, (hour, value) in kw.items():
            if hour == h:
                if name == "lan1_up":
                    i.interfaces["lan1"]["up_seconds"] = value
                else:
                    setattr(i, name, value)
        hours.append(i)
    return hours


def view(intervals, purged_before=None, history_start=START) -> LedgerView:
    return LedgerView(intervals, purged_before, history_start)


CASES = [
    ("complete", view(whole_day()), NOW, "complete", None),
    ("interface down", view(whole_day(lan1_up=(9, 600.0))), NOW, "incomplete",
     "capture on lan1 down for 50 min"),
    ("proxy down", view(whole_day(proxy_up_seconds=(9, 0.0))), NOW, "incomplete", "proxy down for 60 min"),
    ("a gap", view([i for k, i in enumerate(whole_day()) if k != 3]), NOW, "incomplete",
     "monitor not running for 60 min"),
    ("kernel drops", view(whole_day(interfaces=(2, {"lan1": {"up_seconds": H, "packets": 9,
                                                            "kernel_drops": 1}}))),
     NOW, "incomplete", "1 packets dropped by the kernel"),
    ("queue drops", view(whole_day(queue_dropped=(5, 3))), NOW, "incomplete", "3 observations dropped"),
    ("DPIA gate", view(whole_day(storage_refused=(8, True))), NOW, "not-recorded", "DPIA gate"),
    ("purged", view(whole_day(), purged_before=START + 86400), NOW, "purged", None),
    ("before history", view([], history_start=START + 86400), NOW, "outside-history", None),
    ("no ledger", None, NOW, "outside-history", None),
    ("today", view(whole_day()[:12]), START + 12 * H, "not-over", None),
    ("tomorrow", view([]), START - 1, "not-over", "has not begun"),
]


@pytest.mark.parametrize(("case", "ledger", "now", "status", "reason"), CASES, ids=[c[0] for c in CASES])
def test_each_day_gets_one_status(case, ledger, now, status, reason):
    [day] = assess(ledger, DAY1, DAY1, TZ, now).days
    assert day.status == status
    if reason is not None:
        assert any(reason in r for r in day.reasons), day.reasons


@pytest.mark.parametrize(("case", "ledger", "now", "status", "reason"), CASES, ids=[c[0] for c in CASES])
def test_none_flagged_is_said_only_of_a_fully_observed_period(case, ledger, now, status, reason):
    completeness = assess(ledger, DAY1, DAY1, TZ, now)
    sentence = none_flagged_sentence("In one day, 0 accesses were recorded.", completeness)
    assert ("None was flagged" in sentence) == (status == "complete")
    assert ("Not recorded" in sentence) == (status == "not-recorded")


@pytest.mark.parametrize(("intervals", "share"), [
    (whole_day(), 1.0),
    (whole_day(lan1_up=(0, 0.0)), 23 / 24),
    (whole_day()[:12], 0.5),
])
def test_the_interface_up_share_is_of_the_whole_period(intervals, share):
    c = assess(view(intervals), DAY1, DAY1, TZ, NOW)
    assert c.interfaces["lan1"] == pytest.approx(share)


@pytest.mark.parametrize(("packets", "drops", "rate"), [(990, 10, 0.01), (0, 0, 0.0), (0, 5, 1.0)])
def test_the_drop_rate_is_of_the_packets_that_reached_the_interface(packets, drops, rate):
    i = Interval(START, START + H, {"lan1": {"up_seconds": H, "packets": packets, "kernel_drops": drops}})
    assert assess(view([i]), DAY1, DAY1, TZ, NOW).drop_rate == pytest.approx(rate)


def test_obscured_share_is_of_all_observations():
    i = Interval(START, START + H, observations=200, obscured={"vpn": 10, "ech": 2})
    c = assess(view([i]), DAY1, DAY1, TZ, NOW)
    assert (c.obscured_share("vpn"), c.obscured_share("ech"), c.obscured_share("tor")) == (0.05, 0.01, 0.0)
    assert c.manifest()["obscured"]["vpn"] == {"flows": 10, "share": 0.05}


@pytest.mark.parametrize(("what", "intervals", "window"), [
    ("capture on lan1", whole_day(lan1_up=(9, 0.0)), ("09:00", "10:00")),
    ("proxy", whole_day(proxy_up_seconds=(14, 10.0)), ("14:00", "15:00")),
    ("monitor not running", [i for k, i in enumerate(whole_day()) if k not in (3, 4)], ("03:00", "05:00")),
])
def test_outage_windows_name_when_in_local_time(what, intervals, window):
    found = [w for w in outage_windows(view(intervals), START, START + 86400, TZ) if w["what"] == what]
    assert [(w["from"][11:16], w["to"][11:16]) for w in found] == [window]


@pytest.mark.parametrize(("signals", "counted"), [(("dns",), 1), (("dns", "tls"), 0), (("tls",), 0)])
def test_dns_only_sessions_are_counted_as_weaker_evidence(signals, counted):
    from monitor.store.sessions import session_from_event

    s = session_from_event(event())
    s.signals = signals
    tally = DnsOnlyTally()
    tally.add(s)
    assert tally.count == counted


@pytest.mark.parametrize(("ledger", "expected"), [
    (view(whole_day()), "Every day of the period was fully observed"),
    (view(whole_day(lan1_up=(9, 0.0))), "Not every day was fully observed"),
])
def test_the_coverage_section_says_whether_the_period_was_whole(ledger, expected):
    html = coverage_html(assess(ledger, DAY1, DAY1, TZ, NOW))
    assert expected in html and "<table class='coverage'>" in html  # the report wraps it in its section
