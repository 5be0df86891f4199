"""Reviews of flagged sessions: what was done about a flag, kept in the hash chain beside the sessions.

A review is a non-session entry of the chain (session id 0, like a purge) whose body is
``{"review": {...}}``: the session and the version reviewed (and that version's record), an
outcome from `OUTCOMES`, a note, the reason, who reviewed it (the name given and the OS user)
and the review it supersedes. The session's own record is never touched: a review corrects
what a record *means* without altering it (UK GDPR art. 16), so `verify` still holds every
session to its record. A later review of a session supersedes the earlier one; both stay.

Retention: a review goes with its session. When a session is purged its reviews are blanked
too (tombstones, like the session's versions) and the purge record names them (`entries`), so
`verify` can tell a purged review from an erased one (`review_fault`). Plain SQL over the
tables of `monitor.store.schema`; there is no reviews table to keep in step with the chain.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.logsetup import get_logger
from monitor.store.chain import PURGE_SESSION, purged_entries
from monitor.store.entries import append_entry, chain_tip
from monitor.store.transactions import own_connection

log = get_logger("monitor.store.reviews")

# The outcomes a school records, each with what it means (docs/exports.md, `review --outcomes`).
OUTCOMES: dict[str, str] = {
    "teaching use": "part of a lesson or its preparation: professional use under clause 4.1",
    "professional use": "work other than teaching (the school's own accounts, safeguarding, "
                        "communications): clause 4.1",
    "personal use: spoken to": "personal use in contact time or a pupil area; the member of staff "
                               "was spoken to informally",
    "personal use: formal action": "personal use referred under the disciplinary procedure (clause 3.3)",
    "no action": "reviewed; nothing further to do (e.g. a moment's use, already known)",
    "not this person": "the device was used by someone else (shared, borrowed or lent): the "
                       "session does not describe its owner",
    "recording error": "the record does not describe what happened (wrong place, period or platform): "
                       "it is kept, and this review says it is wrong",
}
MAX_NOTE = 2000  # characters: a few sentences, never a case file
MAX_REASON = 500
MAX_NAME = 120
KIND = "review"
LIKE = '{"review":%'  # canonical JSON with one top-level key: every review body starts so


class ReviewError(UserError):
    """A review that cannot be recorded as asked: nothing is written."""


@dataclass(frozen=True, slots=True)
class Review:
    """One review as the chain holds it; `record_id` and `recorded_at` are its record's header."""

    record_id: int
    recorded_at: float
    session_id: int
    version: int  # the session's version that was reviewed
    session_record: int  # that version's record
    outcome: str
    note: str
    reason: str
    by: str  # the name the reviewer gave (--by)
    os_user: str  # the signed-in OS user who ran the command
    supersedes: int | None  # the record of the session's review before this one

    def body(self) -> dict[str, Any]:
        return {KIND: {"session": self.session_id, "version": self.version, "record": self.session_record,
                       "outcome": self.outcome, "note": self.note, "reason": self.reason, "by": self.by,
                       "os_user": self.os_user, "supersedes": self.supersedes}}

    def to_dict(self) -> dict[str, Any]:
        """For listings: the header's record and time beside the body's fields."""
        fields = {k: v for k, v in self.body()[KIND].items() if k != "record"}
        return {"record_id": self.record_id, "recorded_at": self.recorded_at, **fields,
                "session_record": self.session_record}


@dataclass(frozen=True, slots=True)
class ReviewedSession:
    """What the review command may need to say about the session it reviewed (the export log)."""

    id: int
    owner: str | None
    device: str
    school: str


def canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_outcome(text: str | None) -> str:
    """The outcome as recorded: one of `OUTCOMES`, case and spacing forgiven."""
    given = " ".join((text or "").split()).lower()
    if given in OUTCOMES:
        return given
    shown = "nothing" if not given else repr(text)
    raise ReviewError(f"--outcome: {shown} is not an outcome (one of: {'; '.join(OUTCOMES)})")


