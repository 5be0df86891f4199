"""Purged data leaves the file, whatever SQLite build the gateway runs.

Debian builds SQLite with secure delete on, others do not: without it a deleted
row's bytes stay in the file (in the page it sat on, or on the free list) until
something happens to overwrite them, and a copy of the file taken later still
holds them. So every connection sets ``secure_delete``, which zeroes deleted
content as it is freed, and after each purge the free pages are given back to
the file system (``auto_vacuum = INCREMENTAL`` and ``incremental_vacuum``), and
the write-ahead log, which holds earlier copies of the pages, is checkpointed
and truncated to zero bytes.

A store made before this release has ``auto_vacuum = NONE``, which SQLite can
only change by rebuilding the file: its first purge runs one ``VACUUM`` to
convert it (a full copy of the file, once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.logsetup import get_logger

log = get_logger("monitor.store.reclaim")

INCREMENTAL = 2  # PRAGMA auto_vacuum: 0 none, 1 full, 2 incremental


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """What a purge gave back: free pages returned to the file system, and whether the WAL emptied."""

    pages: int  # by how many pages the file shrank
    converted: bool  # the file was rebuilt with VACUUM to allow incremental vacuum (once per store)
    wal_truncated: bool  # False when a reader still held an older snapshot: the next purge retries


def tune(con: Any, *, create: bool, busy_timeout: float) -> str:
    """Every connection's pragmas; returns the journal mode SQLite granted (WAL expected).

    `auto_vacuum` is set before the first table exists (a new file); an existing file keeps its
    mode until its first purge converts it."""
    con.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    con.execute("PRAGMA secure_delete = ON")  # deleted content is zeroed, not left in free space
    if create and not con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
        con.execute(f"PRAGMA auto_vacuum = {INCREMENTAL}")
    mode = str(con.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    con.execute("PRAGMA synchronous = FULL")
    if create:
        # a writer: 64 MiB of page cache keeps the six session indexes of a million rows in memory
        con.execute("PRAGMA cache_size = -65536")
    else:
        # a reader (events, verify, exports): pages straight from the OS cache, no read() per
        # page; a month of one school lists in half the time. Writes never go through the map.
        con.execute("PRAGMA mmap_size = 2147483648")
    # a reset WAL is cut back to 4 MiB, so one burst does not keep the disk space forever
    con.execute("PRAGMA journal_size_limit = 4194304")
    return mode


def reclaim(con: Any, shown: str) -> Reclaimed:
    """After a purge has committed: free pages back to the file system, the WAL emptied."""
    converted = False
    before = int(con.execute("PRAGMA page_count").fetchone()[0])
    if int(con.execute("PRAGMA auto_vacuum").fetchone()[0]) != INCREMENTAL:
        con.execute(f"PRAGMA auto_vacuum = {INCREMENTAL}")
        con.execute("VACUUM")  # rebuilds the file: the only way SQLite changes auto_vacuum
        converted = True
        log.info("store_converted_to_incremental_vacuum", path=shown)
    # executescript steps the pragma to its end: Python's execute() stops a statement that returns no
    # columns after its first step, and incremental_vacuum frees one page per step
    con.executescript("PRAGMA incremental_vacuum;")
    pages = before - int(con.execute("PRAGMA page_count").fetchone()[0])
    busy = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    if busy:
        log.warning("store_wal_not_truncated", path=shown,
                    detail="a reader holds an older snapshot; the next purge empties the WAL")
    return Reclaimed(pages, converted, not busy)


__all__ = ["INCREMENTAL", "Reclaimed", "reclaim", "tune"]
