"""The store: writing, merging against stored rows, reading, the chain, retention, bad files."""

from __future__ import annotations

import sqlite3

import pytest

from monitor.store import GENESIS, StoreError, open_store
from tests.store_helpers import T0, event


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "s.db", idle_gap=300) as s:
        yield s


def test_write_merge_and_read_back(store):
    store.write([event(T0), event(T0 + 1, protocol="dns"), event(T0 + 2, source="proxy")])
    store.write([event(T0 + 100, protocol="quic")])  # a later batch extends the stored session
    [s] = list(store.sessions())
    assert (s.id, s.version, s.observations) == (1, 2, 4)
    assert s.signals == ("dns", "proxy", "quic", "tls")
    assert (s.first_seen, s.last_seen) == (T0, T0 + 100)
    assert s.flagged and s.flags[0].clause == "4.3"
    assert store.verify().ok
    assert store.chain_head().record_id == 2


def test_empty_store_head_is_genesis(store):
    assert store.chain_head().hash == GENESIS
    assert store.verify().ok


def test_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"other\.db: not a social-monitor store"):
        open_store(path)
