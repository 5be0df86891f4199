"""Central retention on a real server: whole months dropped, held sessions kept, chains still verify."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from monitor.store.postgres import retention
from monitor.store.postgres.central import CentralStore
from monitor.store.sqlite import SQLiteSessionStore
from tests.central_helpers import central_db, local_records
from tests.pg_server import SUPERUSER
from tests.store_helpers import T0, event

DAY = 86400.0
# T0 is 2026-09-21: sessions in September, October and November
MONTHS = {"2026_09": T0, "2026_10": T0 + 30 * DAY, "2026_11": T0 + 60 * DAY}
WHO = [("OAK-0001", "staff-0001"), ("OAK-0002", "staff-0002"), ("OAK-0003", "staff-0001")]
NOW = datetime(2026, 12, 15, tzinfo=UTC)  # 60 days back is 16 October: September is wholly older


def _gateway_store(path) -> list[tuple]:
    """Two sessions per device and owner in each month, each written twice (two versions)."""
    with SQLiteSessionStore(path) as store:
        for start in MONTHS.values():
            for hour in (0, 5):
                for version in (0, 30):
                    store.write([event(start + hour * 3600 + version, device=device, owner=owner)
                                 for device, owner in WHO])
    return local_records(path)


@pytest.fixture
def central(pg_server, tmp_path):
    """Gateways oak (its store shipped) and elm; the owner's connection."""
    name, roles = central_db(pg_server, ["oak", "elm"])
    records = _gateway_store(tmp_path / "oak.db")
    with CentralStore(pg_server.dsn(roles["oak"], name)) as oak:
        oak.ingest("oak", records)
    with CentralStore(pg_server.dsn(SUPERUSER, name)) as owner:
        yield owner, records


def _sessions(owner: CentralStore) -> list[tuple]:
    return owner.con.execute("SELECT device, to_char(first_seen AT TIME ZONE 'UTC', 'YYYY_MM') FROM sessions "
                             "ORDER BY 2, 1").fetchall()


def test_a_month_wholly_past_retention_is_dropped_and_the_chain_still_verifies(central):
    owner, records = central
    assert retention.months(owner.con) == ["2026_09", "2026_10", "2026_11"]
    report = retention.purge(owner.con, 60, NOW)
    assert [(m.month, m.records, m.sessions, m.held) for m in report.months] == [("2026_09", 12, 6, 0)]
    assert retention.months(owner.con) == ["2026_10", "2026_11"]
    assert {month for _, month in _sessions(owner)} == {"2026_10", "2026_11"}
    assert owner.verify_gateway("oak") == (len(records), None)  # tombstones keep every link
    bodies = owner.con.execute("SELECT count(*) FROM record_tombstones WHERE gateway_id = 'oak'").fetchone()
    assert bodies[0] == 12
    log = owner.con.execute("SELECT action, detail->>'month' FROM retention_log").fetchall()
    assert log == [("drop-month", "2026_09")]
    assert retention.purge(owner.con, 60, NOW).months == []  # nothing more is due


@pytest.mark.parametrize(
    ("hold", "held_devices"),
    [
        ({"device": "OAK-0002"}, {"OAK-0002"}),
        ({"owner": "staff-0001"}, {"OAK-0001", "OAK-0003"}),  # a person, on every device they used
        ({"device": "OAK-0002", "gateway_id": "oak"}, {"OAK-0002"}),
        ({"device": "OAK-0002", "gateway_id": "elm"}, set()),  # another school's gateway: not this one
        ({"device": "NOT-THERE"}, set()),
    ],
    ids=["device", "person", "device-on-gateway", "other-gateway", "no-match"],
)
def test_sessions_under_an_open_hold_are_kept_with_their_records(central, hold, held_devices):
    owner, records = central
    retention.open_hold(owner.con, "HR-2026-014", "disciplinary investigation", **hold)
    report = retention.purge(owner.con, 60, NOW)
    held = owner.con.execute("SELECT DISTINCT device FROM held_sessions").fetchall()
    assert {device for (device,) in held} == held_devices
    assert report.months[0].held == 2 * len(held_devices)
    bodies = owner.con.execute("SELECT count(*) FROM held_records WHERE body IS NOT NULL").fetchone()[0]
    assert bodies == 4 * len(held_devices)  # both versions of both sessions, content intact
    assert owner.verify_gateway("oak") == (len(records), None)


