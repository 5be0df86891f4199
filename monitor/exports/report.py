"""The principal's report: one self-contained HTML page, read in two minutes, printable to PDF.

Everything is inline (CSS in the template, charts as SVG), so the page works
offline, fetches nothing (no fonts, scripts or images from anywhere) and
prints the same as it shows. Every value that came from the network or the
config is escaped (`monitor.exports.report_words.e`).

The page is an ordered list of sections, `SECTIONS`: what a principal reads
first (summary, what the report does not contain, per-person totals, the
previous period, charts), then the detail, which starts on a new page when
printed. A new section is one `Section` entry, placed before `DETAIL` unless it
is detail itself. The parts live by job: figures in `report_stats`, words in
`report_words`, charts in `report_charts`, per-person totals in
`report_people`, the previous period and the trend in `report_trend`, rows in
`report_detail`.

`ReportStats` is fed one session at a time while the export streams them to
CSV, so the report costs one pass and memory bounded by the table cap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from string import Template
from typing import Any

from monitor.exports.completeness import coverage_html
from monitor.exports.report_charts import bars_svg, heatmap_svg, ordered, trend_svg
from monitor.exports.report_detail import apart_html, exemptions_html, table_html
from monitor.exports.report_people import people_html
from monitor.exports.report_stats import MAX_ROWS, ReportStats
from monitor.exports.report_trend import TREND_WEEKS, History, comparison_html, trend_bars
from monitor.exports.report_words import (
    e,
    idle_gap_rule,
    long_date,
    minutes_text,
    number,
    span_words,
    summary_paragraphs,
)


@dataclass(slots=True)
class ReportContext:
    """What the report says about the export itself (period, who, the manifest's anchors)."""

    trust: str
    school: str
    school_id: str
    first_day: date
    last_day: date
    timezone: str
    flagged_only: bool
    identified: bool
    reason: str | None
    retention_days: int
    created_at: str
    created_by: str
    tool_version: str
    config_fingerprint: str
    chain_head: Any  # ChainHead
    period_order: list[str] = field(default_factory=list)
    zone_order: list[str] = field(default_factory=list)
    dpia_reference: str | None = None
    public_key: str | None = None  # the gateway's signing key: it checks this export anywhere
    completeness: Any = None  # monitor.exports.completeness.Completeness: how much of the period was seen
    idle_gap_seconds: int = 300  # the store's: how sightings merge into sessions, so how minutes count
    history: History | None = None  # the previous period and the weeks before, from the same snapshot


@dataclass(frozen=True, slots=True)
class Section:
    """One section of the page: `render` gives its inner HTML, or "" to leave it out."""

    id: str
    title: str
    render: Callable[[ReportContext, ReportStats], str]
    detail: bool = False  # printed after the front part, from a new page


def summary_html(ctx: ReportContext, st: ReportStats) -> str:
    f = st.figures
    figures = [
        ("flag", "count-flagged", number(f.flagged), "flagged (clause 4.3)"),
        ("flag", "minutes-flagged", minutes_text(f.flagged_minutes), "flagged, in minutes of use"),
        ("", "count-contact", number(f.contact), "in contact time"),
        ("", "count-pupil", number(f.pupil), "where pupils are present"),
        ("", "count-exempt", number(st.exempt), "exempt (clause 4.1)"),
        ("", "count-total", number(f.total), "accesses in this export"),
        ("", "minutes-total", minutes_text(f.minutes), "of use, all accesses"),
    ]
    boxes = "".join(f'<div class="figure {cls}"><b id="{fid}">{e(value)}</b>{e(words)}</div>'
                    for cls, fid, value, words in figures)
    return ("".join(f"<p>{p}</p>" for p in summary_paragraphs(ctx, st))
            + (st.reviews.summary_html() if st.reviews is not None else "")
            + f'<div class="figures">{boxes}</div>'
            + f'<p class="note" id="idle-gap-rule">{e(idle_gap_rule(ctx.idle_gap_seconds))} '
            + f"Times are the school&rsquo;s local time ({e(ctx.timezone)}).</p>")


def about_html(ctx: ReportContext, st: ReportStats) -> str:
    return f"""<p>The trust records that a <strong>trust-owned device</strong> reached a social-media
  platform: the time, the school and network zone, the timetable period and the platform's hostname (for
  example <em>www.youtube.com</em>). This report <strong>does not contain</strong>, because nothing
  records them, messages, posts, pages or videos viewed, web addresses (URLs), searches or any other
  content. Personal devices and guest Wi-Fi are not recorded, and some categories (such as
  trade-union and health sites) are never recorded at all.</p>
  <p>Flags follow clause 4.3 of the Social Media Policy: personal social-media use belongs to non-contact
  time and to areas where pupils are not present. A flag is a prompt to look, not a finding: professional
  use (clause 4.1) may be legitimate even when it is not covered by a configured exemption.</p>
  <p>Records are kept for <strong>{number(ctx.retention_days)} days</strong> and then deleted. Every export,
  including this one, is entered in the export log. Data protection impact assessment:
  {e(ctx.dpia_reference or "not set")}.</p>"""


def people_section(ctx: ReportContext, st: ReportStats) -> str:
    return ('<p class="note">Flagged accesses (clause 4.3, not exempt) per person within this export, most '
            "first. Minutes follow the idle-gap rule above.</p>" + people_html(st, ctx.identified))


def previous_section(ctx: ReportContext, st: ReportStats) -> str:
    return comparison_html(ctx.history, st, ctx.flagged_only)


def charts_html(ctx: ReportContext, st: ReportStats) -> str:
    bars = trend_bars(ctx.history, st, ctx.first_day, ctx.last_day)
    context = (f" The first {TREND_WEEKS} weeks, in grey and marked &ldquo;context&rdquo;, are before this "
               "export and are not part of it; a week the store no longer (or never) held is marked, not "
               "shown as zero." if ctx.history is not None else "")
    return f"""<section class="chart-block wide"><h3>Flagged accesses by weekday and period</h3>
    <p class="note">Darker squares mean more flagged accesses. Times are local ({e(ctx.timezone)}).</p>
    {heatmap_svg(st, ctx.period_order)}</section>
  <section class="chart-block"><h3>By zone</h3>
    {bars_svg("chart-zone", "Flagged accesses by zone", ordered(st.by_zone, ctx.zone_order))}</section>
  <section class="chart-block"><h3>By platform</h3>
    {bars_svg("chart-platform", "Flagged accesses by platform", st.by_platform.most_common())}</section>
  <section class="chart-block wide" id="trend"><h3>By week (flagged accesses and minutes)</h3>
    <p class="note">{context.strip()}</p>{trend_svg(bars)}</section>"""


def detail_html(ctx: ReportContext, st: ReportStats) -> str:
    return ('<p class="note">One row per access session (one device, one platform, one place and period), '
            "with its minutes. Rows in green matched a flag but are allowed under an exemption (clause "
            f"4.1). At most {number(MAX_ROWS)} rows per table; sessions.csv has every row.</p>"
            + table_html(st, ctx.identified) + exemptions_html(st) + apart_html(st, ctx.identified))


DETAIL = "detail"
SECTIONS: tuple[Section, ...] = (
    Section("summary", "Summary", summary_html),
    Section("coverage", "Coverage", lambda ctx, st: coverage_html(ctx.completeness)),
    Section("about", "What this report does and does not contain", about_html),
    Section("people", "Per person", people_section),
    Section("previous", "Compared with the previous period", previous_section),
    Section("charts", "When and where", charts_html),
    Section(DETAIL, "Detail: flagged accesses", detail_html, detail=True),
)


def with_section(
    sections: tuple[Section, ...], section: Section, before: str = DETAIL
) -> tuple[Section, ...]:
    """`sections` with `section` placed before the one called `before` (at the end if there is none)."""
    ids = [s.id for s in sections]
    at = ids.index(before) if before in ids else len(sections)
    return (*sections[:at], section, *sections[at:])


def sections_html(ctx: ReportContext, st: ReportStats, sections: tuple[Section, ...] = SECTIONS) -> str:
    out = []
    for section in sorted(sections, key=lambda s: s.detail):  # front part first, whatever the order given
        inner = section.render(ctx, st)
        if not inner:
            continue
        classes = "detail" if section.detail else "front"
        if section.id == "charts":
            classes += " charts"
        out.append(f'<section id="{e(section.id)}" class="{classes}" aria-label="{e(section.title)}">'
                   f"<h2>{e(section.title)}</h2>{inner}</section>")
    return "\n".join(out)


def render_report(ctx: ReportContext, st: ReportStats, sections: tuple[Section, ...] = SECTIONS) -> str:
    template = Template(resources.files("monitor").joinpath("data/report.html").read_text(encoding="utf-8"))
    head = ctx.chain_head
    period = f"{long_date(ctx.first_day)} to {long_date(ctx.last_day)}"
    scope = "Flagged accesses only" if ctx.flagged_only else "All recorded accesses"
    return template.substitute(
        title=e(f"Social media access report: {ctx.school}, {ctx.first_day} to {ctx.last_day}"),
        trust=e(ctx.trust),
        school=e(ctx.school),
        period=e(period),
        scope=e(scope),
        identity=e("Identified" if ctx.identified else "Pseudonymised (aliases)"),
        sections=sections_html(ctx, st, sections),
        created_at=e(ctx.created_at),
        created_by=e(ctx.created_by),
        tool=e(f"social-monitor {ctx.tool_version}"),
        fingerprint=e(ctx.config_fingerprint),
        head_record=e(head.record_id),
        head_hash=e(head.hash),
        public_key=e(ctx.public_key or "none (this export is not signed)"),
    )


__all__ = ["DETAIL", "SECTIONS", "ReportContext", "ReportStats", "Section", "render_report", "sections_html",
           "span_words", "summary_paragraphs", "with_section"]
