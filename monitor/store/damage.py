"""A damaged store file is named in one line and never written to again.

SQLite reports damage it meets (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``) only when a
query touches the broken page; `quick_check` looks at every page. Damage in the
write-ahead log is quieter still: on opening, SQLite replays the WAL up to the
first frame whose checksum fails and silently drops every transaction after it,
and the last connection to close then checkpoints and deletes the WAL, so the
evidence of what was lost goes with it. `wal_problem` reads the WAL the way
SQLite's recovery does, before SQLite opens the file, and calls it damage when a
committed transaction lies beyond a broken frame (a crash leaves only an
uncommitted tail there). The file format is https://sqlite.org/fileformat2.html#walformat.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import struct
import time
from pathlib import Path
from typing import Any

from monitor.store.base import SessionStore, StoreError

SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
DAMAGE_WORDS = ("malformed", "not a database", "corrupt")

WAL_HEADER = 32
FRAME_HEADER = 24
# the magic's low bit says in which byte order the checksums read the page's words
SHM_DMS_BYTE = 128
WAL_MAGIC = {0x377F0682: "<", 0x377F0683: ">"}
RECOVERY = "keep the damaged files and recover into a new store (docs/operations.md, 'A damaged store')"


class StoreDamaged(StoreError):
    """The store file is damaged: one line with the file and what SQLite (or the WAL) said."""

    exit_code = 2  # a damaged file, not a broken chain (1): a script can tell the two apart

    def __init__(self, path: str | Path, detail: str | BaseException):
        self.path = str(path)
        self.detail = one_line(str(detail))
        super().__init__(f"store damaged: {self.path}: {self.detail}; {RECOVERY}")


def one_line(text: str) -> str:
    """SQLite's integrity reports span lines ("*** in database main ***" first): keep what says why."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("***")]
    return "; ".join(lines[:2]) or text.strip() or "damaged"


def is_damage(exc: BaseException) -> bool:
    """Whether an SQLite error says the file itself is damaged (not busy, full or read-only)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(exc).lower()
    return any(word in text for word in DAMAGE_WORDS)


def quick_check(con: sqlite3.Connection) -> str | None:
    """SQLite's page-by-page check (every b-tree page, not index contents): None when the file is sound.

    About 5 ms per MB here; `verify` and the writer's start pay it, plain reads do not."""
    try:
        rows = con.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return str(exc)
        raise
    if [tuple(r) for r in rows] == [("ok",)]:
        return None
    return one_line("\n".join(str(r[0]) for r in rows))


def close_keeping_files(con: sqlite3.Connection, db: Path) -> None:
    """Close without the checkpoint that the last connection to close makes (WAL into the file,
    then the WAL deleted): a read-only connection held meanwhile, which may not checkpoint itself,
    keeps a damaged file and its WAL as they were found."""
    with contextlib.suppress(sqlite3.Error), contextlib.closing(
        sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    ) as keeper:
        with contextlib.suppress(sqlite3.Error):
            keeper.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        con.close()


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum: a running pair of 32-bit sums over the data's words, two at a time."""
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    mask = 0xFFFFFFFF
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & mask
        s1 = (s1 + words[i + 1] + s0) & mask
    return s0, s1


def _scan_wal(wal: Path) -> str | None:
    with wal.open("rb") as fh:
        header = fh.read(WAL_HEADER)
        if len(header) < WAL_HEADER:
            return None  # empty or a header never finished: nothing was committed in it
        magic, _version, page_size, _seq, salt1, salt2, c0, c1 = struct.unpack(">8I", header)
        order = WAL_MAGIC.get(magic)
        frame_size = FRAME_HEADER + (page_size or 0)
        header_ok = (
            order is not None
            and page_size >= 512
            and page_size & (page_size - 1) == 0
            and _checksum(header[:24], order, 0, 0) == (c0, c1)
        )
        if not header_ok:
            return _after_bad_header(fh, wal)
        assert order is not None
        s0, s1 = c0, c1
        index = 0
        while True:
            frame = fh.read(frame_size)
            if len(frame) < frame_size:
                return None  # the end of the log (or a torn last frame)
            index += 1
            pgno, _size, f_salt1, f_salt2, f0, f1 = struct.unpack(">6I", frame[:FRAME_HEADER])
            if (f_salt1, f_salt2) != (salt1, salt2):
                return None  # a frame left from before the log was restarted: the end of this log
            s0, s1 = _checksum(frame[:8], order, s0, s1)
            s0, s1 = _checksum(frame[FRAME_HEADER:], order, s0, s1)
            if pgno == 0 or (s0, s1) != (f0, f1):
                lost = _commits_after(fh, frame_size, salt1, salt2)
                if not lost:
                    return None  # a crash during a transaction: its frames were never committed
                return (f"{wal.name}: frame {index} fails its checksum; {lost} committed "
                        f"transaction(s) after it would be silently dropped")