def check_text(option: str, text: str | None, limit: int, *, required: bool, lines: bool = False) -> str:
    """Free text as recorded: trimmed, bounded, no control characters (a note may have line breaks)."""
    value = (text or "").strip()
    if required and not value:
        raise ReviewError(f"{option}: required (e.g. {option} 'weekly review of flags, 2026-11'); "
                          "nothing was recorded")
    if len(value) > limit:
        raise ReviewError(f"{option}: {len(value)} characters, at most {limit}; nothing was recorded")
    allowed = {"\n", "\t"} if lines else set()
    for ch in value:
        if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise ReviewError(f"{option}: control character U+{ord(ch):04X} not allowed; "
                              "nothing was recorded")
    return value


def parse_review(record_id: int, recorded_at: float, body: str) -> Review:
    """A review from its record; ValueError naming the field when it is not one social-monitor writes."""
    try:
        outer = json.loads(body)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(outer, dict) or list(outer) != [KIND] or not isinstance(outer[KIND], dict):
        raise ValueError('not a {"review": {...}} body')
    r = outer[KIND]
    fields = {"session": int, "version": int, "record": int, "outcome": str, "note": str, "reason": str,
              "by": str, "os_user": str, "supersedes": (int, type(None))}
    if set(r) != set(fields):
        raise ValueError(f"fields {', '.join(sorted(set(r) ^ set(fields)))} wrong")
    for name, kind in fields.items():
        if not isinstance(r[name], kind) or isinstance(r[name], bool):  # type: ignore[arg-type]
            raise ValueError(f"{name}: wrong type")
    if r["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome {r['outcome']!r} is not one of the outcomes")
    if r["session"] < 1 or r["version"] < 1 or not r["reason"].strip() or not r["by"].strip():
        raise ValueError("session, version, reason or reviewer missing")
    return Review(record_id, float(recorded_at), r["session"], r["version"], r["record"], r["outcome"],
                  r["note"], r["reason"], r["by"], r["os_user"], r["supersedes"])


def read_reviews(con: Any) -> list[Review]:
    """Every live review in the chain, oldest first (inside the caller's snapshot).

    One that does not parse is left out and logged: `verify` names it."""
    out = []
    for rid, at, body in con.execute("SELECT id, recorded_at, body FROM records WHERE session_id = ? AND "
                                     "body LIKE ? ORDER BY id", (PURGE_SESSION, LIKE)):
        try:
            out.append(parse_review(rid, at, body))
        except ValueError as exc:
            log.warning("review_unreadable", record=rid, problem=str(exc))
    return out


def latest(reviews: Iterable[Review]) -> dict[int, Review]:
    """Each reviewed session's current review: the newest supersedes the rest."""
    found: dict[int, Review] = {}
    for r in reviews:
        if r.session_id not in found or r.record_id > found[r.session_id].record_id:
            found[r.session_id] = r
    return found


