"""Purged data leaves the file: secure_delete, incremental vacuum and an emptied WAL, on real files.

The control rows purge the same file the way a store without these settings would (secure
delete off, no vacuum): the purged hostname is still in its bytes there, so the grep can see it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.store import reclaim, retention
from monitor.store.chain import GENESIS, ChainHead
from monitor.store.sqlite import DAY, open_store
from tests.store_helpers import T0, event

PURGED = "purged-secret-host.example"
KEPT = "kept-visible-host.example"


def fill(path: Path, n: int = 60) -> None:
    """n old sessions that name PURGED, and as many recent ones that name KEPT."""
    with open_store(path) as store:
        store.write([event(T0 + i * 400, device=f"OAK-{i:04d}", hostname=f"{i}.{PURGED}") for i in range(n)])
        store.write([event(T0 + 100 * DAY + i * 400, device=f"OAK-{i:04d}", hostname=f"{i}.{KEPT}",
                           local_date="2026-12-30") for i in range(n)])


def raw_bytes(path: Path) -> bytes:
    """The store's file and, if there is one, its write-ahead log, as they are on disk."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def make_old(path: Path) -> None:
    """A store as an earlier release left it: auto_vacuum NONE."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA auto_vacuum = NONE")
    con.execute("VACUUM")
    assert con.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    con.close()


def purge_without_reclaim(path: Path) -> None:
    """The same purge, on a connection without secure delete and without vacuum (another build)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA secure_delete = OFF")
    con.execute("BEGIN IMMEDIATE")
    retention.purge_before(con, T0 + 90 * DAY, ChainHead(0, GENESIS), T0 + 91 * DAY, str(path))
    con.execute("COMMIT")
    con.close()


@pytest.mark.parametrize(
    ("old_file", "how", "purged_left"),
    [
        (False, "store", False),  # a new store: incremental from its first table
        (True, "store", False),  # an earlier release's store: its first purge converts it
        (False, "control", True),  # secure delete off, no vacuum: the bytes stay
        (True, "control", True),
    ],
    ids=["new-store", "old-store-converted", "control-new", "control-old"],
)
def test_a_purged_hostname_leaves_the_file(tmp_path, old_file, how, purged_left):
    path = tmp_path / "store.db"
    fill(path)
    if old_file:
        make_old(path)
    assert PURGED.encode() in raw_bytes(path)  # written, so there is something to find
    before = path.stat().st_size
    if how == "store":
        with open_store(path, create=False) as store:
            result = store.purge(90, now=T0 + 91 * DAY)
            assert result.sessions_removed == 60
            assert result.reclaimed_pages > 0
            con = store._con  # type: ignore[attr-defined]
            assert con.execute("PRAGMA freelist_count").fetchone()[0] == 0  # every free page given back
            assert path.stat().st_size == before - result.reclaimed_pages * 4096  # the file shrank by them
            assert (PURGED.encode() in raw_bytes(path)) is purged_left  # the -wal too, store still open
    else:
        purge_without_reclaim(path)
    assert (PURGED.encode() in raw_bytes(path)) is purged_left
    assert KEPT.encode() in raw_bytes(path)  # the grep sees what is still stored


@pytest.mark.parametrize(("create", "secure", "vacuum"), [(True, 1, 2), (False, 1, 2)],
                         ids=["writer", "reader"])
def test_every_connection_sets_secure_delete_and_a_new_file_is_incremental(tmp_path, create, secure, vacuum):
    path = tmp_path / "s.db"
    open_store(path).close()
    with open_store(path, create=create) as store:
        con = store._con  # type: ignore[attr-defined]
        assert con.execute("PRAGMA secure_delete").fetchone()[0] == secure
        assert con.execute("PRAGMA auto_vacuum").fetchone()[0] == vacuum


@pytest.mark.parametrize(("old_file", "converted"), [(False, False), (True, True)], ids=["new", "old"])
def test_reclaim_converts_an_old_file_once(tmp_path, old_file, converted):
    path = tmp_path / "s.db"
    fill(path, 5)
    if old_file:
        make_old(path)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    first = reclaim.reclaim(con, str(path))
    second = reclaim.reclaim(con, str(path))
    assert (first.converted, second.converted) == (converted, False)
    assert con.execute("PRAGMA auto_vacuum").fetchone()[0] == reclaim.INCREMENTAL
    assert first.wal_truncated and second.wal_truncated
    con.close()


def test_a_reader_holding_a_snapshot_leaves_the_wal_for_the_next_purge(tmp_path):
    path = tmp_path / "s.db"
    fill(path, 5)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sessions").fetchone()  # a snapshot is now held
    with open_store(path, create=False) as store:
        store.write([event(T0 + 200 * DAY, local_date="2027-04-09")])
        assert not reclaim.reclaim(store._con, str(path)).wal_truncated  # type: ignore[attr-defined]
    reader.execute("COMMIT")
    reader.close()
