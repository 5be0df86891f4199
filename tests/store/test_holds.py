"""Legal holds on a real store: placed and released in the chain, honoured by every purge, verifiable."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from monitor.store import holds
from monitor.store.holds import HoldError, check_case, hold_body
from monitor.store.sqlite import DAY, open_store
from tests.store_helpers import T0, event

LATER = T0 + 200 * DAY  # every session of `fill` is then past a 90-day retention


def fill(path: Path) -> None:
    """Six old sessions: OAK-0000 used by staff-a (2) and staff-b (1); OAK-0001 by staff-a (1) and
    staff-c (2)."""
    owners = [("OAK-0000", "staff-a"), ("OAK-0000", "staff-a"), ("OAK-0000", "staff-b"),
              ("OAK-0001", "staff-a"), ("OAK-0001", "staff-c"), ("OAK-0001", "staff-c")]
    with open_store(path) as store:
        for i, (device, owner) in enumerate(owners):
            store.write([event(T0 + i * 1000, device=device, owner=owner)])


def place(store, case: str, scope: str, target: str):
    return store.in_transaction(lambda con, start, now: holds.place(
        con, start, now, case=case, scope=scope, target=target, reason="investigation", by="dpo"))


def release(store, case: str):
    return store.in_transaction(lambda con, start, now: holds.release(
        con, start, now, case=case, reason="closed", by="dpo"))


@pytest.mark.parametrize(
    ("placed", "released", "kept", "held"),
    [
        ([], [], 0, {}),
        ([("C1", "device", "OAK-0000")], [], 3, {"C1": 3}),  # every session of the device, whoever used it
        ([("C1", "staff", "staff-a")], [], 3, {"C1": 3}),  # the person's sessions on any device
        ([("C1", "staff", "staff-c"), ("C2", "device", "OAK-0001")], [], 3, {"C1": 2, "C2": 3}),  # overlap
        ([("C1", "device", "OAK-0000"), ("C1", "staff", "staff-c")], [], 5, {"C1": 5}),  # one case, two
        ([("C1", "device", "OAK-0000")], ["C1"], 0, {}),  # released: purged as usual
        ([("C1", "device", "OAK-0000"), ("C2", "staff", "staff-b")], ["C1"], 1, {"C2": 1}),
        ([("C1", "device", "NO-SUCH")], [], 0, {}),  # holds nothing stored
    ],
    ids=["no-hold", "device", "staff-any-device", "two-cases-overlap", "one-case-two-targets", "released",
         "one-of-two-released", "nothing-matches"],
)
def test_purge_keeps_what_open_holds_cover(tmp_path, placed, released, kept, held):
    path = tmp_path / "s.db"
    fill(path)
    with open_store(path) as store:
        for case, scope, target in placed:
            place(store, case, scope, target)
        for case in released:
            release(store, case)
        result = store.purge(90, now=LATER)
        assert store.count() == kept
        assert result.sessions_removed == 6 - kept
        assert result.held == held
        assert store.verify().ok, store.verify().summary()
        purge_bodies = [json.loads(b)["purge"] for (b,) in store._con.execute(  # type: ignore[attr-defined]
            "SELECT body FROM records WHERE session_id = 0 AND body LIKE '{\"purge\":%'")]
        assert purge_bodies[-1].get("held", {}) == held  # the chain says what each case kept


def test_an_open_holds_record_outlives_compaction_and_later_purges(tmp_path):
    path = tmp_path / "s.db"
    fill(path)
    with open_store(path) as store:
        placed = place(store, "C1", "staff", "staff-c")
        for day in (200, 201, 202):
            store.purge(90, now=T0 + day * DAY)
        assert [(h.case, h.open, h.record_id) for h in store.holds()] == [("C1", True, placed.record_id)]
        assert store.count() == 2 and store.verify().ok
        release(store, "C1")
        store.purge(90, now=T0 + 203 * DAY)
        assert store.count() == 0 and store.verify().ok


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("UPDATE records SET body = replace(body, 'OAK-0000', 'OAK-9999') WHERE body LIKE '{\"hold\":%'",
         "changed"),  # the hold quietly moved to another device
        ("DELETE FROM records WHERE body LIKE '{\"hold\":%'", "removed"),  # the hold quietly dropped
    ],
    ids=["hold-edited", "hold-deleted"],
)
def test_tampering_with_a_hold_breaks_the_chain(tmp_path, sql, kind):
    path = tmp_path / "s.db"
    fill(path)
    with open_store(path) as store:
        place(store, "C1", "device", "OAK-0000")
        store.write([event(T0 + 9000, device="OAK-0002")])  # a record after the hold's
    con = sqlite3.connect(path)
    con.execute(sql)
    con.commit()
    con.close()
    with open_store(path, create=False) as store:
        result = store.verify()
    assert not result.ok and result.kind == kind, result.summary()


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda s: place(s, "C1", "device", "OAK-0000"), "already holds device OAK-0000"),
        (lambda s: release(s, "C9"), "no open hold has that case (open: C1)"),
        (lambda s: place(s, "C2", "room", "x"), "hold scope 'room'"),
        (lambda s: place(s, "C2", "staff", "  "), "--staff: give the staff id"),
    ],
    ids=["same-hold-twice", "release-unknown", "bad-scope", "empty-target"],
)
def test_refused_holds_write_nothing(tmp_path, action, message):
    path = tmp_path / "s.db"
    fill(path)
    with open_store(path) as store:
        place(store, "C1", "device", "OAK-0000")
        head = store.chain_head()
        with pytest.raises(HoldError, match=message.replace("(", r"\(").replace(")", r"\)")):
            action(store)
        assert store.chain_head() == head


@pytest.mark.parametrize(
    ("text", "ok"),
    [("INV-2026-07", True), ("case 12/3", True), ("A", True), ("", False), ("  ", False), ("-x", False),
     ("a" * 65, False), ("inv\n2", False), ("inv;drop", False)],
)
def test_case_references(text, ok):
    if ok:
        assert check_case(text) == text.strip()
    else:
        with pytest.raises(HoldError, match="--case"):
            check_case(text)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (hold_body("place", "C1", "r", "dpo", "device", "OAK-1"),
         '{"hold":{"action":"place","by":"dpo","case":"C1","reason":"r","scope":"device","target":"OAK-1"}}'),
        (hold_body("release", "C1", "done", "dpo"),
         '{"hold":{"action":"release","by":"dpo","case":"C1","reason":"done"}}'),
    ],
    ids=["place", "release"],
)
def test_hold_bodies_are_canonical_json_with_one_key(body, expected):
    assert body == expected


def test_a_hold_whose_record_leads_the_live_chain_is_not_compacted_away(tmp_path):
    """Placed before anything it covers was recorded: everything before its record is dead, yet the
    record stays, and the sessions recorded later stay held through every purge."""
    path = tmp_path / "s.db"
    fill(path)
    with open_store(path) as store:
        placed = place(store, "C1", "staff", "staff-z")
        store.write([event(T0 + 9000, device="OAK-0005", owner="staff-z")])
        first = store.purge(90, now=LATER)
        second = store.purge(90, now=LATER + DAY)
        assert first.checkpoint is not None and first.checkpoint.record_id == placed.record_id - 1
        assert [h.case for h in store.holds() if h.open] == ["C1"]
        assert store.count() == 1 and (first.held, second.held) == ({"C1": 1}, {"C1": 1})
        assert store.verify().ok
