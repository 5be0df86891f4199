"""The investigator's report: `report.html` of an investigation export (clause 3.3).

One self-contained page, offline and printable like the principal's report (the same inline style,
`monitor/data/report.html`), but about one device or one person: the case and the reason, the scope
and period, every session in it with local times and minutes (flagged or not), the flags with their
clause, the reviews of those sessions (superseded ones too), and the proof: the chain head the export
was taken at, the signed head, how many chain records `evidence.jsonl` holds and how to check them.
The rows are the principal report's (`report_detail.sessions_table`, cells from `ecs.report_cells`);
every value from the network, the store or the config is escaped.

`InvestigationReport` is fed one session at a time while the export streams them, so the page costs
the same single pass and memory bounded by `MAX_ROWS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from monitor.exports.report_detail import sessions_table
from monitor.exports.report_stats import MAX_ROWS
from monitor.exports.report_words import e, minutes_text, number, plural
from monitor.exports.reviews import ReviewColumns
from monitor.store.ecs import minutes, report_cells
from monitor.store.reviews import Review
from monitor.store.sessions import Session

CSP = "default-src 'none'; style-src 'unsafe-inline'"


@dataclass(slots=True)
class CaseFacts:
    """What the report says about the export itself (from its request and manifest)."""

    trust: str
    case: str
    reason: str
    scope: str  # device | staff
    target: str
    period: str  # in words: "2026-11-02 to 2026-11-29", or the whole history stored
    timezone: str
    created_at: str
    created_by: str
    chain_head: dict[str, Any]  # {record_id, hash}
    signed_head: dict[str, Any] | None
    public_key: str | None
    evidence_records: int
    devices: list[str] = field(default_factory=list)
    staff: list[str] = field(default_factory=list)


class InvestigationReport:
    """Collects the sessions of one investigation export as they are written, then renders the page."""

    def __init__(self, tz: ZoneInfo, reviews: Iterable[Review]):
        self.tz = tz
        self.all_reviews = list(reviews)
        self.review_cells = ReviewColumns(self.all_reviews, identified=True)
        self.rows: list[dict[str, Any]] = []
        self.left_out = 0
        self.sessions = 0
        self.flagged = 0
        self.minutes = 0.0
        self.flagged_minutes = 0.0
        self.ids: set[int] = set()

    def add(self, s: Session, *_: Any) -> None:
        spent = minutes(s.first_seen, s.last_seen)
        self.sessions += 1
        self.minutes += spent
        if s.flagged:
            self.flagged += 1
            self.flagged_minutes += spent
        if s.id is not None:
            self.ids.add(s.id)
        if len(self.rows) >= MAX_ROWS:
            self.left_out += 1
            return
        cells = report_cells(s, s.device, None, s.owner, s.id, self.tz)
        cells["review"] = self.review_cells.cell(s)
        cells["session"] = s.id
        self.rows.append(cells)

    def render(self, facts: CaseFacts) -> str:
        body = [
            f"<header><h1>Investigation report: case {e(facts.case)}</h1>"
            f'<p class="meta"><span>{e(facts.trust)}</span><span>Identified</span>'
            f"<span>Made {e(facts.created_at)} by {e(facts.created_by)}</span></p></header>",
            self._case_html(facts), self._sessions_html(), self._reviews_html(), self._proof_html(facts),
        ]
        return (
            '<!DOCTYPE html>\n<html lang="en-GB"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="referrer" content="no-referrer">'
            f"<title>{e(f'Investigation report: case {facts.case}')}</title>"
            f"<style>{_style()}</style></head><body>" + "".join(body) + "</body></html>\n"
        )

    def _case_html(self, f: CaseFacts) -> str:
        what = f"device {f.target}" if f.scope == "device" else \
            f"staff id {f.target} (sessions whose owner is this person, on any device)"
        items = [("Case", f.case), ("Reason given", f.reason), ("Scope", what),
                 ("Period", f"{f.period} (times are local to {f.timezone})"),
                 ("Devices in it", ", ".join(f.devices) or "none"),
                 ("Staff ids in it", ", ".join(f.staff) or "none")]
        rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in items)
        summary = (f"{plural(self.sessions, 'session')} in scope ({minutes_text(self.minutes)}), of which "
                   f"{number(self.flagged)} flagged under clause 4.3 ({minutes_text(self.flagged_minutes)}). "
                   "Nothing outside this scope is in this export.")
        return (f'<section id="case"><h2>The case</h2><table id="case-table">{rows}</table>'
                f'<p id="case-summary">{e(summary)}</p></section>')

    def _sessions_html(self) -> str:
        if not self.rows:
            table = '<p id="no-sessions" class="empty">No session in this scope and period.</p>'
        else:
            table = sessions_table("sessions-table", self.rows, True)
        more = (f'<p class="note">The table shows the first {number(len(self.rows))} sessions; '
                f"{number(self.left_out)} more are in sessions.csv.</p>" if self.left_out else "")
        return ('<section id="sessions"><h2>Sessions</h2><p class="note">One row per access session (one '
                "device, one platform, one place and period), from first to last sighting in local time; "
                "minutes are a lower bound (a session seen once counts none). Red rows were flagged, green "
                f"rows exempt (clause 4.1).</p>{table}{more}</section>")

    def _reviews_html(self) -> str:
        mine = sorted((r for r in self.all_reviews if r.session_id in self.ids), key=lambda r: r.record_id)
        if not mine:
            return ('<section id="reviews"><h2>Reviews</h2><p id="no-reviews" class="empty">No session in '
                    "this export has been reviewed.</p></section>")
        current = {r.record_id for r in self.review_cells.current.values()}
        rows = "".join(
            f"<tr><td>{e(r.session_id)}</td><td>{e(_local(r.recorded_at, self.tz))}</td>"
            f"<td>{e(r.outcome)}</td>"
            f"<td>{e(r.by)}<br><span class=\"muted\">{e(r.os_user)}</span></td><td>{e(r.reason)}</td>"
            f"<td>{e(r.note) or '&mdash;'}</td><td>{'current' if r.record_id in current else 'superseded'}"
            "</td></tr>" for r in mine)
        return ('<section id="reviews"><h2>Reviews</h2><table id="reviews-table"><thead><tr><th>Session</th>'
                "<th>Reviewed (local time)</th><th>Outcome</th><th>By</th><th>Reason</th><th>Note</th>"
                f"<th>Status</th></tr></thead><tbody>{rows}</tbody></table></section>")

    def _proof_html(self, f: CaseFacts) -> str:
        head = f.chain_head
        signed = f.signed_head
        items = [("Chain head at export", f"record {head.get('record_id')}, hash {head.get('hash')}"),
                 ("Signed head", f"number {signed.get('seq')}, record {signed.get('record_id')}, signed "
                                 f"{signed.get('signed_at')} by {signed.get('key')}" if signed else
                  "none (this export is not signed)"),
                 ("Gateway's public key", f.public_key or "none (this export is not signed)"),
                 ("evidence.jsonl", f"{plural(f.evidence_records, 'chain record')}, one per session: each "
                                    "session's latest version exactly as the store's hash chain holds it")]
        rows = "".join(f"<tr><th>{e(k)}</th><td><code>{e(v)}</code></td></tr>" for k, v in items)
        return ('<section id="proof"><h2>Proof that the records were not altered</h2>'
                f'<table id="proof-table">{rows}</table><p>To check, on any computer, with the gateway\'s '
                "public key taken from somewhere other than this export:</p>"
                "<pre>social-monitor verify-export DIR --public-key KEY</pre>"
                "<p>and on the gateway, that its store still holds the signed head "
                "and every record before it:</p><pre>social-monitor verify --against DIR</pre></section>")


def _local(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="minutes")


def _style() -> str:
    """The principal report's inline style, so both pages look and print alike."""
    page = resources.files("monitor").joinpath("data/report.html").read_text(encoding="utf-8")
    found = re.search(r"<style>(.*?)</style>", page, re.S)
    return found.group(1) if found else ""


__all__ = ["CaseFacts", "InvestigationReport"]
