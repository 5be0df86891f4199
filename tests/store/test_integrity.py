"""verify over the tables: the sessions table must be exactly the log's latest versions, row for row."""

from __future__ import annotations

import json

import pytest

from monitor.observation import Exemption, Flag
from monitor.store import integrity
from monitor.store.codec import session_row
from monitor.store.schema import SESSION_COLUMNS
from monitor.store.sessions import Session
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event


@pytest.fixture
def store(tmp_path):
    """Three sessions: 1 (two versions: records 1 and 2), 2 (record 3), 3 (record 4)."""
    with open_store(tmp_path / "s.db") as s:
        s.write([event(T0)], now=T0 + 1)
        s.write([event(T0 + 10, protocol="dns")], now=T0 + 11)
        s.write([event(T0 + 5000, device="OAK-0002", mac="3c:52:82:10:00:02")], now=T0 + 5001)
        s.write([event(T0 + 6000, zone="staff-room", flags=())], now=T0 + 6001)
        yield s


def verify(store):
    con = store._con
    return integrity.verify(con, store._checkpoint(), store.chain_head())


def roll_back_session_1(con) -> None:
    """Put session 1 back to its first version, byte for byte as record 1 holds it."""
    body = json.loads(con.execute("SELECT body FROM records WHERE id = 1").fetchone()[0])
    body["signals"], body["hostnames"] = tuple(body["signals"]), tuple(body["hostnames"])
    body["flags"] = tuple(Flag(**f) for f in body["flags"])
    body["exemption"] = Exemption(**body["exemption"]) if body["exemption"] else None
    s = Session(**body, record_id=1)
    assignments = ", ".join(f"{c} = ?" for c in SESSION_COLUMNS)
    con.execute(f"UPDATE sessions SET {assignments} WHERE id = 1", (*session_row(s), ))


TAMPERING = [
    # (name, SQL or function, kind, record, session, words)
    ("session key edited", "UPDATE sessions SET session_key = 'x' WHERE id = 2",
     "changed", 3, 2, "session 2 changed (its index columns do not match its content)"),
    ("flagged column edited", "UPDATE sessions SET flagged = 0 WHERE id = 1",
     "changed", 2, 1, "session 1 changed (its index columns"),
    ("points at no record", "UPDATE sessions SET record_id = 999 WHERE id = 3",
     "inserted", None, 3, "session 3 inserted (its record 999 does not exist)"),
    ("points at another session's record", "UPDATE sessions SET record_id = 3 WHERE id = 3",
     "changed", 3, 3, "session 3 changed (it does not match record 3)"),
    ("points at a tombstone", "UPDATE records SET body = NULL WHERE id = 4",
     "changed", 4, 3, "session 3 changed (it does not match record 4)"),
    ("content edited", "UPDATE sessions SET observations = 99 WHERE id = 2",
     "changed", 3, 2, "session 2 changed (it differs from record 3)"),
    ("hostnames edited", "UPDATE sessions SET hostnames = '[\"www.example.com\"]' WHERE id = 3",
     "changed", 4, 3, "session 3 changed (it differs from record 4)"),
    ("rolled back to an earlier version", roll_back_session_1,
     "changed", 2, 1, "session 1 changed (rolled back behind its record 2)"),
    ("row deleted", "DELETE FROM sessions WHERE id = 2",
     "removed", 3, 2, "session 2 removed (its record 3 is still in the log and was not purged)"),
]


@pytest.mark.parametrize(("edit", "kind", "record_id", "session_id", "words"), [t[1:] for t in TAMPERING],
                         ids=[t[0] for t in TAMPERING])
def test_session_rows_are_held_to_their_records(store, edit, kind, record_id, session_id, words):
    if callable(edit):
        edit(store._con)
    else:
        store._con.execute(edit)
    result = verify(store)
    assert not result.ok
    assert (result.kind, result.record_id, result.session_id) == (kind, record_id, session_id)
    assert result.problem == words or words in (result.problem or "")
    assert result.records == 4  # the log itself held: the fault is in the projection


def test_whole_store_verifies(store):
    result = verify(store)
    assert (result.ok, result.records, result.sessions, result.head.record_id) == (True, 4, 3, 4)


@pytest.mark.parametrize(
    ("record_id", "session_id", "version", "expected"),
    [
        (2, 1, 2, True),  # the session's current record
        (1, 1, 1, True),  # an earlier version: the session moved past it
        (3, 2, 1, True),
        (9, 2, 1, False),  # a version the session row points elsewhere for, and nothing later
        (1, 7, 1, False),  # no such session
    ],
)
def test_record_known(store, record_id, session_id, version, expected):
    assert integrity.record_known(store._con, record_id, session_id, version) is expected