def test_a_released_hold_lets_its_sessions_go_at_the_next_purge(central):
    owner, records = central
    retention.open_hold(owner.con, "HR-1", "investigation", device="OAK-0002")
    retention.purge(owner.con, 60, NOW)
    assert retention.release_hold(owner.con, "HR-1", "case closed: no action") == 1
    assert retention.release_hold(owner.con, "HR-1", "again") == 0  # nothing open any more
    assert retention.open_holds(owner.con) == []
    report = retention.purge(owner.con, 60, NOW)
    assert report.released == 2 and report.months == []
    assert owner.con.execute("SELECT count(*) FROM held_records").fetchone()[0] == 0
    assert owner.verify_gateway("oak") == (len(records), None)
    actions = [a for (a,) in owner.con.execute("SELECT action FROM retention_log ORDER BY id")]
    assert actions == ["hold", "drop-month", "release", "release-expired"]


def test_a_changed_tombstone_is_caught_by_verify(central):
    owner, _ = central
    retention.purge(owner.con, 60, NOW)
    owner.con.execute("UPDATE record_tombstones SET recorded_at = recorded_at + 1 WHERE seq = 3")
    held, fault = owner.verify_gateway("oak")
    assert fault is not None and fault.record_id == 3 and held == 2


def test_the_gateway_keeps_shipping_after_a_drop(central, pg_server, tmp_path):
    owner, records = central
    retention.purge(owner.con, 60, NOW)
    with SQLiteSessionStore(tmp_path / "oak.db") as store:
        store.write([event(T0 + 80 * DAY, device="OAK-0009")])
    more = local_records(tmp_path / "oak.db")
    role = owner.con.execute("SELECT role_name FROM gateways WHERE gateway_id = 'oak'").fetchone()[0]
    with CentralStore(pg_server.dsn(role, owner.con.info.dbname)) as oak:
        assert oak.ingest("oak", more[len(records):]).record_id == len(more)
    assert owner.verify_gateway("oak") == (len(more), None)


def test_a_gateway_role_cannot_touch_holds_or_tombstones(central, pg_server):
    owner, _ = central
    role = owner.con.execute("SELECT role_name FROM gateways WHERE gateway_id = 'oak'").fetchone()[0]
    with CentralStore(pg_server.dsn(role, owner.con.info.dbname)) as oak:
        for statement in ("SELECT * FROM holds", "DELETE FROM record_tombstones",
                          "INSERT INTO holds (case_ref, device, reason) VALUES ('x', 'y', 'z')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                oak.con.execute(statement)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [({}, "a device or a person"), ({"device": "A", "owner": "B"}, "a device or a person")],
)
def test_a_hold_names_one_device_or_one_person(central, kwargs, problem):
    owner, _ = central
    with pytest.raises(ValueError, match=problem):
        retention.open_hold(owner.con, "HR-1", "why", **kwargs)


@pytest.mark.parametrize(
    ("month", "end"),
    [("2026_09", datetime(2026, 10, 1, tzinfo=UTC)), ("2026_12", datetime(2027, 1, 1, tzinfo=UTC))],
)
def test_month_end(month, end):
    assert retention.month_end(month) == end


