"""Ingest into the central store as a gateway's role: chains checked on arrival, least privilege."""

from __future__ import annotations

import psycopg
import pytest

from monitor.store.chain import ChainHead
from monitor.store.postgres import central
from monitor.store.postgres.central import CentralStore, month_of, session_start
from tests.central_helpers import central_db, fill, local_records


@pytest.fixture
def trust(pg_server, tmp_path):
    """A central database with gateways oak and elm, and oak's store of 30 sessions (60 records)."""
    name, roles = central_db(pg_server, ["oak", "elm"])
    fill(tmp_path / "oak.db", 30)
    return name, roles, local_records(tmp_path / "oak.db")


def connect(pg_server, name, role) -> CentralStore:
    return CentralStore(pg_server.dsn(role, name))


def test_ingest_is_idempotent_and_resumes_from_the_cursor(pg_server, trust):
    name, roles, records = trust
    with connect(pg_server, name, roles["oak"]) as oak:
        assert oak.ingest("oak", records[:25]).record_id == 25
        assert oak.ingest("oak", records[:25]).record_id == 25  # the same batch again adds nothing
        assert oak.ingest("oak", records[10:40]).record_id == 40  # overlapping: only the new ones
        head = oak.ingest("oak", records)
        assert head == ChainHead(60, records[-1][7])
        assert oak.count("records") == 60
        assert oak.verify_gateway("oak") == (60, None)


def _with(record: tuple, index: int, value) -> tuple:
    return (*record[:index], value, *record[index + 1:])


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda rs: [rs[0], rs[2]], "records 11 to 13 refused: they do not follow its record 10"),  # a gap
        (lambda rs: [rs[1]], "records 12 to 12 refused: they do not follow its record 10"),  # skips 11
        (lambda rs: [_with(rs[0], 4, rs[0][4].replace('"observations":1', '"observations":9'))],
         "record 11 refused: its content does not match its digest"),
        (lambda rs: [_with(rs[0], 3, rs[0][3] + 1.0)],
         "record 11 refused: its hash does not match its fields"),
        (lambda rs: [_with(rs[0], 6, "f" * 64)], "record 11 refused: it does not link to record 10"),
        (lambda rs: [rs[0], _with(rs[1], 6, "e" * 64)], "record 12 refused: it does not link to record 11"),
        (lambda rs: [_with(rs[0], 2, rs[0][2] + 1)], "record 11 refused: its hash does not match its fields"),
    ],
    ids=["gap", "skip", "body", "time", "link-first", "link-second", "version"],
)
def test_a_batch_that_does_not_continue_the_chain_is_refused_whole(pg_server, trust, tamper, reason):
    name, roles, records = trust
    with connect(pg_server, name, roles["oak"]) as oak:
        oak.ingest("oak", records[:10])
        with pytest.raises(psycopg.errors.RaiseException, match=reason):
            oak.ingest("oak", tamper(records[10:13]))
        assert oak.cursor("oak").last.record_id == 10  # nothing of the refused batch was kept
        assert oak.count("records") == 10
        assert oak.ingest("oak", records[10:]).record_id == 60  # the true chain still goes in


@pytest.mark.parametrize(
    "shift",
    [0.5, -86400.0 * 40, 86400.0],
    ids=["half-a-second", "an-earlier-month", "a-day-later"],
)
def test_a_partition_time_the_client_got_wrong_is_refused(pg_server, trust, monkeypatch, shift):
    """The client sends each record's session_start; the database checks it against the body."""
    name, roles, records = trust
    with connect(pg_server, name, roles["oak"]) as oak:
        oak.ingest("oak", records[:10])
        monkeypatch.setattr(central, "session_start", lambda record: session_start(record) + shift)
        with pytest.raises(psycopg.errors.RaiseException,
                           match="record 11 refused: its partition time is not its session's first sighting"):
            oak.ingest("oak", records[10:13])
        monkeypatch.undo()
        assert oak.cursor("oak").last.record_id == 10
        assert oak.ingest("oak", records[10:]).record_id == 60


def test_a_gateway_cannot_insert_another_gateways_records(pg_server, trust):
    name, roles, records = trust
    with connect(pg_server, name, roles["oak"]) as oak:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            oak.ingest("elm", records[:5])
        with pytest.raises(LookupError, match="not registered"):
            oak.cursor("elm")  # it cannot even read the other gateway's cursor


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records SET body = NULL",
        "DELETE FROM records",
        "UPDATE gateways SET last_seq = 0",
        "UPDATE sessions SET flagged = false",
        "DELETE FROM sessions",
        "TRUNCATE records",
        "SELECT central_records_arrived()",
    ],
)
def test_nobody_but_the_owner_changes_what_arrived(pg_server, trust, statement):
    name, roles, records = trust
    with connect(pg_server, name, roles["oak"]) as oak:
        oak.ingest("oak", records)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            oak.con.execute(statement)
    with connect(pg_server, name, roles["elm"]) as elm:
        assert elm.count("records") == 0  # row-level security: elm sees none of oak's records


