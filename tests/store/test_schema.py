"""Migrations carry a gateway's store forward: a file from the last release opens with nothing lost.

tests/data/store/v1-store.db was written by release 7000616 (schema 1; see make_v1_store.py there),
and v1-store.expected.json is what that release read back from it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from monitor.store import schema
from monitor.store.base import StoreError
from monitor.store.schema import MIGRATIONS, SCHEMA_VERSION, STORE_FORMAT, Migration
from monitor.store.sqlite import SQLiteSessionStore, open_store
from tests.store_helpers import T0, event

DATA = Path(__file__).resolve().parents[1] / "data" / "store"
EXPECTED = json.loads((DATA / "v1-store.expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def v1_copy(tmp_path) -> Path:
    """A copy of the field file: tests open it in place without touching the committed one."""
    path = tmp_path / "store.db"
    shutil.copyfile(DATA / "v1-store.db", path)
    return path


def _seed_v2(con, now: float) -> None:
    con.execute("INSERT INTO store_meta (name, value) VALUES ('v2_seeded', ?)", (repr(now),))


NEXT = SCHEMA_VERSION + 1  # a release after this one
# what sessions gained since schema 1, and the value a row written by release 1 reads back with
ADDED_SINCE_V1 = {"social.probably_teaching": False, "social.roles": [], "social.obscured_by": []}


def as_v1(line: str) -> dict:
    """A session's ECS record as release 1 wrote it: the fields added since have their v1 defaults."""
    record = json.loads(line)
    for name, default in ADDED_SINCE_V1.items():
        assert record.pop(name) == default, name
    # derived, not stored: the duration in minutes, to the hundredth
    assert record.pop("social.minutes") == (record["event.duration"] + 300_000_000) // 600_000_000 / 100
    return record


V2 = Migration(
    ("ALTER TABLE sessions ADD COLUMN note TEXT",
     "CREATE INDEX sessions_platform ON sessions (platform, first_seen)"),
    seed=_seed_v2,
)