def test_a_database_that_took_records_before_schema_3_upgrades_and_purges(pg_server, tmp_path):
    from monitor.store.postgres import schema

    name = pg_server.create_database("central")
    with CentralStore(pg_server.dsn(SUPERUSER, name)) as owner:
        assert schema.migrate(owner.con, {v: schema.MIGRATIONS[v] for v in (1, 2)}) == [1, 2]
        owner.register_gateway("oak", f"oak_{name}")
        records = _gateway_store(tmp_path / "oak.db")
        with CentralStore(pg_server.dsn(f"oak_{name}", name)) as oak:
            oak.ingest("oak", records)
        assert owner.migrate() == list(range(3, schema.SCHEMA_VERSION + 1))
        assert [m.month for m in retention.purge(owner.con, 60, NOW).months] == ["2026_09"]
        assert owner.verify_gateway("oak") == (len(records), None)


def _reviewed_central(pg_server, tmp_path, review_at: float):
    """oak's store with its first OAK-0002 session reviewed at `review_at`, shipped; the owner connection."""
    from monitor.store.reviews import append_review

    name, roles = central_db(pg_server, ["oak"])
    path = tmp_path / "oak.db"
    _gateway_store(path)
    with SQLiteSessionStore(path) as store:
        session = next(s for s in store.sessions() if s.device == "OAK-0002")
    append_review(path, session.id, "no action", "checked", "investigation", "dpo", "root", review_at)
    records = local_records(path)
    with CentralStore(pg_server.dsn(roles["oak"], name)) as oak:
        oak.ingest("oak", records)
    return CentralStore(pg_server.dsn(SUPERUSER, name)), records, session.id


def _held_reviews(owner: CentralStore) -> list[int]:
    from monitor.store.reviews import LIKE, parse_review

    rows = owner.con.execute("SELECT seq, recorded_at, body FROM held_records WHERE session_id = 0 AND "
                             "body LIKE %s", (LIKE,)).fetchall()
    return [parse_review(*row).session_id for row in rows]


@pytest.mark.parametrize(
    ("review_at", "held_device", "nows", "kept"),
    [
        (T0 + 6 * 3600, "OAK-0002", [NOW], 1),  # reviewed in the session's own month
        (T0 + 30 * DAY, "OAK-0002", [NOW, datetime(2027, 1, 15, tzinfo=UTC)], 1),  # reviewed a month later
        (T0 + 30 * DAY, "OAK-0002", [NOW], 0),  # its review's month is not dropped yet: still live
        (T0 + 6 * 3600, "OAK-0001", [NOW], 0),  # another device's session held, not the reviewed one
    ],
    ids=["same-month", "later-month", "later-month-still-live", "not-held"],
)
def test_a_held_sessions_review_is_kept_when_its_month_is_dropped(pg_server, tmp_path, review_at,
                                                                  held_device, nows, kept):
    owner, records, session_id = _reviewed_central(pg_server, tmp_path, review_at)
    with owner:
        retention.open_hold(owner.con, "HR-7", "investigation", device=held_device)
        for now in nows:
            retention.purge(owner.con, 60, now)
        assert _held_reviews(owner) == [session_id] * kept
        assert owner.verify_gateway("oak") == (len(records), None)


def test_a_held_review_is_kept_for_the_trust_reader_after_the_drop(pg_server, tmp_path):
    from monitor.store.postgres.reader import CentralReader
    from tests.central_helpers import reader_role

    owner, _, session_id = _reviewed_central(pg_server, tmp_path, T0 + 6 * 3600)
    with owner:
        retention.open_hold(owner.con, "HR-7", "investigation", device="OAK-0002")
        retention.purge(owner.con, 60, NOW)
        name = owner.con.info.dbname
    with CentralReader(pg_server.dsn(reader_role(pg_server, name), name)) as reader:
        reviews = reader.reviews_by_gateway()["oak"]
        assert [(r.session_id, r.outcome) for r in reviews] == [(session_id, "no action")]


