"""Retention: sessions past `retention_days` lose their content, and the log's dead prefix is compacted.

Plain SQL over the tables of `monitor.store.schema`, run inside the caller's
write transaction (SQLite's `purge` opens it), so a central PostgreSQL store
can run the same steps.
"""

from __future__ import annotations

from typing import Any

import structlog

from monitor.store.base import PurgeResult
from monitor.store.chain import ChainHead, follow
from monitor.store.integrity import RECORD_COLUMNS

log = structlog.get_logger("monitor.store.retention")


def purge_before(con: Any, cutoff: float, start: ChainHead, now: float, shown: str) -> PurgeResult:
    """Remove sessions last seen before `cutoff`; compact the log's dead prefix after `start`.

    Every version of a removed session becomes a tombstone (content gone,
    digest and links kept), so the chain still verifies. The leading run of
    tombstones is then deleted and replaced by a checkpoint holding the hash
    of the last one removed; verification starts there. A broken link in
    that run is never compacted away: the content is still removed, but
    the tombstones stay so `verify` keeps reporting the break.
    """
    doomed = "SELECT id FROM sessions WHERE last_seen < ?"
    con.execute(
        f"UPDATE records SET body = NULL WHERE body IS NOT NULL AND session_id IN ({doomed})", (cutoff,)
    )
    removed = con.execute("DELETE FROM sessions WHERE last_seen < ?", (cutoff,)).rowcount
    first_live = con.execute("SELECT MIN(id) FROM records WHERE body IS NOT NULL").fetchone()[0]
    last = con.execute("SELECT MAX(id) FROM records").fetchone()[0]
    through = (first_live - 1) if first_live is not None else last
    checkpoint = None
    compacted = 0
    if through is not None and through > start.record_id:
        rows = con.execute(f"SELECT {RECORD_COLUMNS} FROM records WHERE id <= ? ORDER BY id", (through,))
        prev, broken_at = follow(rows, start)
        if broken_at is not None:
            log.error("store_purge_chain_broken", path=shown, record=broken_at)
        else:
            compacted = con.execute("DELETE FROM records WHERE id <= ?", (through,)).rowcount
            con.execute(
                "INSERT INTO checkpoints (created_at, cutoff, through_record, hash, records_removed, "
                "sessions_removed) VALUES (?, ?, ?, ?, ?, ?)",
                (now, cutoff, through, prev, compacted, removed),
            )
            checkpoint = ChainHead(through, prev)
    return PurgeResult(cutoff, removed, compacted, checkpoint)


__all__ = ["purge_before"]
