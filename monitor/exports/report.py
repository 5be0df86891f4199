"""The principal's report: one self-contained HTML page, read in two minutes, printable to PDF.

Everything is inline (CSS in the template, charts as SVG built here), so the
page works offline, fetches nothing (no fonts, scripts or images from
anywhere) and prints the same as it shows. Every value that came from the
network or the config (hostnames, zone and period names) is escaped: a
hostname is attacker-controlled text.

`ReportStats` is fed one session at a time while the export streams them to
CSV, so the report costs one pass and memory bounded by the table cap.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape
from importlib import resources
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

from monitor.config.values import WEEKDAYS
from monitor.store.ecs import OUTSIDE, report_cells
from monitor.store.sessions import Session

MAX_ROWS = 2000  # flagged rows in the HTML table; the CSV always has them all
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")


def e(value: Any) -> str:
    """HTML-escape anything, quotes included (values land in attributes too)."""
    return escape("" if value is None else str(value), quote=True)


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


HIDDEN_KINDS = {"encrypted-dns": "encrypted DNS", "vpn": "VPN", "tor": "Tor", "ech": "encrypted hello"}


class ReportStats:
    """Counts for the summary and the charts, accumulated one session at a time."""

    def __init__(self, tz: ZoneInfo, max_rows: int = MAX_ROWS):
        self.tz = tz
        self.max_rows = max_rows
        self.total = 0
        self.flagged = 0
        self.exempt = 0  # would have been flagged, allowed under an exemption (4.1)
        self.contact = 0  # flagged sessions with the contact-time flag
        self.pupil = 0  # flagged sessions with the pupil-area flag
        self.heat: Counter[tuple[str, str]] = Counter()
        self.by_zone: Counter[str] = Counter()
        self.by_platform: Counter[str] = Counter()
        self.by_week: Counter[str] = Counter()
        self.by_period: Counter[str] = Counter()
        self.combos: Counter[tuple[str, str, str]] = Counter()
        self.exemptions: Counter[str] = Counter()
        self.exemption_reasons: dict[str, str] = {}
        self.devices: set[str] = set()
        self.rows: list[dict[str, Any]] = []  # the table's cells by ECS name (`monitor.store.ecs`)
        self.rows_left_out = 0
        # listed apart, so a reviewer starts with the rest: flagged but probably teaching (4.1), and
        # sessions that saw only a platform's widgets, pixels, embeds or CDN (never flagged)
        self.teaching = 0
        self.embed_only = 0
        # destination hidden (VPN, encrypted DNS, Tor, ECH): no platform, never flagged, counted by kind
        self.hidden: Counter[str] = Counter()
        self.hidden_contact = 0
        self.teaching_rows: list[dict[str, Any]] = []
        self.embed_rows: list[dict[str, Any]] = []
        self._days: dict[str, tuple[str, str]] = {}

    def _day(self, local_date: str) -> tuple[str, str]:
        """Weekday name and the Monday of its week, once per date (a month has 30, not 100,000)."""
        day = date.fromisoformat(local_date)
        monday = day - timedelta(days=day.weekday())
        found = self._days[local_date] = (WEEKDAYS[day.weekday()], monday.isoformat())
        return found

    def add(self, s: Session, device: str, owner: str | None) -> None:
        if not s.platform:  # not an access to social media: counted apart, never a platform
            for kind in s.obscured_by or ("unknown",):
                self.hidden[kind] += 1
            self.hidden_contact += s.period_kind == "contact"
            return
        self.total += 1
        if s.embed_only:
            self.embed_only += 1
            if len(self.embed_rows) < self.max_rows:
                self.embed_rows.append(report_cells(s, device, None, owner, None, self.tz))
            return
        if not s.flags:
            return
        if s.exemption is not None:
            self.exempt += 1
            self.exemptions[s.exemption.name] += 1
            self.exemption_reasons[s.exemption.name] = s.exemption.reason
        else:
            self.flagged += 1
            names = {f.name for f in s.flags}
            self.contact += "contact_time" in names
            self.pupil += "pupil_area" in names
            weekday, week = self._days.get(s.local_date) or self._day(s.local_date)
            period = s.period or OUTSIDE
            platform = s.platform_name or s.platform
            self.heat[(weekday, period)] += 1
            self.by_zone[s.zone] += 1
            self.by_platform[platform] += 1
            self.by_period[period] += 1
            self.by_week[week] += 1
            self.combos[(platform, s.zone, period)] += 1
            self.devices.add(device)
            if s.probably_teaching:
                self.teaching += 1
                if len(self.teaching_rows) < self.max_rows:
                    self.teaching_rows.append(report_cells(s, device, None, owner, None, self.tz))
                return
        if len(self.rows) >= self.max_rows:
            self.rows_left_out += 1
            return
        self.rows.append(report_cells(s, device, None, owner, None, self.tz))


# --- words ------------------------------------------------------------------------------------


def number(n: int) -> str:
    return f"{n:,}"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{number(n)} {one if n == 1 else (many or one + 's')}"


def accesses(n: int) -> str:
    return plural(n, "access", "accesses")


def span_words(first: date, last: date) -> str:
    days = (last - first).days + 1
    if days % 7 == 0:
        weeks = days // 7
        word = NUMBER_WORDS[weeks] if weeks < len(NUMBER_WORDS) else str(weeks)
        return f"the {word} week{'s' if weeks != 1 else ''}" if weeks != 1 else "the week"
    return "the day" if days == 1 else f"the {days} days"


def long_date(d: date, with_year: bool = True) -> str:
    text = f"{d.strftime('%A')} {d.day} {d.strftime('%B')}"
    return f"{text} {d.year}" if with_year else text


def summary_paragraphs(ctx: ReportContext, st: ReportStats) -> list[str]:
    """The summary in plain words: already-escaped HTML paragraphs."""
    same_year = ctx.first_day.year == ctx.last_day.year
    when = (f"In {span_words(ctx.first_day, ctx.last_day)} from {long_date(ctx.first_day, not same_year)} "
            f"to {long_date(ctx.last_day)}")
    out = []
    if ctx.flagged_only:
        lead = f"{when}, this export lists only flagged accesses at {e(ctx.school)}."
    else:
        lead = (f"{when}, {accesses(st.total)} to social media from trust devices at {e(ctx.school)} "
                f"{'was' if st.total == 1 else 'were'} recorded.")
    if st.flagged == 0:
        out.append(f"{lead} <strong>None was flagged</strong> under clause 4.3 of the Social Media Policy.")
    else:
        verb = "was" if st.flagged == 1 else "were"
        parts = []
        if st.contact:
            parts.append(f"{number(st.contact)} in contact time")
        if st.pupil:
            parts.append(f"{number(st.pupil)} in areas where pupils are present")
        both = " (an access can be both)" if st.contact and st.pupil and st.contact + st.pupil > st.flagged \
            else ""
        out.append(
            f"{lead} <strong>{accesses(st.flagged)} {verb} flagged</strong> under clause 4.3: "
            f"{' and '.join(parts)}{both}, from {plural(len(st.devices), 'device')}."
        )
        (platform, zone, period), n = st.combos.most_common(1)[0]
        top_platform = st.by_platform.most_common(1)[0]
        top_zone = st.by_zone.most_common(1)[0]
        top_period = st.by_period.most_common(1)[0]
        out.append(
            f"Most often the platform was {e(top_platform[0])} ({number(top_platform[1])} of "
            f"{number(st.flagged)}), the zone {e(top_zone[0])} ({number(top_zone[1])}) and the period "
            f"{e(top_period[0])} ({number(top_period[1])}). "
            f"The most common single pattern was {e(platform)} in {e(zone)} during {e(period)} "
            f"({accesses(n)})."
        )
    if st.teaching:
        one = st.teaching == 1
        out.append(f"Of the flagged, {accesses(st.teaching)} {'was' if one else 'were'} probably teaching "
                   f"(a teaching platform in a teaching zone during a lesson) and {'is' if one else 'are'} "
                   "listed apart.")
    if st.embed_only:
        out.append(f"{accesses(st.embed_only)} reached only a platform's widgets, pixels, embedded "
                   "players or shared CDN: kept, listed apart and not flagged.")
    if st.hidden:
        kinds = ", ".join(f"{e(HIDDEN_KINDS.get(k, k))} {number(n)}" for k, n in sorted(st.hidden.items()))
        out.append(f"Destination hidden: {accesses(sum(st.hidden.values()))} ({kinds}), "
                   f"{number(st.hidden_contact)} in contact time; no platform can be named, none is flagged.")
    if st.exempt:
        names = ", ".join(f"{e(name)} ({number(n)})" for name, n in st.exemptions.most_common())
        out.append(f"A further {accesses(st.exempt)} matched a flag but "
                   f"{'was' if st.exempt == 1 else 'were'} allowed as professional use under clause 4.1: "
                   f"{names}.")
    if ctx.identified:
        out.append(f"Devices and staff are <strong>identified</strong> in this export. Reason given: "
                   f"{e(ctx.reason)}.")
    else:
        out.append("Devices and staff appear under aliases (such as &ldquo;Device 07&rdquo;) that hold only "
                   "within "
                   "this export; a new export uses new aliases.")
    return out


# --- charts -----------------------------------------------------------------------------------


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


def week_items(st: ReportStats, first: date, last: date) -> list[tuple[str, int]]:
    """Every week of the period, flagged or not (a quiet week is information too)."""
    monday = first - timedelta(days=first.weekday())
    items = []
    while monday <= last:
        key = monday.isoformat()
        items.append((f"w/c {monday.day} {monday.strftime('%b %Y')}", st.by_week.get(key, 0)))
        monday += timedelta(days=7)
        if len(items) > 60:  # a year or more: the chart would be unreadable, keep the weeks with data
            items = [(f"w/c {k}", n) for k, n in sorted(st.by_week.items())]
            break
    return items


def ordered(counter: Counter[str], order: list[str]) -> list[tuple[str, int]]:
    """The configured order first (zones as the config lists them), then the rest by count."""
    known = [(k, counter[k]) for k in order if counter.get(k)]
    rest = [(k, n) for k, n in counter.most_common() if k not in order]
    return known + rest


# --- the page ---------------------------------------------------------------------------------


def table_html(st: ReportStats, identified: bool) -> str:
    if not st.rows:
        return '<p id="no-flagged" class="empty">No accesses were flagged or exempted in this period.</p>'
    return _table("flagged-table", st.rows, identified) + _left_out(st)


def _left_out(st: ReportStats) -> str:
    if not st.rows_left_out:
        return ""
    return (f'<p class="note">The table shows the first {number(len(st.rows))} rows; '
            f'{number(st.rows_left_out)} more are in sessions.csv.</p>')


def apart_html(st: ReportStats, identified: bool) -> str:
    """The sessions listed apart from the flagged table: probably teaching, and embed-only."""
    out = []
    if st.teaching_rows:
        out.append(f'<h3>Probably teaching ({number(st.teaching)})</h3><p class="note">Flagged, but a '
                   "teaching platform in a teaching zone during a lesson: most likely a teacher showing "
                   "a video or an article (professional use, clause 4.1). Review after the rest.</p>"
                   + _table("teaching-table", st.teaching_rows, identified))
    if st.embed_rows:
        out.append(f'<h3>Embedded content only ({number(st.embed_only)})</h3><p class="note">Not flagged: '
                   "only a platform's widgets, pixels, embedded players or shared CDN, which ordinary "
                   "sites load. Not use of the platform.</p>"
                   + _table("embed-table", st.embed_rows, identified))
    return "".join(out)


def _table(table_id: str, rows: list[dict[str, Any]], identified: bool) -> str:
    who = "Device / owner" if identified else "Device / staff alias"
    head = ("<tr><th>When (local time)</th><th>" + who + "</th><th>Zone</th><th>Period</th><th>Platform"
            "</th><th>Flags (policy clause)</th><th>Exemption (clause)</th></tr>")
    body = []
    for r in rows:
        cls = "flagged" if r["social.flagged"] else "exempt"
        owner = r["user.id"]
        person = e(r["host.id"]) + (f"<br><span class=\"muted\">{e(owner)}</span>" if owner else "")
        body.append(
            f'<tr class="{cls}"><td>{e(r["event.start"])}&ndash;{e(r["event.end"])}</td><td>{person}</td>'
            f'<td>{e(r["social.zone"])}</td><td>{e(r["social.period"])}</td><td>{e(r["social.platform"])}'
            f'<br><span class="muted host">{e(r["social.hostnames"])}</span></td>'
            f'<td>{e(r["social.flags"])}</td><td>{e(r["social.exemption"]) or "&mdash;"}</td></tr>'
        )
    return f'<table id="{table_id}"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'



def exemptions_html(st: ReportStats) -> str:
    if not st.exemptions:
        return ""
    items = "".join(f"<li><strong>{e(name)}</strong> ({number(n)}): {e(st.exemption_reasons.get(name))}</li>"
                    for name, n in st.exemptions.most_common())
    return f'<h3>Exemptions applied (clause 4.1)</h3><ul id="exemptions">{items}</ul>'


def render_report(ctx: ReportContext, st: ReportStats) -> str:
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
        summary="".join(f"<p>{p}</p>" for p in summary_paragraphs(ctx, st)),
        flagged=number(st.flagged),
        contact=number(st.contact),
        pupil=number(st.pupil),
        exempt=number(st.exempt),
        total=number(st.total),
        heatmap=heatmap_svg(st, ctx.period_order),
        by_zone=bars_svg("chart-zone", "Flagged accesses by zone", ordered(st.by_zone, ctx.zone_order)),
        by_platform=bars_svg("chart-platform", "Flagged accesses by platform", st.by_platform.most_common()),
        by_week=bars_svg("chart-week", "Flagged accesses by week",
                         week_items(st, ctx.first_day, ctx.last_day)),
        table=table_html(st, ctx.identified),
        exemptions=exemptions_html(st) + apart_html(st, ctx.identified),
        retention=number(ctx.retention_days),
        dpia=e(ctx.dpia_reference or "not set"),
        created_at=e(ctx.created_at),
        created_by=e(ctx.created_by),
        tool=e(f"social-monitor {ctx.tool_version}"),
        fingerprint=e(ctx.config_fingerprint),
        head_record=e(head.record_id),
        head_hash=e(head.hash),
        public_key=e(ctx.public_key or "none (this export is not signed)"),
        timezone=e(ctx.timezone),
    )


__all__ = ["ReportContext", "ReportStats", "render_report", "summary_paragraphs"]