def test_a_released_sessions_review_becomes_a_tombstone(pg_server, tmp_path):
    owner, records, _ = _reviewed_central(pg_server, tmp_path, T0 + 6 * 3600)
    with owner:
        retention.open_hold(owner.con, "HR-7", "investigation", device="OAK-0002")
        retention.purge(owner.con, 60, NOW)
        retention.release_hold(owner.con, "HR-7", "closed")
        assert retention.purge(owner.con, 60, NOW).released == 2
        assert owner.con.execute("SELECT count(*) FROM held_records").fetchone()[0] == 0
        assert _held_reviews(owner) == []
        assert owner.verify_gateway("oak") == (len(records), None)


def test_a_held_sessions_evidence_is_read_from_its_held_copy(central, pg_server):
    from monitor.store.filter import SessionFilter
    from monitor.store.postgres.reader import CentralReader
    from tests.central_helpers import reader_role

    owner, _ = central
    retention.open_hold(owner.con, "HR-7", "investigation", device="OAK-0002")
    retention.purge(owner.con, 60, NOW)
    name = owner.con.info.dbname
    with CentralReader(pg_server.dsn(reader_role(pg_server, name), name)) as reader:
        where = SessionFilter(device="OAK-0002")
        sessions = [(s.record_id, s.first_seen < T0 + 30 * DAY) for s in reader.sessions(where)]
        evidence = [r[0] for _, r in reader.gateway_evidence(where)]
    assert [rid for rid, _ in sessions] == evidence and sum(held for _, held in sessions) == 2


# --- a gateway's own holds (`social-monitor hold`, records in its chain) are kept at the centre too ---------


def _gateway_holds(path, steps: list[tuple[str, ...]]) -> None:
    """Place and release holds in the gateway's chain as `social-monitor hold` does, in December."""
    from monitor.store import holds, transactions
    from monitor.store.chain import GENESIS, ChainHead

    for action, case, *scope in steps:
        with transactions.own_connection(path) as con:
            if action == "place":
                holds.place(con, ChainHead(0, GENESIS), T0 + 90 * DAY, case=case, scope=scope[0],
                            target=scope[1], reason="case opened", by="dpo")
            else:
                holds.release(con, ChainHead(0, GENESIS), T0 + 90 * DAY, case=case, reason="closed", by="dpo")


@pytest.mark.parametrize(
    ("steps", "open_holds", "held"),
    [
        ([], [], 0),
        ([("place", "C-1", "device", "OAK-0001")], [("C-1", "oak", "OAK-0001", None)], 2),
        ([("place", "C-1", "staff", "staff-0001")], [("C-1", "oak", None, "staff-0001")], 4),
        ([("place", "C-1", "device", "OAK-0001"), ("release", "C-1")], [], 0),
        ([("place", "C-1", "device", "OAK-0001"), ("release", "C-1"), ("place", "C-1", "device", "OAK-0002")],
         [("C-1", "oak", "OAK-0002", None)], 2),
        ([("place", "C-1", "device", "OAK-0001"), ("place", "C-2", "device", "OAK-0002"), ("release", "C-1")],
         [("C-2", "oak", "OAK-0002", None)], 2),
    ],
    ids=["none", "device", "staff", "released", "placed again", "other case released"],
)
def test_a_hold_placed_in_a_gateways_chain_keeps_its_sessions_at_the_centre(pg_server, tmp_path, steps,
                                                                          open_holds, held):
    name, roles = central_db(pg_server, ["oak"])
    _gateway_store(tmp_path / "oak.db")
    _gateway_holds(tmp_path / "oak.db", steps)
    with CentralStore(pg_server.dsn(roles["oak"], name)) as oak:
        oak.ingest("oak", local_records(tmp_path / "oak.db"))
    with CentralStore(pg_server.dsn(SUPERUSER, name)) as owner:
        report = retention.purge(owner.con, 60, NOW)
        assert [(h.case_ref, h.gateway_id, h.device, h.owner) for h in retention.open_holds(owner.con)] == \
            open_holds
        assert [(m.month, m.held) for m in report.months] == [("2026_09", held)]
        assert retention.adopt_gateway_holds(owner.con) == 0  # each chain hold is opened once
        assert owner.verify_gateway("oak")[1] is None
