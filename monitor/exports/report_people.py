"""Totals per person within the export, still under the export's aliases, most flags first.

Flags are rarely spread evenly: a few people usually account for most of them.
The table ranks aliases by flagged sessions and shows each one's running share
of all flags, so those few stand out without a spreadsheet. An alias is the
staff alias, else the device alias for a shared device without an owner; it
holds only within this export, as everywhere else in it.
"""

from __future__ import annotations

from monitor.exports.report_stats import ReportStats
from monitor.exports.report_words import e, minutes_text, number, plural

MAX_PEOPLE = 25  # rows in the printed table; the rest are summed in one line


def people_html(st: ReportStats, identified: bool, max_people: int = MAX_PEOPLE) -> str:
    ranked = st.ranked_people()
    if not ranked:
        return '<p id="no-people" class="empty">Nobody had a flagged access in this period.</p>'
    total = st.flagged or 1
    who = "Person (staff id, else device)" if identified else "Person (alias)"
    head = (f"<tr><th>{who}</th><th>Flagged sessions</th><th>Flagged minutes</th><th>In contact time</th>"
            "<th>In pupil areas</th><th>Devices</th><th>Share of flags (running)</th></tr>")
    body = []
    running = 0
    for person in ranked[:max_people]:
        running += person.flagged
        body.append(
            f'<tr class="person"><td>{e(person.alias)}</td><td>{number(person.flagged)}</td>'
            f"<td>{e(minutes_text(person.minutes))}</td>"
            f"<td>{number(person.contact)} ({e(minutes_text(person.contact_minutes))})</td>"
            f"<td>{number(person.pupil)} ({e(minutes_text(person.pupil_minutes))})</td>"
            f"<td>{number(len(person.devices))}</td>"
            f"<td>{round(100 * person.flagged / total)}% ({round(100 * running / total)}%)</td></tr>"
        )
    rest = ranked[max_people:]
    if rest:
        flags = sum(p.flagged for p in rest)
        spent = sum(p.minutes for p in rest)
        body.append(f'<tr class="rest"><td>{plural(len(rest), "more person", "more people")}</td>'
                    f"<td>{number(flags)}</td><td>{e(minutes_text(spent))}</td><td></td><td></td><td></td>"
                    f"<td>{round(100 * flags / total)}% (100%)</td></tr>")
    lead = _lead(ranked, total)
    return (f'<p class="note">{lead}</p><table id="people-table"><thead>{head}</thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _lead(ranked: list, total: int) -> str:
    """How few people account for half the flags, in words."""
    running = 0
    for k, person in enumerate(ranked, 1):
        running += person.flagged
        if running * 2 >= total:
            return (f"{plural(k, 'person', 'people')} of {number(len(ranked))} with a flag "
                    f"account{'s' if k == 1 else ''} for half or more of the flagged accesses "
                    f"({round(100 * running / total)}%).")
    return ""


__all__ = ["MAX_PEOPLE", "people_html"]
