"""Session-0 entries at the chain's tip: after records, after a compacted prefix, in a new store."""

from __future__ import annotations

import json

import pytest

from monitor.store.chain import GENESIS, ChainHead, body_digest, record_hash
from monitor.store.entries import append_entry, chain_tip
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event

DAY = 86400.0


def _store(tmp_path, state: str):
    """A store that is empty, holds records, or had every record compacted into a checkpoint."""
    store = open_store(tmp_path / "s.db")
    if state != "empty":
        store.write([event(T0), event(T0 + 3600, device="OAK-0002")])
    if state == "compacted":
        store.purge(1, now=T0 + 30 * DAY)
    return store


@pytest.mark.parametrize(("state", "tip_from"), [
    ("empty", "genesis"),
    ("records", "last record"),
    ("compacted", "last record"),  # the purge's own record stays at the tip
])
def test_the_tip_is_the_last_link(tmp_path, state, tip_from):
    with _store(tmp_path, state) as store:
        con = store._con
        tip = chain_tip(con)
        last = con.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
        expected = ChainHead(0, GENESIS) if tip_from == "genesis" else ChainHead(*last)
        assert tip == expected


def test_the_tip_after_every_record_went_is_the_checkpoint(tmp_path):
    with _store(tmp_path, "records") as store:
        con = store._con
        con.execute("INSERT INTO checkpoints (created_at, cutoff, through_record, hash, records_removed, "
                    "sessions_removed) VALUES (0, 0, 7, ?, 7, 0)", ("c" * 64,))
        con.execute("DELETE FROM records")
        assert chain_tip(con) == ChainHead(7, "c" * 64)


@pytest.mark.parametrize("state", ["empty", "records", "compacted"])
def test_an_entry_links_to_the_tip_and_the_chain_still_verifies(tmp_path, state):
    body = json.dumps({"coverage": {"seconds": 300}}, sort_keys=True, separators=(",", ":"))
    with _store(tmp_path, state) as store:
        con = store._con
        tip = chain_tip(con)
        with con:
            added = append_entry(con, body, T0 + 40 * DAY + 0.1234567)
        row = con.execute("SELECT id, session_id, version, recorded_at, body, body_sha256, prev_hash, hash "
                          "FROM records WHERE id = ?", (added.record_id,)).fetchone()
        assert row[:3] == (tip.record_id + 1, 0, 1) and row[3] == round(T0 + 40 * DAY + 0.1234567, 6)
        assert row[4] == body and row[5] == body_digest(body) and row[6] == tip.hash
        assert row[7] == added.hash == record_hash(row[0], 0, 1, row[3], row[5], tip.hash)
        assert store.verify().ok