def versions(path: Path) -> list[int]:
    con = sqlite3.connect(path)
    try:
        return [v for (v,) in con.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        con.close()


# --- the release in the field -----------------------------------------------------------------------


@pytest.mark.parametrize("create", [False, True], ids=["reader", "writer"])
def test_v1_store_verifies_as_the_old_release_said(v1_copy, create):
    with open_store(v1_copy, create=create) as store:
        assert store.verify().summary() == EXPECTED["verify"]


@pytest.mark.parametrize("create", [False, True], ids=["reader", "writer"])
def test_v1_store_keeps_its_chain_head(v1_copy, create):
    with open_store(v1_copy, create=create) as store:
        head = store.chain_head()
    assert {"record_id": head.record_id, "hash": head.hash} == EXPECTED["chain_head"]


def test_v1_store_lists_the_same_bytes(v1_copy):
    with open_store(v1_copy, create=False) as store:
        assert [as_v1(x) for x in store.ecs_json()] == [json.loads(x) for x in EXPECTED["ecs_json"]]


def test_v1_store_sessions_read_back_whole(v1_copy):
    with open_store(v1_copy, create=False) as store:
        sessions = list(store.sessions())
    assert [as_v1(s.to_json()) for s in sessions] == [json.loads(x) for x in EXPECTED["ecs_json"]]
    assert sum(s.flagged for s in sessions) == 3 and max(s.version for s in sessions) == 2


def test_opening_v1_for_reading_changes_no_byte(v1_copy):
    before = hashlib.sha256(v1_copy.read_bytes()).hexdigest()
    with open_store(v1_copy, create=False) as store:
        store.verify()
        list(store.sessions())
    assert hashlib.sha256(v1_copy.read_bytes()).hexdigest() == before


def test_v1_store_takes_new_writes_on_its_chain(v1_copy):
    with open_store(v1_copy) as store:
        store.write([event(T0 + 9000, platform="tiktok")], now=T0 + 9001)
        store.write([event(T0 + 9100, platform="tiktok", protocol="dns")], now=T0 + 9101)  # extends it
        result = store.verify()
        assert result.ok, result.summary()
        assert (result.records, result.sessions) == (EXPECTED["records"] + 2, EXPECTED["sessions"] + 1)
        assert store.chain_head().record_id == EXPECTED["chain_head"]["record_id"] + 2
        assert [s.id for s in store.sessions() if s.platform == "tiktok" and s.school == "oak-primary"] == [7]


def test_v1_store_purges_from_its_checkpoint(v1_copy):
    with open_store(v1_copy) as store:
        purged = store.purge(30, now=T0 + 31 * 86400)
        assert purged.sessions_removed == EXPECTED["sessions"]
        assert purged.checkpoint is not None and purged.checkpoint.hash == EXPECTED["chain_head"]["hash"]
        assert store.verify().ok


# --- a next version ---------------------------------------------------------------------------------


def test_next_migration_applies_to_the_v1_file_with_nothing_lost(v1_copy):
    with SQLiteSessionStore(v1_copy, migrations={**MIGRATIONS, NEXT: V2}) as store:
        assert store.verify().summary() == EXPECTED["verify"]
        assert [as_v1(x) for x in store.ecs_json()] == [json.loads(x) for x in EXPECTED["ecs_json"]]
    assert versions(v1_copy) == list(range(1, NEXT + 1))


def test_next_migration_runs_once(v1_copy):
    for _ in range(3):
        SQLiteSessionStore(v1_copy, migrations={**MIGRATIONS, NEXT: V2}).close()
    con = sqlite3.connect(v1_copy)
    seeded = con.execute("SELECT COUNT(*) FROM store_meta WHERE name = 'v2_seeded'").fetchone()[0]
    con.close()
    assert versions(v1_copy) == list(range(1, NEXT + 1)) and seeded == 1


def test_next_store_writes_and_verifies(v1_copy):
    with SQLiteSessionStore(v1_copy, migrations={**MIGRATIONS, NEXT: V2}) as store:
        store.write([event(T0 + 9000, platform="tiktok")], now=T0 + 9001)
        assert store.verify().ok


def test_a_store_newer_than_the_code_is_refused(v1_copy):
    SQLiteSessionStore(v1_copy, migrations={**MIGRATIONS, NEXT: V2}).close()
    with pytest.raises(StoreError, match=rf"store schema {NEXT} is newer than this social-monitor"):
        open_store(v1_copy, create=False)


def test_a_failed_migration_leaves_the_file_as_it_was(v1_copy):
    broken = Migration(("ALTER TABLE sessions ADD COLUMN note TEXT", "THIS IS NOT SQL"))
    with pytest.raises(StoreError, match="not a usable social-monitor store"):
        SQLiteSessionStore(v1_copy, migrations={**MIGRATIONS, NEXT: broken})
    assert versions(v1_copy) == [1]
    with open_store(v1_copy, create=False) as store:
        assert store.verify().summary() == EXPECTED["verify"]


# --- the machinery ----------------------------------------------------------------------------------


def test_shipped_migrations_are_never_edited():
    """Version 1 is in the field (tests/data/store): change the schema by appending version 2."""
    text = "\n".join(MIGRATIONS[1].statements)
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "4becb36703fb212606eee7f56d7923b4ed21ac024e1352f12a61c7c93ba17386")


@pytest.mark.parametrize(
    ("numbers", "reaches"),
    [([1], 1), ([1, 2], 2), ([2, 1, 3], 3), ([], None), ([2], None), ([1, 3], None), ([0, 1], None)],
)
def test_migrations_are_numbered_without_gaps(numbers, reaches):
    table = {n: V2 for n in numbers}
    if reaches is None:
        with pytest.raises(ValueError, match="without gaps"):
            schema.check_migrations(table)
    else:
        assert schema.check_migrations(table) == reaches


