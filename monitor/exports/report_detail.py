"""The report's detail: one row per flagged access session, and the sessions listed apart.

This is what makes a month's report long, so it prints after the summary, the
per-person totals and the charts, starting on a new page. At most `MAX_ROWS`
rows per table; sessions.csv always has every row.
"""

from __future__ import annotations

from typing import Any

from monitor.exports.report_stats import ReportStats
from monitor.exports.report_words import e, number


def table_html(st: ReportStats, identified: bool) -> str:
    if not st.rows:
        return '<p id="no-flagged" class="empty">No accesses were flagged or exempted in this period.</p>'
    return sessions_table("flagged-table", st.rows, identified) + _left_out(st)


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
                   + sessions_table("teaching-table", st.teaching_rows, identified))
    if st.embed_rows:
        out.append(f'<h3>Embedded content only ({number(st.embed_only)})</h3><p class="note">Not flagged: '
                   "only a platform's widgets, pixels, embedded players or shared CDN, which ordinary "
                   "sites load. Not use of the platform.</p>"
                   + sessions_table("embed-table", st.embed_rows, identified))
    return "".join(out)


def sessions_table(table_id: str, rows: list[dict[str, Any]], identified: bool) -> str:
    who = "Device / owner" if identified else "Device / staff alias"
    reviewed = bool(rows) and "review" in rows[0]
    head = ("<tr><th>When (local time)</th><th>Minutes</th><th>" + who + "</th><th>Zone</th><th>Period</th>"
            "<th>Platform</th><th>Flags (policy clause)</th><th>Exemption (clause)</th>"
            + ("<th>Review</th>" if reviewed else "") + "</tr>")
    body = []
    for r in rows:
        cls = "flagged" if r["social.flagged"] else "exempt" if r["social.exemption"] else "plain"
        owner = r["user.id"]
        person = e(r["host.id"]) + (f"<br><span class=\"muted\">{e(owner)}</span>" if owner else "")
        body.append(
            f'<tr class="{cls}"><td>{e(r["event.start"])}&ndash;{e(r["event.end"])}</td>'
            f'<td class="minutes">{e(r["social.minutes"])}</td><td>{person}</td>'
            f'<td>{e(r["social.zone"])}</td><td>{e(r["social.period"])}</td><td>{e(r["social.platform"])}'
            f'<br><span class="muted host">{e(r["social.hostnames"])}</span></td>'
            f'<td>{e(r["social.flags"])}</td><td>{e(r["social.exemption"]) or "&mdash;"}</td>'
            + (f'<td class="review">{e(r["review"]) or "&mdash;"}</td>' if reviewed else "") + "</tr>"
        )
    return f'<table id="{table_id}"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'

def exemptions_html(st: ReportStats) -> str:
    if not st.exemptions:
        return ""
    items = "".join(f"<li><strong>{e(name)}</strong> ({number(n)}): {e(st.exemption_reasons.get(name))}</li>"
                    for name, n in st.exemptions.most_common())
    return f'<h3>Exemptions applied (clause 4.1)</h3><ul id="exemptions">{items}</ul>'


__all__ = ["apart_html", "exemptions_html", "sessions_table", "table_html"]
