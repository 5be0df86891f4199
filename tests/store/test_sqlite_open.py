"""Opening a store file: what is refused (one line naming the file), and what is migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.store import schema
from monitor.store.base import StoreError
from monitor.store.schema import MIGRATIONS, SCHEMA_VERSION, STORE_FORMAT
from monitor.store.sqlite import open_store
from monitor.store.sqlite_open import SQLITE_HEADER, check_header, migrate, stored_version, tables

SHOWN = "s.db"
NOT_SQLITE = "s.db: not a social-monitor store (not an SQLite database)"


@pytest.mark.parametrize(("content", "error"), [
    (None, None),  # an empty file: a store yet to be made
    (SQLITE_HEADER + bytes(100), None),
    (b"this is not a database, it is a text file\n", NOT_SQLITE),
    (b"SQLite format 2\x00" + bytes(100), NOT_SQLITE),
    (b"SQLite", NOT_SQLITE),  # cut short
], ids=["empty", "sqlite", "text", "other-sqlite-version", "truncated"])
def test_header(tmp_path: Path, content: bytes | None, error: str | None):
    path = tmp_path / "s.db"
    path.write_bytes(content or b"")
    if error is None:
        check_header(path, SHOWN)
    else:
        with pytest.raises(StoreError) as info:
            check_header(path, SHOWN)
        assert str(info.value) == error


def test_an_unreadable_file_is_named(tmp_path: Path):
    with pytest.raises(StoreError, match=r"^s\.db: cannot read store: "):
        check_header(tmp_path, SHOWN)  # a folder where the file should be


def _foreign(con):
    con.execute("CREATE TABLE customers (id INTEGER)")


def _wrong_format(con):
    schema.apply(con, 0, MIGRATIONS, 1.0)
    con.execute("UPDATE store_meta SET value = 'someone-else' WHERE name = 'format'")


def _newer(con):
    schema.apply(con, 0, MIGRATIONS, 1.0)
    con.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 2.0)", (SCHEMA_VERSION + 1,))


@pytest.mark.parametrize(("prepare", "create", "error"), [
    (_foreign, True, "s.db: not a social-monitor store (it holds tables customers)"),
    (None, False, "s.db: empty file, not a social-monitor store"),
    (_wrong_format, True, "s.db: not a social-monitor store (format 'someone-else')"),
    (_newer, True, f"s.db: store schema {SCHEMA_VERSION + 1} is newer than this social-monitor understands "
                   f"({SCHEMA_VERSION}): upgrade social-monitor"),
], ids=["foreign-tables", "empty-for-reading", "wrong-format", "newer-schema"])
def test_refused(prepare, create: bool, error: str):
    con = sqlite3.connect(":memory:", isolation_level=None)
    if prepare is not None:
        prepare(con)
    with pytest.raises(StoreError) as info:
        migrate(con, SHOWN, SCHEMA_VERSION, MIGRATIONS, create)
    assert str(info.value) == error


def test_an_empty_database_is_made_a_store_at_the_current_version():
    con = sqlite3.connect(":memory:", isolation_level=None)
    migrate(con, SHOWN, SCHEMA_VERSION, MIGRATIONS, True)
    assert stored_version(con, SHOWN) == SCHEMA_VERSION
    assert {"schema_version", "store_meta", "sessions", "records"} <= tables(con)
    assert con.execute("SELECT value FROM store_meta WHERE name = 'format'").fetchone() == (STORE_FORMAT,)


def test_a_current_store_is_left_as_it_is():
    con = sqlite3.connect(":memory:", isolation_level=None)
    migrate(con, SHOWN, SCHEMA_VERSION, MIGRATIONS, True)
    before = con.execute("SELECT COUNT(*) FROM schema_version").fetchone()
    migrate(con, SHOWN, SCHEMA_VERSION, MIGRATIONS, False)
    assert con.execute("SELECT COUNT(*) FROM schema_version").fetchone() == before


def test_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"other\.db: not a social-monitor store"):
        open_store(path)
