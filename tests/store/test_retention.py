"""Retention on a real store: what goes, what is compacted into a checkpoint, and that the chain holds."""

from __future__ import annotations

import pytest

from monitor.store.acks import record_acknowledged
from monitor.store.chain import GENESIS, ChainHead
from monitor.store.retention import purge_before
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event

DAY = 86400.0


@pytest.mark.parametrize(
    ("ages", "cutoff_day", "removed", "compacted"),
    [
        ((0, 1, 2), 10, 3, 3),  # everything old: all of it goes, the whole log is compacted
        ((0, 1, 20), 10, 2, 2),  # the newest stays: the two before it are compacted
        ((20, 0, 1), 10, 2, 0),  # a kept session first: the old ones are tombstones, nothing compacted
        ((20, 30), 10, 0, 0),  # nothing old
    ],
    ids=["all old", "old prefix", "old behind a kept one", "none old"],
)
def test_purge_before(tmp_path, ages, cutoff_day, removed, compacted):
    with open_store(tmp_path / "s.db") as store:
        for i, day in enumerate(ages):
            store.write([event(T0 + day * DAY, device=f"D{i}")])
        con = store._con  # type: ignore[attr-defined]
        con.execute("BEGIN IMMEDIATE")
        result = purge_before(con, T0 + cutoff_day * DAY, ChainHead(0, GENESIS), T0 + 40 * DAY, "s.db")
        con.execute("COMMIT")
        assert (result.sessions_removed, result.records_removed) == (removed, compacted)
        assert (result.checkpoint is not None) == bool(compacted)
        assert store.count() == len(ages) - removed
        assert store.verify().ok


@pytest.mark.parametrize(
    ("acknowledged", "removed", "compacted"),
    [
        (None, 3, 3),  # not shipped anywhere: retention as before
        (0, 0, 0),  # shipping set up, nothing acknowledged: everything waits
        (1, 1, 1),  # the central store holds record 1: its session goes, the rest waits
        (2, 2, 2),
        (3, 3, 3),  # everything acknowledged: as if not shipped
    ],
    ids=["no central store", "nothing acknowledged", "one acknowledged", "two acknowledged",
         "all acknowledged"],
)
def test_purge_holds_back_what_the_central_store_has_not_acknowledged(tmp_path, acknowledged, removed,
                                                                      compacted):
    path = tmp_path / "s.db"
    with open_store(path) as store:
        for i in range(3):  # three old sessions, records 1, 2 and 3
            store.write([event(T0 + i * DAY, device=f"D{i}")])
    if acknowledged is not None:
        record_acknowledged(path, acknowledged)
    with open_store(path) as store:
        result = store.purge(10, now=T0 + 40 * DAY)
        assert (result.sessions_removed, result.records_removed) == (removed, compacted)
        assert store.count() == 3 - removed
        assert sum(1 for r in store.records_since(0, 100) if r[4] is not None and r[1] != 0) == 3 - removed
        assert store.verify().ok
