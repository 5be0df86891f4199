"""Is the store what its chain says? The log's links, then the sessions table as the log's projection.

`verify` runs over a DB-API connection to the tables of `monitor.store.schema`
(plain SQL, nothing SQLite-only), inside the caller's read transaction. The
links are checked by the pure `monitor.store.chain.walk`; here each session row
is then held to the record it names: the same session and version, content
that hashes to that record's digest, no newer version in the log, and no live
record whose session row is gone.
"""

from __future__ import annotations

from typing import Any

from monitor.store.base import VerifyResult
from monitor.store.chain import ChainHead, body_digest, walk
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
        "SELECT r.session_id, r.id FROM records r WHERE r.body IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM sessions s WHERE s.id = r.session_id) LIMIT 1"
    ).fetchone()
    if row:
        return broken("removed", row[1], f"session {row[0]} removed (its record {row[1]} is still in "
                      "the log and was not purged)", row[0])
    return VerifyResult(True, checked, sessions, head, cp.record_id if cp else None)


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


__all__ = ["RECORD_COLUMNS", "record_known", "verify"]