def test_the_reader_role_reads_every_gateway_and_writes_nothing(pg_server, trust):
    name, roles, records = trust
    with connect(pg_server, name, roles["oak"]) as oak:
        oak.ingest("oak", records)
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        admin.con.execute(f"CREATE ROLE {name}_reader LOGIN IN ROLE social_monitor_reader")
    with connect(pg_server, name, f"{name}_reader") as reader:
        assert reader.count("records") == 60
        assert reader.count("sessions") == 30
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.ingest("oak", records)


def test_a_gateway_that_compacted_before_shipping_is_anchored_at_its_checkpoint(pg_server, trust):
    name, roles, records = trust
    with connect(pg_server, name, roles["elm"]) as elm:
        elm.anchor("elm", ChainHead(20, records[19][7]))
        assert elm.ingest("elm", records[20:]).record_id == 60
        assert elm.verify_gateway("elm") == (40, None)
        with pytest.raises(psycopg.errors.RaiseException, match="not anchored"):
            elm.anchor("elm", ChainHead(5, records[4][7]))  # only before anything arrived


@pytest.mark.parametrize(
    ("timestamp", "month"),
    [(1790000000.0, "2026_09"), (1790812799.999, "2026_09"), (1790812800.0, "2026_10"), (0.0, "1970_01")],
)
def test_month_of(timestamp, month):
    assert month_of(timestamp) == month


@pytest.mark.parametrize(
    ("record", "start"),
    [
        ((1, 1, 1, 1790000500.0, '{"first_seen":1790000000.25}', "d", "p", "h"), 1790000000.25),
        ((1, 1, 1, 1790000500.0, None, "d", "p", "h"), 1790000500.0),  # purged body: when recorded
    ],
)
def test_session_start(record, start):
    assert session_start(record) == start


def test_a_review_in_the_chain_ships_and_verifies_without_becoming_a_session(pg_server, trust, tmp_path):
    from monitor.store.reviews import append_review

    name, roles, _ = trust
    append_review(tmp_path / "oak.db", 3, "teaching use", "Year 5 lesson", "weekly review", "Mr Day", "it",
                  1_790_100_000.0)
    records = local_records(tmp_path / "oak.db")
    assert len(records) == 61 and records[-1][1] == 0  # the review: a record of session 0
    with connect(pg_server, name, roles["oak"]) as oak:
        assert oak.ingest("oak", records).record_id == 61
        assert oak.verify_gateway("oak") == (61, None)
        assert oak.count("records", "oak") == 61
    with CentralStore(pg_server.dsn(dbname=name)) as owner:
        assert owner.count("sessions", "oak") == 30


# --- walking a long chain: a server-side cursor, one batch at a time ---------------------------------


@pytest.mark.parametrize("batch", [1, 7, 59, 60, 61, 5000], ids=lambda b: f"batch-{b}")
def test_a_chain_longer_than_a_batch_is_walked_whole(pg_server, trust, batch):
    name, roles, records = trust
    with connect(pg_server, name, roles["oak"]) as oak:
        oak.ingest("oak", records)
        oak.chain_batch = batch
        assert oak.verify_gateway("oak") == (60, None)
        assert [tuple(r) for r in oak.records("oak")] == [tuple(r) for r in records]
        assert [r[0] for r in oak.records("oak", 45)] == list(range(46, 61))


def test_a_walk_reads_through_a_server_side_cursor_and_closes_it(pg_server, trust):
    """A client-side cursor would have the whole chain in memory before the first record is walked."""
    name, roles, records = trust
    with connect(pg_server, name, roles["oak"]) as oak:
        oak.ingest("oak", records)
        oak.chain_batch = 7
        walk = oak.records("oak")
        assert next(walk)[0] == 1
        cursors = [n for (n,) in oak.con.execute("SELECT name FROM pg_cursors") if n.startswith("social_")]
        assert cursors == ["social_monitor_chain_1"]
        assert sum(1 for _ in walk) == 59
        assert oak.con.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # its own, ended
        assert not oak.con.execute("SELECT name FROM pg_cursors").fetchall()


@pytest.mark.parametrize(
    ("statement", "held", "kind", "record"),
    [
        ("UPDATE records SET body = replace(body, 'OAK-', 'OAX-') "
         "WHERE gateway_id = 'oak' AND seq = 50", 49, "changed", 50),
        ("UPDATE records SET recorded_at = recorded_at + 1 WHERE gateway_id = 'oak' AND seq = 50",
         49, "inserted", 50),
        ("UPDATE records SET prev_hash = repeat('e', 64) WHERE gateway_id = 'oak' AND seq = 57",
         56, "inserted", 57),
        ("DELETE FROM records WHERE gateway_id = 'oak' AND seq = 44", 43, "removed", 44),
    ],
    ids=["body-in-batch-8", "time-in-batch-8", "link-in-batch-9", "deleted-in-batch-7"],
)
def test_a_rewritten_record_in_a_later_batch_is_found(pg_server, trust, statement, held, kind, record):
    name, roles, records = trust
    with connect(pg_server, name, roles["oak"]) as oak:
        oak.ingest("oak", records)
    with CentralStore(pg_server.dsn(dbname=name)) as owner:
        owner.con.execute(statement)
        owner.chain_batch = 7
        count, fault = owner.verify_gateway("oak")
        assert (count, fault.kind if fault else None, fault.record_id if fault else None) == \
            (held, kind, record)
