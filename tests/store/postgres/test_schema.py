"""The central schema on a real PostgreSQL server: migrations, the chain check in SQL, partitions."""

from __future__ import annotations

import psycopg
import pytest

from monitor.store.chain import GENESIS, record_hash
from monitor.store.postgres import schema
from monitor.store.postgres.central import CentralStore
from monitor.store.schema import Migration
from tests.central_helpers import central_db, fill, local_records


@pytest.fixture
def admin(pg_server, pg_database):
    with CentralStore(pg_server.dsn(dbname=pg_database)) as store:
        yield store


def test_migrate_applies_once_and_records_the_version(admin):
    assert admin.migrate() == list(range(1, schema.SCHEMA_VERSION + 1))
    assert admin.migrate() == []
    assert schema.current_version(admin.con) == schema.SCHEMA_VERSION


def test_a_database_newer_than_the_code_is_refused(admin):
    admin.migrate()
    admin.con.execute("INSERT INTO schema_version VALUES (99, 0)")
    with pytest.raises(schema.CentralSchemaError, match="schema 99 is newer"):
        admin.migrate()


def test_a_later_migration_is_applied_on_top(admin):
    admin.migrate()
    later = dict(schema.MIGRATIONS)
    later[schema.SCHEMA_VERSION + 1] = Migration(("CREATE TABLE later_table (x INTEGER)",))
    assert schema.migrate(admin.con, later) == [schema.SCHEMA_VERSION + 1]
    assert admin.con.execute("SELECT to_regclass('later_table')").fetchone()[0] == "later_table"


def test_a_schema_1_database_is_upgraded_to_receive_signed_heads(admin):
    first = {1: schema.MIGRATIONS[1]}
    assert schema.migrate(admin.con, first) == [1]
    admin.con.execute("INSERT INTO gateways (gateway_id, role_name) VALUES ('oak', 'nobody_oak')")
    assert admin.migrate() == list(range(2, schema.SCHEMA_VERSION + 1))
    columns = {r[0] for r in admin.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'chain_heads'")}
    assert {"record_id", "head"} <= columns
    assert admin.con.execute("SELECT public_key FROM gateways").fetchall() == [(None,)]


@pytest.mark.parametrize(
    ("seq", "session_id", "version", "recorded_at"),
    [
        (1, 1, 1, 1790000000.0),  # integral: Python writes 1790000000.0
        (2, 7, 3, 1790000000.5),
        (3, 8, 1, 1790000000.123456),  # microseconds, as the store rounds them
        (4, 9, 2, 1790000000.000001),
        (10**12, 10**9, 40, 1899999999.999999),  # large ids, a far timestamp
        (5, 1, 1, 1500000000.25),
    ],
)
def test_the_database_computes_record_hash_byte_for_byte(admin, seq, session_id, version, recorded_at):
    admin.migrate()
    digest = "ab" * 32
    got = admin.con.execute("SELECT central_record_hash(%s, %s, %s, %s, %s, %s)",
                            (seq, session_id, version, recorded_at, digest, GENESIS)).fetchone()[0]
    assert got == record_hash(seq, session_id, version, recorded_at, digest, GENESIS)


@pytest.mark.parametrize(
    ("month_start", "partition"),
    [
        ("2026-09-30 23:59:59.5+00", "records_2026_09"),  # a session starting before midnight UTC
        ("2026-10-01 00:00:00+00", "records_2026_10"),
        ("2026-12-31 23:00:00-02", "records_2027_01"),  # UTC decides, not the writer's zone
    ],
)
def test_months_get_their_own_partitions(admin, month_start, partition):
    admin.migrate()
    admin.con.execute("SELECT central_ensure_month(%s::timestamptz)", (month_start,))
    admin.con.execute("SELECT central_ensure_month(%s::timestamptz)", (month_start,))  # twice is harmless
    assert admin.con.execute("SELECT to_regclass(%s)", (partition,)).fetchone()[0] == partition
    assert admin.con.execute("SELECT to_regclass(%s)", (partition.replace("records", "sessions"),)
                             ).fetchone()[0] is not None


def test_sessions_hold_one_row_per_session_at_its_latest_version(pg_server, tmp_path):
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    fill(store, 40)  # 40 sessions, two versions each
    with CentralStore(pg_server.dsn(roles["oak"], name)) as gateway:
        gateway.ingest("oak", local_records(store))
    with psycopg.connect(pg_server.dsn(dbname=name)) as con:
        counts = con.execute("SELECT count(*), min(version), max(version) FROM sessions").fetchone()
        assert counts == (40, 2, 2)
        assert con.execute("SELECT count(*) FROM records").fetchone()[0] == 80
        months = con.execute("SELECT DISTINCT tableoid::regclass::text FROM sessions").fetchall()
        assert months == [("sessions_2026_09",)]