@pytest.mark.parametrize(
    ("current", "expected"),
    [(0, [1, 2, 3]), (1, [2, 3]), (3, []), (4, [])],
)
def test_pending(current, expected):
    assert schema.pending(current, {1: V2, 2: V2, 3: V2}) == expected


def test_apply_to_an_empty_database():
    con = sqlite3.connect(":memory:")
    assert schema.apply(con, 0, MIGRATIONS, 1_790_000_000.0) == list(range(1, SCHEMA_VERSION + 1))
    meta = dict(con.execute("SELECT name, value FROM store_meta"))
    assert meta == {"format": STORE_FORMAT, "next_session_id": "1", "created_at": "1790000000.0"}
    applied = [v for (v,) in con.execute("SELECT version FROM schema_version")]
    assert applied == list(range(1, SCHEMA_VERSION + 1))


def test_a_new_store_is_at_the_current_version(tmp_path):
    open_store(tmp_path / "new.db").close()
    assert versions(tmp_path / "new.db") == list(range(1, SCHEMA_VERSION + 1))


# --- schema 2: the roles a session saw and the "probably teaching" mark (issue 17) ----------------


@pytest.mark.parametrize(("column", "v1_value"), [("roles", ""), ("probably_teaching", 0)])
def test_v1_rows_gain_the_v2_columns_with_their_v1_value(v1_copy, column, v1_value):
    with open_store(v1_copy):
        pass  # a writer migrates
    con = sqlite3.connect(v1_copy)
    values = {v for (v,) in con.execute(f"SELECT {column} FROM sessions")}
    con.close()
    assert values == {v1_value} and 2 in versions(v1_copy)


def test_a_reader_of_a_v1_file_sees_the_v2_columns_without_migrating_it(v1_copy):
    with open_store(v1_copy, create=False) as store:
        sessions = list(store.sessions())
        assert store.verify().ok
    assert versions(v1_copy) == [1]
    assert {(s.roles, s.probably_teaching) for s in sessions} == {((), False)}


def test_migrated_v1_records_still_verify_and_new_roles_are_chained(v1_copy):
    seen = event(T0 + 9000, platform="tiktok")
    seen.role = "platform"
    with open_store(v1_copy) as store:
        store.write([seen], now=T0 + 9001)
        assert store.verify().ok
        new = [s for s in store.sessions() if s.platform == "tiktok" and s.first_seen == T0 + 9000]
    assert [s.roles for s in new] == [("platform",)]


# --- schema 3: how a session's flows hid their destination (issue 16) -------------------------------


def test_v1_rows_gain_obscured_by_empty_and_still_verify(v1_copy):
    with open_store(v1_copy) as store:
        assert store.verify().ok
        assert {s.obscured_by for s in store.sessions()} == {()}
    con = sqlite3.connect(v1_copy)
    assert {v for (v,) in con.execute("SELECT obscured_by FROM sessions")} == {""}
    con.close()
    assert 3 in versions(v1_copy)


def test_a_reader_of_a_v1_file_sees_obscured_by_without_migrating_it(v1_copy):
    with open_store(v1_copy, create=False) as store:
        assert {s.obscured_by for s in store.sessions()} == {()}
    assert versions(v1_copy) == [1]


@pytest.mark.parametrize(
    ("current", "table", "view"),
    [
        (1, {1: V2, 2: Migration((), read_defaults={"a": "''"})},
         "CREATE TEMP VIEW sessions AS SELECT *, '' AS a FROM main.sessions"),
        (2, {1: V2, 2: Migration((), read_defaults={"a": "''"})}, None),  # nothing pending
        (1, {1: V2, 2: V2}, None),  # a pending migration that a view cannot stand in for
        (1, {1: V2, 2: Migration((), read_defaults={"a": "0"}), 3: Migration((), read_defaults={"b": "1"})},
         "CREATE TEMP VIEW sessions AS SELECT *, 0 AS a, 1 AS b FROM main.sessions"),
    ],
)
def test_reader_view(current, table, view):
    assert schema.reader_view(current, table) == view
