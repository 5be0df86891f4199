"""Is the store what its chain says? The log's links, then the sessions table as the log's projection.

`verify` runs over a DB-API connection to the tables of `monitor.store.schema`
(plain SQL, nothing SQLite-only), inside the caller's read transaction. The
links are checked by the pure `monitor.store.chain.walk`; here each session row
is then held to the record it names: the same session and version, content
that hashes to that record's digest, no newer version in the log, and no live
record whose session row is gone. Then the log's own history: every version of
a session follows the one before as the writer makes them (flags, signals and
observations only grow), every tombstone is named by a later purge record,
every review names a flagged version of its session (`monitor.store.reviews`), every
blanked entry of session 0 (a review, a coverage interval) is named by a later purge, and
the store's last signed head is still on the chain (`monitor.store.anchors`).
"""

from __future__ import annotations

import bisect
import json
from typing import Any

from monitor.store import anchors, reviews
from monitor.store.base import VerifyResult
from monitor.store.chain import PURGE_SESSION, ChainHead, body_digest, purged_ranges, walk
from monitor.store.codec import row_session
from monitor.store.schema import SESSION_COLUMNS
from monitor.store.sessions import canonical_json

RECORD_COLUMNS = "id, session_id, version, recorded_at, body, body_sha256, prev_hash, hash"


def verify(con: Any, cp: ChainHead | None, head: ChainHead) -> VerifyResult:
    """Walk the log's links from the checkpoint `cp`, then hold every session row to its record.

    Run it inside one read transaction: `head` and every row must come from the same moment."""
    cur = con.execute(f"SELECT {RECORD_COLUMNS} FROM records ORDER BY id")
    stream = (r for batch in iter(lambda: cur.fetchmany(2000), []) for r in batch)
    checked, fault = walk(stream, cp, lambda rid, sid, version: record_known(con, rid, sid, version))

    def broken(
        kind: str, record_id: int | None, problem: str, session_id: int | None = None
    ) -> VerifyResult:
        return VerifyResult(False, checked, 0, head, cp.record_id if cp else None, kind, record_id,
                            session_id, problem)

    if fault is not None:
        return broken(fault.kind, fault.record_id, fault.problem, fault.session_id)
    # every session row must be the latest record of its session, byte for byte
    sessions = 0
    joined = con.execute(
        f"SELECT {', '.join('s.' + c for c in SESSION_COLUMNS)}, r.session_id, r.version, r.body_sha256, "
        "r.body IS NULL FROM sessions s LEFT JOIN records r ON r.id = s.record_id ORDER BY s.id"
    )
    n = len(SESSION_COLUMNS)
    for batch in iter(lambda: joined.fetchmany(2000), []):
        for row in batch:
            s = row_session(row[:n])
            r_sid, r_version, r_digest, tomb = row[n:]
            if row[1] != s.key or row[24] != int(s.flagged):
                return broken("changed", s.record_id, f"session {s.id} changed (its index columns do "
                              "not match its content)", s.id)
            if r_sid is None:
                return broken("inserted", None, f"session {s.id} inserted (its record {s.record_id} "
                              "does not exist)", s.id)
            if r_sid != s.id or r_version != s.version or tomb:
                return broken("changed", s.record_id, f"session {s.id} changed (it does not match "
                              f"record {s.record_id})", s.id)
            if body_digest(canonical_json(s.body())) != r_digest:
                return broken("changed", s.record_id, f"session {s.id} changed (it differs from "
                              f"record {s.record_id})", s.id)
            sessions += 1
    row = con.execute(
        "SELECT s.id, r.id FROM sessions s JOIN records r ON r.session_id = s.id "
        "AND r.version > s.version LIMIT 1"
    ).fetchone()
    if row:
        return broken("changed", row[1], f"session {row[0]} changed (rolled back behind its record "
                      f"{row[1]})", row[0])
    row = con.execute(
        "SELECT r.session_id, r.id FROM records r WHERE r.body IS NOT NULL AND r.session_id <> ? AND NOT "
        "EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.session_id) LIMIT 1", (PURGE_SESSION,)
    ).fetchone()
    if row:
        return broken("removed", row[1], f"session {row[0]} removed (its record {row[1]} is still in "
                      "the log and was not purged)", row[0])
    for found in (tombstone_fault(con), succession_fault(con), reviews.review_fault(con)):
        if found is not None:
            return broken(*found)
    signed = anchors.last_signed(con)
    if signed is not None and (miss := anchors.contains(con, signed.chain_head, cp, f"the store's own last "
                                                        f"signed head ({signed.seq}, {signed.signed_at})")):
        return broken(miss.kind, miss.record_id, miss.problem)
    return VerifyResult(True, checked, sessions, head, cp.record_id if cp else None)


