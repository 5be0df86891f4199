"""Opening a gateway's SQLite file: is it a social-monitor store, and is its schema the one we write?

Checked before anything is written: the file's first bytes (not SQLite: refused, never overwritten),
its tables (an SQLite file of someone else's: refused by name), its `format` mark, and its schema
version (newer than this code: refused with "upgrade"; older: migrated in one write transaction,
or, for a reader that may not write, read in place where `schema.read_in_place` allows). Each
refusal is one `StoreError` line naming the file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from monitor.logsetup import get_logger
from monitor.store import schema, transactions
from monitor.store.base import StoreError
from monitor.store.schema import STORE_FORMAT, Migration

log = get_logger("monitor.store.sqlite")  # the store's logger: store_migrated keeps its name

SQLITE_HEADER = b"SQLite format 3\x00"


def check_header(path: Path, shown: str) -> None:
    """Refuse a file that is not SQLite (an empty file is a store yet to be made)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"{shown}: cannot read store: {exc.strerror or exc}") from None
    if head and head != SQLITE_HEADER:
        raise StoreError(f"{shown}: not a social-monitor store (not an SQLite database)")


def tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def stored_version(con: sqlite3.Connection, shown: str) -> int:
    """The store's schema version; refused when its `format` mark is not ours."""
    current = con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    row = con.execute("SELECT value FROM store_meta WHERE name = ?", ("format",)).fetchone()
    fmt = row[0] if row else None
    if fmt != STORE_FORMAT:
        raise StoreError(f"{shown}: not a social-monitor store (format {fmt!r})")
    return int(current)


def migrate(con: sqlite3.Connection, shown: str, version: int, migrations: Mapping[int, Migration],
            create: bool) -> None:
    """Bring the store to `version` (the schema `migrations` write), or refuse it with one line."""
    found = tables(con)
    if "schema_version" not in found:
        foreign = sorted(t for t in found if not t.startswith("sqlite_"))
        if foreign:
            raise StoreError(f"{shown}: not a social-monitor store (it holds tables "
                             f"{', '.join(foreign[:5])})")
        if not create:
            raise StoreError(f"{shown}: empty file, not a social-monitor store")
    elif (current := stored_version(con, shown)) == version or (
            not create and schema.read_in_place(con, current, migrations)):
        return  # no write lock: readers open while writers write; a reader leaves an older file as it is
    with transactions.immediate(con):
        current = 0
        if "schema_version" in tables(con):
            current = con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        if current > version:
            raise StoreError(f"{shown}: store schema {current} is newer than this social-monitor "
                             f"understands ({version}): upgrade social-monitor")
        for applied in schema.apply(con, current, migrations, time.time()):
            log.info("store_migrated", path=shown, version=applied)
        fmt = con.execute("SELECT value FROM store_meta WHERE name = 'format'").fetchone()
        if not fmt or fmt[0] != STORE_FORMAT:
            raise StoreError(f"{shown}: not a social-monitor store (format {fmt!r})")