def append_review(
    path: str | Path, session_id: int, outcome: str, note: str, reason: str, by: str, os_user: str,
    now: float, before_commit: Callable[[Review, ReviewedSession, str], None] | None = None,
) -> Review:
    """Append one review at the chain's head, in one write transaction of its own.

    The session must exist and be flagged now. `before_commit(review, session, record_hash)` runs
    last inside the transaction (the export log's entry): if it fails nothing is recorded."""
    with own_connection(path) as con:
        row = con.execute("SELECT flagged, version, record_id, owner, device, school FROM sessions "
                          "WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise ReviewError(f"session {session_id}: no such session in {path} (purged, or never recorded: "
                              "see `social-monitor events`); nothing was recorded")
        flagged, version, session_record, owner, device, school = row
        if not flagged:
            raise ReviewError(f"session {session_id} is not flagged (no clause 4.3 flag, or exempt under "
                              "4.1): only flagged sessions are reviewed; nothing was recorded")
        previous = latest(r for r in read_reviews(con) if r.session_id == session_id).get(session_id)
        rid = chain_tip(con).record_id + 1
        review = Review(rid, round(now, 6), session_id, int(version), int(session_record), outcome, note,
                        reason, by, os_user, previous.record_id if previous else None)
        hashed = append_entry(con, canonical(review.body()), now).hash
        if before_commit is not None:
            before_commit(review, ReviewedSession(session_id, owner, device, school), hashed)
    log.info("session_reviewed", store=str(path), session=session_id, record=rid, outcome=outcome)
    return review


# --- retention (monitor.store.retention) ---------------------------------------------------------


def of_sessions(con: Any, session_ids: Iterable[int]) -> list[int]:
    """The records of the live reviews of these sessions: they go with the sessions when purged."""
    doomed = set(session_ids)
    return [r.record_id for r in read_reviews(con) if r.session_id in doomed] if doomed else []


def unshipped_clause(con: Any, acked: int) -> str:
    """SQL that keeps back a session whose review the central store has not acknowledged yet."""
    held = sorted({r.session_id for r in read_reviews(con) if r.record_id > acked})
    return f" AND id NOT IN ({', '.join(str(int(s)) for s in held)})" if held else ""


def blank(con: Any, record_ids: list[int]) -> None:
    con.executemany("UPDATE records SET body = NULL WHERE id = ? AND session_id = ?",
                    [(rid, PURGE_SESSION) for rid in record_ids])


# --- verify (monitor.store.integrity) -------------------------------------------------------------

Fault = tuple[str, int | None, str, int | None]  # kind, record, problem, session


def review_fault(con: Any) -> Fault | None:
    """The first review social-monitor could not have written, or a chain entry erased outside a purge.

    A review must parse, name a version of its session that exists and was flagged, and supersede
    exactly the review of that session before it. A blanked entry of session 0 must be named by a
    later purge record (its `entries`)."""
    before: dict[int, int] = {}
    for rid, at, body in con.execute("SELECT id, recorded_at, body FROM records WHERE session_id = ? AND "
                                     "body LIKE ? ORDER BY id", (PURGE_SESSION, LIKE)).fetchall():
        try:
            r = parse_review(rid, at, body)
        except ValueError as exc:
            return ("inserted", rid, f"record {rid} inserted (a review social-monitor does not write: {exc})",
                    None)
        row = con.execute("SELECT session_id, version, body FROM records WHERE id = ?",
                          (r.session_record,)).fetchone()
        if row is None or row[0] != r.session_id or row[1] != r.version or r.session_record >= rid:
            return ("inserted", rid, f"record {rid} inserted (a review of session {r.session_id} version "
                    f"{r.version} naming record {r.session_record}, which is not that version)", r.session_id)
        if row[2] is None:
            return ("removed", rid, f"record {rid} kept: session {r.session_id} was purged but its review "
                    "was not purged with it", r.session_id)
        session = json.loads(row[2])
        if not session.get("flags") or session.get("exemption"):
            return ("inserted", rid, f"record {rid} inserted (it reviews session {r.session_id} version "
                    f"{r.version}, which was not flagged)", r.session_id)
        if r.supersedes != before.get(r.session_id):
            return ("inserted", rid, f"record {rid} inserted (it supersedes review {r.supersedes}, but the "
                    f"review of session {r.session_id} before it is {before.get(r.session_id)})",
                    r.session_id)
        before[r.session_id] = rid
    named: list[tuple[int, list[tuple[int, int]]]] = [
        (rid, purged_entries(body)) for rid, body in con.execute(
            "SELECT id, body FROM records WHERE session_id = ? AND body LIKE ? ORDER BY id",
            (PURGE_SESSION, '{"purge":%'))]
    for (rid,) in con.execute("SELECT id FROM records WHERE session_id = ? AND body IS NULL ORDER BY id",
                              (PURGE_SESSION,)).fetchall():
        if not any(pid > rid and a <= rid <= b for pid, ranges in named for a, b in ranges):
            return ("removed", rid, f"record {rid} blanked: a review or other chain entry erased, and no "
                    "purge recorded in the chain removed it", None)
    return None


__all__ = ["KIND", "MAX_NAME", "MAX_NOTE", "MAX_REASON", "OUTCOMES", "Review", "ReviewError",
           "ReviewedSession", "append_review", "blank", "check_outcome", "check_text", "latest",
           "of_sessions", "parse_review", "read_reviews", "review_fault", "unshipped_clause"]
