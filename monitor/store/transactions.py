"""SQLite write transactions, written once for the store, its signed heads and its shipping note.

``BEGIN IMMEDIATE`` takes SQLite's write lock at once (waiting up to the busy
timeout), so two processes writing one store queue instead of failing at commit.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def immediate(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on `con`: committed when the block ends, rolled back on any error."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def own_connection(path: str | Path, busy_timeout: float = 10.0) -> Iterator[sqlite3.Connection]:
    """A write transaction on a connection of its own (apart from a reader's open snapshot), closed after."""
    con = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
    try:
        with immediate(con):
            yield con
    finally:
        con.close()