Fault = tuple[str, int | None, str, int | None]  # kind, record, problem, session


def tombstone_fault(con: Any) -> Fault | None:
    """The first tombstone that no later purge record names, or that belongs to a live session."""
    row = con.execute("SELECT r.id, r.session_id FROM records r JOIN sessions s ON s.id = r.session_id "
                      "WHERE r.body IS NULL ORDER BY r.id LIMIT 1").fetchone()
    if row:
        return ("removed", row[0], f"record {row[0]} blanked: session {row[1]} is still recorded, so no "
                "purge removed its history (an earlier version was erased)", row[1])
    purges = [(rid, purged_ranges(body)) for rid, body in con.execute(
        "SELECT id, body FROM records WHERE session_id = ? AND body IS NOT NULL ORDER BY id",
        (PURGE_SESSION,))]
    ids = [rid for rid, _ in purges]
    tombs = con.execute("SELECT id, session_id FROM records WHERE body IS NULL AND session_id <> ? "
                        "ORDER BY id", (PURGE_SESSION,))
    for batch in iter(lambda: tombs.fetchmany(2000), []):
        for rid, sid in batch:
            later = purges[bisect.bisect_right(ids, rid):]
            if not any(a <= sid <= b for _, ranges in later for a, b in ranges):
                return ("removed", rid, f"session {sid} removed (record {rid} was blanked, but no purge "
                        "recorded in the chain removed that session)", sid)
    return None


_SAME = ("device", "platform", "school", "zone", "period", "local_date")


def succession_problem(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """Whether `after` can be the version the writer made from `before`: a merge only adds."""
    if after.get("version") != before.get("version", 0) + 1:
        return f"version {after.get('version')} follows version {before.get('version')}"
    for name in _SAME:
        if after.get(name) != before.get(name):
            return f"its {name} changed from {before.get(name)!r} to {after.get(name)!r}"
    dropped = {f["name"] for f in before.get("flags", [])} - {f["name"] for f in after.get("flags", [])}
    if dropped:
        return f"it drops the flag {', '.join(sorted(dropped))} the version before had"
    if set(before.get("signals", [])) - set(after.get("signals", [])):
        return "it drops a signal the version before had"
    if before.get("exemption") and after.get("exemption") != before.get("exemption"):
        return "it drops the exemption the version before had"
    if after.get("observations", 0) < before.get("observations", 0) or after.get("first_seen", 0) > \
            before.get("first_seen", 0) or after.get("last_seen", 0) < before.get("last_seen", 0):
        return "it has fewer observations or a shorter span than the version before"
    return None


def succession_fault(con: Any) -> Fault | None:
    """The first record that is not a version the writer could have made after the one before it."""
    cur = con.execute("SELECT id, session_id, version, body FROM records WHERE session_id <> ? "
                      "ORDER BY session_id, version, id", (PURGE_SESSION,))
    last_sid, before = None, None
    for batch in iter(lambda: cur.fetchmany(2000), []):
        for rid, sid, version, body in batch:
            after = json.loads(body) if body is not None else None
            if after is not None and sid != last_sid and version != 1:
                return ("inserted", rid, f"record {rid} inserted (session {sid} starts at version "
                        f"{version})", sid)
            if after is not None and before is not None and sid == last_sid and (
                    why := succession_problem(before, after)):
                return ("inserted", rid, f"record {rid} inserted (session {sid} version {version} is not a "
                        f"version the store writes: {why})", sid)
            last_sid, before = sid, after
    return None


def record_known(con: Any, record_id: int, session_id: int, version: int) -> bool:
    """Whether a record is one the store wrote: its session points at it or moved past it."""
    row = con.execute(
        "SELECT 1 FROM sessions WHERE id = ? AND (record_id = ? OR version > ?)",
        (session_id, record_id, version),
    ).fetchone()
    if row:
        return True
    later = con.execute(
        "SELECT 1 FROM records WHERE session_id = ? AND version > ? AND id > ?",
        (session_id, version, record_id),
    ).fetchone()
    return later is not None


__all__ = ["RECORD_COLUMNS", "record_known", "succession_fault", "succession_problem", "tombstone_fault",
           "verify"]
