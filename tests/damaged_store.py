"""Real damaged SQLite stores for the damage tests: pages overwritten mid-file, WAL frames broken.

A "crashed" store keeps its write-ahead log: the files are copied while the
writing connection is still open with automatic checkpoints off, which is
the image a power cut or kill -9 leaves on disk.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import struct
from pathlib import Path

from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event

PAGE = 4096
FRAME = 24 + PAGE


def fill(db: Path, sessions: int = 400) -> None:
    """A store of `sessions` sessions, long hostnames so that it spans a few hundred pages."""
    with open_store(db) as store:
        for i in range(0, sessions, 20):
            store.write([event(T0 + (i + k) * 400, device=f"D{i + k:05d}",
                               hostname=f"h{i + k}-{'x' * 200}.facebook.com") for k in range(20)])


def crashed_with_wal(db: Path, sessions: int = 200, transactions: int = 20) -> Path:
    """A store whose last `transactions` writes live only in its WAL, as after kill -9."""
    source = db.with_name(db.name + ".live")
    fill(source, sessions)
    store = open_store(source)
    store._con.execute("PRAGMA wal_autocheckpoint = 0")  # type: ignore[attr-defined]
    store._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
    for i in range(transactions):
        store.write([event(T0 + 10**6 + i * 400, device=f"W{i:05d}", hostname=f"w{i}-{'y' * 200}.x.com")])
    shutil.copyfile(source, db)
    shutil.copyfile(f"{source}-wal", f"{db}-wal")
    store.close()
    return db


def wal_frames(db: Path) -> int:
    return (Path(f"{db}-wal").stat().st_size - 32) // FRAME


def commit_frames(db: Path) -> list[int]:
    """1-based numbers of the WAL's commit frames (the frame header's "database size" is set)."""
    data = Path(f"{db}-wal").read_bytes()
    return [k + 1 for k in range(wal_frames(db))
            if struct.unpack(">I", data[32 + k * FRAME + 4: 32 + k * FRAME + 8])[0]]


def overwrite(path: Path, offset: int, length: int, byte: int = 0xA5) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(bytes([byte]) * length)


def overwrite_pages(db: Path, fraction_from: float = 0.4, fraction_to: float = 0.6) -> None:
    """Pages in the middle of the file replaced by garbage, as a failing disk sector would leave."""
    pages = db.stat().st_size // PAGE
    first, last = max(2, int(pages * fraction_from)), max(3, int(pages * fraction_to))
    overwrite(db, first * PAGE, (last - first) * PAGE)


def break_frame(db: Path, frame: int) -> None:
    """Garbage inside the page data of WAL frame `frame` (1-based): its checksum fails."""
    overwrite(Path(f"{db}-wal"), 32 + (frame - 1) * FRAME + 24 + 100, 500)


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes() if p.exists() else b"(absent)")
    return h.hexdigest()


def record_count(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT COUNT(*) FROM records").fetchone()[0])
    finally:
        con.close()
