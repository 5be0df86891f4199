"""Reviews in what leaves the system: columns in sessions.csv/jsonl, the report's counts, a SAR's history.

An export shows each flagged session's current review (`monitor.store.reviews`) in seven
columns after the ECS ones: status (``open`` or ``reviewed``; empty for a session that is not
flagged), outcome, when, who (the name given and the OS user), the session version reviewed,
the note and the reason. A note and a reason are free text that may name the person, so a
pseudonymised export withholds them (`WITHHELD`); an identified export and a SAR carry them.
A SAR also lists every review of the subject's sessions, superseded ones included
(``reviews.jsonl``): all that is held about them (UK GDPR art. 15).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import Any

from monitor.exports.log import LogEntry
from monitor.exports.sealed import ExportWriter
from monitor.store.reviews import OUTCOMES, Review, ReviewedSession, latest
from monitor.store.sessions import Session

COLUMNS = ("social.review.status", "social.review.outcome", "social.review.reviewed_at", "social.review.by",
           "social.review.os_user", "social.review.version", "social.review.note", "social.review.reason")
WITHHELD = "[withheld: identified exports only]"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ReviewColumns:
    """The review columns of each session an export writes, and the counts its report shows.

    `values` runs once per session written (`monitor.exports.encode.write_sessions`), so the
    counts cover every session, not only the rows the report's table has room for."""

    columns = COLUMNS

    def __init__(self, reviews: Iterable[Review], identified: bool):
        self.current = latest(reviews)
        self.identified = identified
        self.reviewed = 0  # flagged sessions written with a review
        self.open = 0  # flagged sessions written without one
        self.extended = 0  # reviewed, but the session grew after the version reviewed
        self.outcomes: Counter[str] = Counter()

    def review_of(self, s: Session) -> Review | None:
        return self.current.get(s.id) if s.flagged and s.id is not None else None

    def values(self, s: Session) -> tuple[Any, ...]:
        """The columns' values (None for an empty cell), counted."""
        if not s.flagged:
            return (None,) * len(COLUMNS)
        r = self.review_of(s)
        if r is None:
            self.open += 1
            return ("open",) + (None,) * (len(COLUMNS) - 1)
        self.reviewed += 1
        self.outcomes[r.outcome] += 1
        self.extended += s.version > r.version
        note, reason = (r.note or None, r.reason) if self.identified else \
            (WITHHELD if r.note else None, WITHHELD)
        return ("reviewed", r.outcome, iso(r.recorded_at), r.by, r.os_user, r.version, note, reason)

    def add(self, s: Session, line: str, row: tuple) -> tuple[str, tuple]:
        """The session's JSON line (ending '}\\n') and CSV row with the review fields added, counted once."""
        values = self.values(s)
        cells = "".join(f", {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                        for k, v in zip(COLUMNS, values, strict=True))
        return f"{line[:-2]}{cells}}}\n", (*row, *("" if v is None else v for v in values))

    # --- the report (monitor.exports.report) ------------------------------------------------

    def cell(self, s: Session) -> str:
        """The report table's text for one row."""
        if not s.flagged:
            return ""
        r = self.review_of(s)
        if r is None:
            return "Open"
        grew = " (session extended after review)" if s.version > r.version else ""
        day = iso(r.recorded_at)[:10]
        return f"{r.outcome[:1].upper()}{r.outcome[1:]}: {r.by}, {day}{grew}"

    def summary_html(self) -> str:
        """One paragraph: how many flagged sessions were reviewed, with which outcomes, how many open."""
        total = self.reviewed + self.open
        if total == 0:
            return ""
        text = (f'<p id="review-summary"><strong>Reviewed: {self.reviewed:,} of {total:,} flagged '
                f"accesses; open: {self.open:,}.</strong>")
        if self.outcomes:
            parts = ", ".join(f"{escape(o)} ({n:,})" for o, n in sorted(
                self.outcomes.items(), key=lambda item: list(OUTCOMES).index(item[0])))
            text += f" Outcomes: {parts}."
        if self.extended:
            text += (f" {self.extended:,} grew after their review (later sightings joined them): "
                     "the review covers the version it names.")
        return text + (" A review records what was done about a flag; it never changes the record "
                       "itself (UK GDPR art. 16).</p>")


def sar_reviews(writer: ExportWriter, reviews: list[Review], session_ids: set[int]) -> int:
    """``reviews.jsonl``: every review of the subject's sessions, superseded ones too, oldest first."""
    current = {r.record_id for r in latest(reviews).values()}
    n = 0
    with writer.open_text("reviews.jsonl") as fh:
        for r in reviews:
            if r.session_id in session_ids:
                entry = {**r.to_dict(), "recorded_at": iso(r.recorded_at), "current": r.record_id in current}
                fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
    return n


def subject_of(session: ReviewedSession, owners: dict[str, str]) -> str | None:
    """The person a reviewed session is about: its owner, else the owner the inventory gives its device."""
    return session.owner or owners.get(session.device)


def log_entry(review: Review, session: ReviewedSession, subject: str, store: str, record_hash: str,
              at: float) -> LogEntry:
    """The export log's entry for a review that is about a person: who looked at whose record, and why.

    Nothing leaves in a file, so `out` is the store and `manifest_sha256` the review record's hash."""
    return LogEntry(kind="review", at=iso(at), user=review.os_user, out=store, manifest_sha256=record_hash,
                    sessions=1, school=session.school, identified=True, reason=review.reason,
                    subject=subject, extra={"record": review.record_id, "session": review.session_id,
                                            "version": review.version, "by": review.by})


__all__ = ["COLUMNS", "WITHHELD", "ReviewColumns", "log_entry", "sar_reviews", "subject_of"]