def _commits_after(fh, frame_size: int, salt1: int, salt2: int) -> int:
    """Commit frames of this log (its salts) after a broken one: what SQLite's recovery would drop."""
    commits = 0
    while True:
        frame = fh.read(frame_size)
        if len(frame) < frame_size:
            return commits
        _pgno, size, f_salt1, f_salt2 = struct.unpack(">4I", frame[:16])
        if (f_salt1, f_salt2) == (salt1, salt2) and size:
            commits += 1


def _after_bad_header(fh, wal: Path) -> str | None:
    """A WAL whose header is broken is ignored whole: damage if its frames hold a commit."""
    first = fh.read(FRAME_HEADER)
    if len(first) < FRAME_HEADER:
        return None
    salts = struct.unpack(">2I", first[8:16])
    fh.seek(0, 2)
    length = fh.tell() - WAL_HEADER
    # the page size field may be the damaged part: try the sizes SQLite allows that fit the file
    sizes = {(1 << k) + FRAME_HEADER for k in range(9, 17) if length % ((1 << k) + FRAME_HEADER) == 0}
    for frame_size in sorted(sizes):
        fh.seek(WAL_HEADER)
        lost = _commits_after(fh, frame_size, *salts)
        if lost:
            return f"{wal.name}: its header is damaged; {lost} committed transaction(s) in it would be " \
                   "silently dropped"
    return None


def in_use(db: str | Path) -> bool:
    """Whether another process has the store open: each SQLite connection holds a shared lock on
    byte 128 of the -shm file (unix VFS, "DMS"). Only the first to open runs the WAL's recovery."""
    try:
        fd = os.open(f"{db}-shm", os.O_RDONLY)
    except OSError:
        return False
    try:
        probe = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, SHM_DMS_BYTE, 1, 0)
        held = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
        return struct.unpack("hhqqi", held)[0] != fcntl.F_UNLCK
    except OSError:
        return False
    finally:
        os.close(fd)


def wal_problem(db: str | Path, *, recheck_after: float = 0.2) -> str | None:
    """What is wrong with the store's write-ahead log, or None (no WAL, or one SQLite replays whole).

    Read only when no other process has the store open: then this open is the one whose recovery
    would drop transactions (an open store reads frames through its shared index, and damage
    there surfaces as SQLITE_CORRUPT). A writer that opens meanwhile and appends could look like
    a broken frame with a commit after it, so damage is said only if a second read finds it again."""
    wal = Path(f"{db}-wal")
    try:
        if wal.stat().st_size <= WAL_HEADER or in_use(db):
            return None
        first = _scan_wal(wal)
        if first is None or recheck_after <= 0:
            return first
        time.sleep(recheck_after)
        return _scan_wal(wal)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{wal}: cannot read the store's write-ahead log: {exc.strerror or exc}") from None


def error_reason(exc: BaseException) -> str:
    """A bounded label for `store_write_errors_total{reason}`."""
    text = str(exc).lower()
    if "full" in text:
        return "disk_full"
    if "locked" in text or "busy" in text:
        return "locked"
    if "readonly" in text or "read-only" in text:
        return "readonly"
    if "malformed" in text or "not a database" in text:
        return "corrupt"
    if "i/o" in text or isinstance(exc, OSError):
        return "io"
    return "other"


class UnusableStore(SessionStore):
    """Stands in for a store that was found damaged on opening: it has nothing to give."""

    def __init__(self, error: StoreDamaged, idle_gap: float):
        self.error = error
        self.path = error.path
        self.idle_gap = idle_gap

    def _refuse(self, *args: object, **kw: object) -> Any:
        raise self.error

    write_sessions = sessions = count = session = chain_head = verify = purge = purge_due = snapshot = _refuse

    def close(self) -> None:
        pass


__all__ = [
    "RECOVERY",
    "StoreDamaged",
    "UnusableStore",
    "close_keeping_files",
    "error_reason",
    "in_use",
    "is_damage",
    "one_line",
    "quick_check",
    "wal_problem",
]
