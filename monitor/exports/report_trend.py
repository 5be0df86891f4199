"""Context for the report: the previous period of the same length, and a weekly trend before the export.

Both are read from the same store snapshot as the export, in one pass over the
flagged sessions before the export's first day (plus one count), and kept as a
handful of counters. The store holds only what retention has left: a week or a
period before its oldest session is marked as not held, never shown as zero.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from monitor.exports.dates import day_bounds
from monitor.exports.report_charts import TrendBar
from monitor.exports.report_stats import Figures, ReportStats, person_of
from monitor.exports.report_words import e, long_date, minutes_text, number
from monitor.store.base import SessionReader
from monitor.store.ecs import minutes
from monitor.store.filter import SessionFilter
from monitor.store.sessions import Session

TREND_WEEKS = 8  # weeks of context before the export's first week
MAX_TREND_BARS = 60  # a year's export: the weeks with data, not an unreadable chart


@dataclass(slots=True)
class History:
    """What the store held before the export: the previous period and the weeks of context."""

    previous_first: date
    previous_last: date
    previous: Figures
    held_from: date | None  # the local day of the school's oldest session in the store
    context_weeks: Counter[str] = field(default_factory=Counter)  # Monday -> flagged
    context_minutes: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def held(self, first: date, last: date) -> str:
        """'all', 'part' or 'none': how much of [first, last] the store still holds."""
        if self.held_from is None or last < self.held_from:
            return "none"
        return "all" if first >= self.held_from else "part"


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def read_history(store: SessionReader, school: str, first: date, last: date, tz: ZoneInfo,
                 minimise: Callable[[Session], Session] | None = None) -> History:
    """The previous period ([first - n days, first - 1]) and `TREND_WEEKS` weeks before the export;
    `minimise` rewrites each session as the export's own (a pseudonymised export's minutes)."""
    days = (last - first).days + 1
    prev_first, prev_last = first - timedelta(days=days), first - timedelta(days=1)
    context_first = min(prev_first, monday_of(first) - timedelta(weeks=TREND_WEEKS))
    since, _ = day_bounds(context_first, prev_last, tz)
    prev_since, until = day_bounds(prev_first, prev_last, tz)
    oldest = next(iter(store.sessions(SessionFilter(school=school, limit=1))), None)
    history = History(prev_first, prev_last, Figures(),
                      date.fromisoformat(oldest.local_date) if oldest else None)
    previous = history.previous
    previous.total = store.count(SessionFilter(school=school, since=prev_since, until=until))
    prev_start = prev_since.timestamp()
    flagged = store.sessions(SessionFilter(school=school, since=since, until=until, flagged=True))
    for s in flagged if minimise is None else map(minimise, flagged):
        spent = minutes(s.first_seen, s.last_seen)
        monday = monday_of(date.fromisoformat(s.local_date)).isoformat()
        history.context_weeks[monday] += 1
        history.context_minutes[monday] += spent
        if s.first_seen >= prev_start:
            previous.add_flagged(s, person_of(s.device, s.owner), spent)
    return history


def _week_label(monday: date) -> str:
    return f"w/c {monday.day} {monday.strftime('%b %Y')}"


def trend_bars(history: History | None, st: ReportStats, first: date, last: date) -> list[TrendBar]:
    """`TREND_WEEKS` weeks of context, then every week of the export (a quiet week is information too)."""
    bars: list[TrendBar] = []
    start = monday_of(first)
    if history is not None:
        for k in range(TREND_WEEKS, 0, -1):
            monday = start - timedelta(weeks=k)
            key = monday.isoformat()
            held = history.held(monday, monday + timedelta(days=6))
            kind = {"all": "context", "part": "part", "none": "missing"}[held]
            bars.append(TrendBar(_week_label(monday), history.context_weeks.get(key, 0),
                                 history.context_minutes.get(key, 0.0), kind))
    monday = start
    while monday <= last:
        key = monday.isoformat()
        # a week that begins before the export's first day is completed by the context read before it
        flagged = st.by_week.get(key, 0) + (history.context_weeks.get(key, 0) if history else 0)
        spent = st.minutes_by_week.get(key, 0.0) + (history.context_minutes.get(key, 0.0) if history else 0)
        bars.append(TrendBar(_week_label(monday), flagged, spent, "export"))
        monday += timedelta(weeks=1)
    if len(bars) > MAX_TREND_BARS:
        bars = [b for b in bars if b.flagged] or bars[-MAX_TREND_BARS:]
    return bars[-MAX_TREND_BARS:]


def _change(now: float, before: float) -> str:
    if before == 0:
        return "new" if now else "&mdash;"
    pct = round(100 * (now - before) / before)
    return f"{pct:+d}%" if pct else "no change"


def comparison_html(history: History | None, st: ReportStats, flagged_only: bool) -> str:
    """This export's figures beside the previous period's, with the change; unheld periods are marked."""
    if history is None:
        return ""
    held = history.held(history.previous_first, history.previous_last)
    when = f"{long_date(history.previous_first)} to {long_date(history.previous_last)}"
    now, before = st.figures, history.previous
    rows: list[tuple[str, float, float, str, str]] = []
    if not flagged_only:
        rows.append(("Accesses recorded", now.total, before.total, number(now.total), number(before.total)))
    rows += [
        ("Flagged (clause 4.3)", now.flagged, before.flagged, number(now.flagged), number(before.flagged)),
        ("Flagged minutes", now.flagged_minutes, before.flagged_minutes, minutes_text(now.flagged_minutes),
         minutes_text(before.flagged_minutes)),
        ("In contact time", now.contact, before.contact, number(now.contact), number(before.contact)),
        ("In pupil areas", now.pupil, before.pupil, number(now.pupil), number(before.pupil)),
        ("People with a flag", len(now.people), len(before.people), number(len(now.people)),
         number(len(before.people))),
    ]
    body = []
    for label, a, b, a_text, b_text in rows:
        if held == "none":
            b_text, change = "not in the store", "&mdash;"
        else:
            change = _change(a, b)
        body.append(f"<tr><th scope=\"row\">{label}</th><td>{a_text}</td><td>{b_text}</td>"
                    f"<td>{change}</td></tr>")
    note = {
        "all": "",
        "part": (f" The store holds only part of the previous period (from "
                 f"{long_date(history.held_from) if history.held_from else ''}): its figures are partial."),
        "none": " The store holds nothing from the previous period (before its history or retention).",
    }[held]
    return (f'<p class="note">The previous period is the same number of days just before this one: '
            f"{e(when)}.{note}</p>"
            '<table id="previous-period"><thead><tr><th>Figure</th><th>This period</th>'
            '<th>Previous period</th><th>Change</th></tr></thead><tbody>'
            + "".join(body) + "</tbody></table>")


__all__ = ["MAX_TREND_BARS", "TREND_WEEKS", "History", "comparison_html", "monday_of", "read_history",
           "trend_bars"]
