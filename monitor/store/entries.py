"""Chain entries that are not sessions: records of session 0 appended at the chain's head.

A purge, a coverage interval, a review and a legal hold are each one record of
session 0 whose body's single key names its kind (`monitor.store.chain`). They
link to the chain's tip the same way: the last record, or, once retention has
compacted everything away, the last checkpoint, or `GENESIS` in a new store.
"""

from __future__ import annotations

from typing import Any

from monitor.store.chain import GENESIS, PURGE_SESSION, ChainHead, body_digest, record_hash


def chain_tip(con: Any) -> ChainHead:
    """The link a new record follows: the last record, else the last checkpoint, else GENESIS."""
    row = con.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone() or \
        con.execute("SELECT through_record, hash FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    return ChainHead(int(row[0]), row[1]) if row else ChainHead(0, GENESIS)


def append_entry(con: Any, body: str, now: float) -> ChainHead:
    """Append `body` as a record of session 0 at the chain's tip, inside the caller's write
    transaction; returns the new record's id and hash."""
    tip = chain_tip(con)
    rid, recorded_at, digest = tip.record_id + 1, round(now, 6), body_digest(body)
    hashed = record_hash(rid, PURGE_SESSION, 1, recorded_at, digest, tip.hash)
    con.execute(
        "INSERT INTO records (id, session_id, version, recorded_at, body, body_sha256, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (rid, PURGE_SESSION, 1, recorded_at, body, digest, tip.hash, hashed),
    )
    return ChainHead(rid, hashed)


__all__ = ["append_entry", "chain_tip"]
