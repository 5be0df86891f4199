"""The report in words: numbers, dates, minutes and the summary's paragraphs, all escaped.

Every value that came from the network or the config (hostnames, zone and
period names) goes through `e`: a hostname is attacker-controlled text.
"""

from __future__ import annotations

from datetime import date
from html import escape
from typing import TYPE_CHECKING, Any

from monitor.exports.completeness import none_flagged_sentence

HIDDEN_KINDS = {"encrypted-dns": "encrypted DNS", "vpn": "VPN", "tor": "Tor", "ech": "encrypted hello"}

if TYPE_CHECKING:
    from monitor.exports.report import ReportContext
    from monitor.exports.report_stats import ReportStats

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")


def e(value: Any) -> str:
    """HTML-escape anything, quotes included (values land in attributes too)."""
    return escape("" if value is None else str(value), quote=True)


def minutes_text(value: float) -> str:
    """Minutes as a principal reads them: '0 minutes', 'under a minute', '47 minutes', '3 h 05 min'."""
    whole = round(value)
    if value <= 0:
        return "0 minutes"
    if whole < 1:
        return "under a minute"
    if whole < 120:
        return f"{whole} minute{'s' if whole != 1 else ''}"
    return f"{whole // 60:,} h {whole % 60:02d} min"


def idle_gap_rule(idle_gap_seconds: int) -> str:
    """The rule by which minutes are counted, in words (the store's `idle_gap_seconds`)."""
    gap = (f"{idle_gap_seconds // 60} minute{'s' if idle_gap_seconds != 60 else ''}"
           if idle_gap_seconds % 60 == 0 else f"{idle_gap_seconds} seconds")
    return (f"Minutes run from a session's first to its last sighting. Sightings of one device and platform "
            f"in one place and period belong to one session while they are less than {gap} apart (the idle "
            f"gap); a longer gap starts a new session. A session seen once counts as no time, so minutes "
            f"are a lower bound.")


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
        out.append(none_flagged_sentence(lead, ctx.completeness))  # said only of a fully observed period
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
            f"{' and '.join(parts)}{both}, from {plural(len(st.devices), 'device')}, "
            f"<strong>{minutes_text(st.figures.flagged_minutes)}</strong> of use in all."
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


__all__ = ["accesses", "e", "idle_gap_rule", "long_date", "minutes_text", "number", "plural", "span_words",
           "summary_paragraphs"]
