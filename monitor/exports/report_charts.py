"""The report's charts: inline SVG built here, so the page fetches nothing and prints as it shows.

Labels are escaped (`e`): zone, period and platform names come from the config
and the catalog, and a title attribute could otherwise carry markup.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from monitor.config.values import WEEKDAYS
from monitor.exports.report_stats import ReportStats
from monitor.exports.report_words import e, number
from monitor.store.ecs import OUTSIDE

FLAG_RED = "#b2182b"
CONTEXT_GREY = "#8c8c96"


def _shade(n: int, top: int) -> str:
    """White to deep red, by share of the busiest cell."""
    if n == 0 or top == 0:
        return "#f7f7f7"
    t = 0.15 + 0.85 * n / top
    r = round(255 - t * (255 - 178))
    g = round(245 - t * (245 - 24))
    b = round(240 - t * (240 - 43))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_svg(st: ReportStats, periods: list[str]) -> str:
    cols = [p for p in periods] + ([OUTSIDE] if any(p == OUTSIDE for _, p in st.heat) else [])
    cols += sorted({p for _, p in st.heat if p not in cols})
    days = list(WEEKDAYS[:5]) + [d for d in WEEKDAYS[5:] if any(w == d for w, _ in st.heat)]
    if not cols:
        cols = [OUTSIDE]
    cell_w, cell_h, left, top_pad = 64, 30, 96, 46
    width = left + cell_w * len(cols) + 8
    height = top_pad + cell_h * len(days) + 8
    top = max(st.heat.values(), default=0)
    parts = [
        f'<svg id="chart-heatmap" class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" '
        f'aria-label="Flagged accesses by weekday and timetable period">',
        "<title>Flagged accesses by weekday and timetable period</title>",
    ]
    for j, period in enumerate(cols):
        x = left + j * cell_w + cell_w / 2
        label = period if len(period) <= 10 else period[:9] + "…"
        parts.append(f'<text x="{x:.0f}" y="{top_pad - 10}" text-anchor="middle" class="axis">{e(label)}'
                     f'<title>{e(period)}</title></text>')
    for i, day in enumerate(days):
        y = top_pad + i * cell_h
        parts.append(f'<text x="{left - 8}" y="{y + cell_h / 2 + 4:.0f}" text-anchor="end" class="axis">'
                     f'{e(day.title())}</text>')
        for j, period in enumerate(cols):
            n = st.heat.get((day, period), 0)
            x = left + j * cell_w
            fill = _shade(n, top)
            ink = "#ffffff" if top and n > top * 0.55 else "#222222"
            parts.append(
                f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill}">'
                f'<title>{e(day.title())}, {e(period)}: {n}</title></rect>'
            )
            if n:
                parts.append(f'<text x="{x + cell_w / 2:.0f}" y="{y + cell_h / 2 + 4:.0f}" '
                             f'text-anchor="middle" fill="{ink}" class="cell">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(
    chart_id: str, title: str, items: list[tuple[str, int]], empty: str = "No flagged accesses"
) -> str:
    bar_h, gap, left, right = 22, 6, 170, 60
    width = 640
    rows = items or [(empty, 0)]
    height = len(rows) * (bar_h + gap) + 10
    top = max((n for _, n in rows), default=0)
    span = width - left - right
    parts = [
        f'<svg id="{e(chart_id)}" class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-label="{e(title)}">',
        f"<title>{e(title)}</title>",
    ]
    for i, (label, n) in enumerate(rows):
        y = 5 + i * (bar_h + gap)
        shown = label if len(label) <= 24 else label[:23] + "…"
        parts.append(f'<text x="{left - 8}" y="{y + bar_h / 2 + 4:.0f}" text-anchor="end" class="axis">'
                     f'{e(shown)}<title>{e(label)}</title></text>')
        w = 0 if top == 0 else max(2, round(span * n / top))
        parts.append(f'<rect x="{left}" y="{y}" width="{w}" height="{bar_h}" fill="#b2182b">'
                     f'<title>{e(label)}: {n}</title></rect>')
        if items:
            parts.append(f'<text x="{left + w + 6}" y="{y + bar_h / 2 + 4:.0f}" class="value">'
                         f'{number(n)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def ordered(counter: Counter[str], order: list[str]) -> list[tuple[str, int]]:
    """The configured order first (zones as the config lists them), then the rest by count."""
    known = [(k, counter[k]) for k in order if counter.get(k)]
    rest = [(k, n) for k, n in counter.most_common() if k not in order]
    return known + rest


@dataclass(frozen=True, slots=True)
class TrendBar:
    """One week of the trend chart: `kind` is "export" (this export's weeks), "context" (before it),
    "part" (context the store holds only part of) or "missing" (before the store's history: no bar,
    never a zero)."""

    label: str
    flagged: int
    minutes: float
    kind: str


def trend_svg(bars: list[TrendBar]) -> str:
    """Flagged accesses by week, context weeks grey and marked, weeks the store does not hold marked."""
    bar_h, gap, left, right, width = 20, 5, 200, 150, 640
    height = max(1, len(bars)) * (bar_h + gap) + 10
    top = max((b.flagged for b in bars if b.kind != "missing"), default=0)
    span = width - left - right
    title = "Flagged accesses by week, with the weeks before this export as context"
    parts = [f'<svg id="chart-week" class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" aria-label="{e(title)}">', f"<title>{e(title)}</title>"]
    for i, bar in enumerate(bars):
        y = 5 + i * (bar_h + gap)
        mid = y + bar_h / 2 + 4
        suffix = {"context": " (context)", "part": " (context, part)", "missing": ""}.get(bar.kind, "")
        parts.append(f'<text x="{left - 8}" y="{mid:.0f}" text-anchor="end" class="axis '
                     f'week-{bar.kind}">{e(bar.label + suffix)}</text>')
        if bar.kind == "missing":
            parts.append(f'<text x="{left}" y="{mid:.0f}" class="value missing">not in the store '
                         f"(before its history)</text>")
            continue
        w = 0 if top == 0 else max(2, round(span * bar.flagged / top)) if bar.flagged else 0
        fill = FLAG_RED if bar.kind == "export" else CONTEXT_GREY
        parts.append(f'<rect x="{left}" y="{y}" width="{w}" height="{bar_h}" fill="{fill}" '
                     f'class="bar-{bar.kind}"><title>{e(bar.label)}: {bar.flagged}</title></rect>')
        parts.append(f'<text x="{left + w + 6}" y="{mid:.0f}" class="value">{number(bar.flagged)} '
                     f"({round(bar.minutes):,} min)</text>")
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["TrendBar", "bars_svg", "heatmap_svg", "ordered", "trend_svg"]
