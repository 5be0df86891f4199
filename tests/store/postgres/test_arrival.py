"""The arrival check of schema 4 on a real server: sessions kept by primary key, moved sessions, refusals."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from monitor.store.postgres import arrival, central
from monitor.store.postgres.central import CentralStore, session_start
from monitor.store.sqlite import SQLiteSessionStore
from tests.central_helpers import central_db, fill, local_records
from tests.store_helpers import T0, event

OCTOBER = 1_790_812_800.0  # 2026-10-01 00:00:00 UTC


def _sessions(pg_server, name) -> list[tuple]:
    with psycopg.connect(pg_server.dsn(dbname=name)) as con:
        return con.execute("SELECT session_id, version, tableoid::regclass::text, first_seen = to_timestamp("
                           "(body->>'first_seen')::float8) FROM sessions ORDER BY session_id").fetchall()


@pytest.mark.parametrize(
    ("first", "late", "split", "partition"),
    [
        (OCTOBER + 30, OCTOBER - 40, True, "sessions_2026_09"),  # back over midnight into September
        (OCTOBER + 30, OCTOBER - 40, False, "sessions_2026_09"),  # both versions in one batch
        (OCTOBER + 300, OCTOBER + 200, True, "sessions_2026_10"),  # earlier, same month
        (OCTOBER + 300, OCTOBER + 200, False, "sessions_2026_10"),
    ],
    ids=["month-batches", "month-one-batch", "same-month-batches", "same-month-one-batch"],
)
def test_a_session_whose_first_sighting_moves_earlier_keeps_one_row(pg_server, tmp_path, first, late, split,
                                                                     partition):
    """A late observation merged into a session moves its first sighting (and its month): the central
    store keeps one row for it, in its new month, at its newest version."""
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    with SQLiteSessionStore(store) as local:
        local.write([event(first)])
        local.write([event(late)])
    records = local_records(store)
    assert [(r[1], r[2]) for r in records] == [(1, 1), (1, 2)]  # one session, two versions
    with CentralStore(pg_server.dsn(roles["oak"], name)) as oak:
        for batch in ([records[:1], records[1:]] if split else [records]):
            oak.ingest("oak", batch)
        assert oak.verify_gateway("oak") == (2, None)
    assert _sessions(pg_server, name) == [(1, 2, partition, True)]


def test_a_later_version_arriving_after_its_month_holds_many_rows_updates_its_session(pg_server, tmp_path):
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    fill(store, 200, per_write=200)  # versions 1 of 200 sessions, then their versions 2
    records = local_records(store)
    with CentralStore(pg_server.dsn(roles["oak"], name)) as oak:
        oak.ingest("oak", records[:200])
        with psycopg.connect(pg_server.dsn(dbname=name), autocommit=True) as owner:  # a long history
            owner.execute("""INSERT INTO sessions SELECT 'oak', 1000000 + i, 1, i, first_seen, last_seen,
                school, device, owner, platform, zone, flagged, body
                FROM sessions, generate_series(1, 20000) i
                WHERE session_id = 1""")
            owner.execute("ANALYZE sessions")
        oak.ingest("oak", records[200:])
    rows = _sessions(pg_server, name)
    assert len(rows) == 200 + 20000
    assert {r[1] for r in rows if r[0] <= 200} == {2}  # every session at its newest version


def test_sessions_already_held_are_updated_by_index_probes_never_a_scan(pg_server, tmp_path):
    """The plan that keeps ``sessions`` stays flat as a gateway's history grows: one probe of the
    primary key per session (the plan before schema 4 read the gateway's whole history)."""
    name, roles = central_db(pg_server, ["oak"])
    fill(tmp_path / "oak.db", 50)
    with CentralStore(pg_server.dsn(roles["oak"], name)) as oak:
        oak.ingest("oak", local_records(tmp_path / "oak.db"))
    with psycopg.connect(pg_server.dsn(dbname=name)) as con:
        held = con.execute("SELECT array_agg(session_id), array_agg(version + 1), array_agg(seq + 1000), "
                           "array_agg(first_seen), array_agg(body) FROM sessions").fetchone()
        statement = arrival.UPDATE_HELD.replace("$1", "'oak'").replace("$6", "%s::jsonb[]")
        for n in range(2, 6):
            statement = statement.replace(f"${n}", "%s")
        plan = con.execute("EXPLAIN (FORMAT JSON) " + statement,
                           (*held[:4], [json.dumps(b) for b in held[4]])).fetchone()[0]
    text = json.dumps(plan)
    assert "sessions_pkey" in text and "Seq Scan" not in text and "Index Scan" not in text


@pytest.mark.parametrize(
    ("tampered", "reason"),
    [
        (0, "record 11 refused: its partition time is not its session's first sighting"),  # an older version
        (1, "record 12 refused: its partition time is not its session's first sighting"),  # the newest
    ],
    ids=["older-version-json", "newest-version-jsonb"],
)
def test_a_wrong_partition_time_is_refused_on_either_path_and_no_session_is_kept(
        pg_server, tmp_path, monkeypatch, tampered, reason):
    """Bodies are parsed as jsonb (a session's newest version here) or json (the rest): both are checked,
    and a refused batch leaves ``sessions`` as it was."""
    name, roles = central_db(pg_server, ["oak"])
    fill(tmp_path / "oak.db", 10, per_write=10)  # records 1-10: sessions 1-10; 11-20: their versions 2
    with SQLiteSessionStore(tmp_path / "oak.db") as local:
        local.write([event(T0 + 60, device="OAK-0000")])  # record 21: session 1 again, version 3
    records = local_records(tmp_path / "oak.db")
    assert [(r[1], r[2]) for r in (records[10], records[11], records[20])] == [(1, 2), (2, 2), (1, 3)]
    target = records[10 + tampered][0]
    with CentralStore(pg_server.dsn(roles["oak"], name)) as oak:
        oak.ingest("oak", records[:10])
        before = _sessions(pg_server, name)
        real = central.session_start
        monkeypatch.setattr(central, "session_start",
                            lambda r: real(r) + (86400.0 * 40 if r[0] == target else 0.0))
        with pytest.raises(psycopg.errors.RaiseException, match=reason):
            oak.ingest("oak", records[10:])
        monkeypatch.undo()
        assert oak.cursor("oak").last.record_id == 10
        assert _sessions(pg_server, name) == before
        assert oak.ingest("oak", records[10:]).record_id == len(records)


def test_two_shippers_of_one_gateway_at_once_add_each_record_once(pg_server, tmp_path):
    name, roles = central_db(pg_server, ["oak"])
    fill(tmp_path / "oak.db", 300)
    records = local_records(tmp_path / "oak.db")
    start = threading.Barrier(2)
    heads, errors = [], []

    def ship() -> None:
        try:
            with CentralStore(pg_server.dsn(roles["oak"], name)) as oak:
                start.wait()
                heads.append(oak.ingest("oak", records).record_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ship) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and heads == [600, 600]
    with CentralStore(pg_server.dsn(dbname=name)) as owner:
        assert (owner.count("records"), owner.count("sessions")) == (600, 300)


@pytest.mark.parametrize(
    ("record", "start"),
    [
        ((1, 5, 1, 9.0, '{"first_seen":1790000000.25,"id":5}', "d", "p", "h"), 1790000000.25),
        ((1, 5, 1, 9.0, '{"first_seen":1.79e9}', "d", "p", "h"), 1790000000.0),  # exponent
        ((1, 5, 1, 9.0, '{"first_seen":-1.5}', "d", "p", "h"), -1.5),
        ((1, 5, 1, 9.0, '{"first_seen":null}', "d", "p", "h"), 9.0),  # no number: parsed, when recorded
        ((1, 5, 1, 9.0, '{"a":{"first_seen":3.0},"first_seen":4.0}', "d", "p", "h"), 4.0),  # twice: parsed
        ((1, 0, 1, 9.0, '{"review":{"first_seen":3.0}}', "d", "p", "h"), 9.0),  # session 0: top level only
        ((1, 5, 1, 9.0, '{"first_seen":1.2.3}', "d", "p", "h"), None),  # not a number, not JSON: refused
    ],
    ids=["plain", "exponent", "negative", "null", "nested-and-top", "session-0", "malformed"],
)
def test_session_start_reads_the_top_level_first_sighting(record, start):
    if start is None:
        with pytest.raises(json.JSONDecodeError):
            session_start(record)
    else:
        assert session_start(record) == start


@pytest.mark.parametrize(
    ("body", "hash_ok", "reason"),
    [
        ('{"first_seen":1790000000.0}', False, "record 11 refused: its hash does not match its fields"),
        ('{"first_seen":1790000000.0}', True, 'null value in column "last_seen"'),  # chained: its own fault
    ],
    ids=["bad-hash-named-first", "chained-but-not-a-session"],
)
def test_a_refused_record_is_named_before_its_session_row_is_attempted(pg_server, tmp_path, body, hash_ok,
                                                                       reason):
    """A session row is only tried once every record passed (a body lacking a session's fields, in a
    record that fails its check, is refused for that check, not for the missing field)."""
    import hashlib

    from monitor.store.chain import record_hash

    name, roles = central_db(pg_server, ["oak"])
    fill(tmp_path / "oak.db", 5)
    records = local_records(tmp_path / "oak.db")
    digest = hashlib.sha256(body.encode()).hexdigest()
    good = record_hash(11, 99, 1, 1790000100.0, digest, records[-1][7])
    forged = (11, 99, 1, 1790000100.0, body, digest, records[-1][7], good if hash_ok else "0" * 64)
    with CentralStore(pg_server.dsn(roles["oak"], name)) as oak:
        oak.ingest("oak", records)
        with pytest.raises(psycopg.Error, match=reason):
            oak.ingest("oak", [forged])
        assert oak.cursor("oak").last.record_id == 10
