"""The report's SVG charts: escaped labels, context weeks marked, weeks the store never held not zero."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from monitor.exports.report_charts import TrendBar, bars_svg, heatmap_svg, ordered, trend_svg
from monitor.exports.report_stats import ReportStats
from tests.conftest import LONDON


@pytest.mark.parametrize(
    ("bar", "has_rect", "fill", "says"),
    [
        (TrendBar("w/c 7 Sep 2026", 5, 12.0, "context"), True, "#8c8c96", "w/c 7 Sep 2026 (context)"),
        (TrendBar("w/c 7 Sep 2026", 5, 12.0, "part"), True, "#8c8c96", "(context, part)"),
        (TrendBar("w/c 2 Nov 2026", 5, 12.0, "export"), True, "#b2182b", "5 (12 min)"),
        (TrendBar("w/c 31 Aug 2026", 0, 0.0, "missing"), False, None,
         "not in the store (before its history)"),
    ],
)
def test_trend_marks_each_kind_of_week(bar, has_rect, fill, says):
    svg = trend_svg([bar, TrendBar("w/c 9 Nov 2026", 10, 20.0, "export")])
    first = svg.split("w/c 9 Nov 2026")[0]  # the first bar's row
    assert says in first
    assert ("<rect" in first) is has_rect
    if fill:
        assert f'fill="{fill}"' in first


def test_a_missing_week_never_sets_the_scale():
    svg = trend_svg([TrendBar("a", 999, 0.0, "missing"), TrendBar("b", 4, 0.0, "export")])
    assert re.search(r'<rect x="200" y="30" width="290"', svg)  # the only held week fills the span


@pytest.mark.parametrize(
    ("items", "rects", "text"),
    [
        ([], 1, "No flagged accesses"),
        ([("YouTube", 3), ("<b>x</b>", 1)], 2, "&lt;b&gt;x&lt;/b&gt;"),
        ([("a" * 40, 2)], 1, "a" * 23 + "…"),
    ],
)
def test_bars(items, rects, text):
    svg = bars_svg("chart-x", "Title", items)
    assert svg.count("<rect") == rects and text in svg and "<b>" not in svg


@pytest.mark.parametrize(
    ("heat", "columns"),
    [
        ({}, ["P1", "P2"]),
        ({("monday", "Outside timetable"): 2}, ["P1", "P2", "Outside timetable"]),
        ({("saturday", "<i>odd</i>"): 1}, ["P1", "P2", "&lt;i&gt;odd&lt;/i&gt;"]),  # escaped
    ],
)
def test_heatmap_columns(heat, columns):
    st = ReportStats(LONDON)
    st.heat.update(heat)
    svg = heatmap_svg(st, ["P1", "P2"])
    shown = re.findall(r'class="axis">[^<]+<title>([^<]+)</title>', svg)  # names in full
    assert shown == columns and "<i>" not in svg


@pytest.mark.parametrize(
    ("counts", "order", "result"),
    [
        ({"b": 1, "a": 5, "c": 3}, ["b", "c"], [("b", 1), ("c", 3), ("a", 5)]),
        ({"a": 1}, ["b"], [("a", 1)]),
    ],
)
def test_ordered(counts, order, result):
    assert ordered(Counter(counts), order) == result
