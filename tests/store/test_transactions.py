"""Write transactions: committed when the block ends, rolled back on an error, on a real SQLite file."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from monitor.store.transactions import immediate, own_connection


def rows(path) -> list[int]:
    with sqlite3.connect(path) as con:
        return [r[0] for r in con.execute("SELECT n FROM t ORDER BY n")]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (n INTEGER)")
    return path


@pytest.mark.parametrize(("fail", "kept"), [(False, [1]), (True, [])], ids=["committed", "rolled-back"])
def test_immediate(db, fail, kept):
    con = sqlite3.connect(db, isolation_level=None)
    with pytest.raises(RuntimeError) if fail else contextlib.nullcontext(), immediate(con):
        con.execute("INSERT INTO t VALUES (1)")
        if fail:
            raise RuntimeError("broken on purpose")
    assert not con.in_transaction
    con.close()
    assert rows(db) == kept


def test_own_connection_commits_and_closes(db):
    with own_connection(db, busy_timeout=1.0) as con:
        con.execute("INSERT INTO t VALUES (2)")
        assert con.in_transaction
    with pytest.raises(sqlite3.ProgrammingError):  # closed after the block
        con.execute("SELECT 1")
    assert rows(db) == [2]


def test_a_second_writer_waits_then_gives_up_at_its_busy_timeout(db):
    with own_connection(db) as first:
        first.execute("INSERT INTO t VALUES (3)")
        with pytest.raises(sqlite3.OperationalError, match="locked"), own_connection(db, busy_timeout=0.1):
            pass
    assert rows(db) == [3]

