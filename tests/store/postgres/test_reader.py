"""The central store read as one trust: two real gateways shipped to a real server, read as a reader."""

from __future__ import annotations

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.store.filter import SessionFilter
from monitor.store.postgres.reader import CentralReader, CentralReaderError, body_session, where_sql
from monitor.store.sqlite import SQLiteSessionStore
from tests.central_helpers import DAY, two_schools
from tests.store_helpers import T0

KEYS = {"oak": Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
        "elm": Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))}


@pytest.fixture(scope="module")
def trust(pg_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trust")
    name, roles, reader = two_schools(pg_server, tmp, KEYS)
    return pg_server, name, roles, reader, tmp


@pytest.fixture
def reader(trust):
    server, name, _, role, _ = trust
    with CentralReader(server.dsn(role, name)) as r:
        yield r


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        # the same moment at two gateways: in gateway order
        (SessionFilter(), [("elm", "ASH-PC-0001"), ("oak", "OAK-LT-0002"), ("elm", "ASH-LT-0002"),
                           ("oak", "OAK-LT-0002"), ("oak", "OAK-LT-0001"), ("oak", "OAK-LT-0002"),
                           ("elm", "ASH-PC-0001")]),
        (SessionFilter(school="ash-secondary"), [("elm", "ASH-PC-0001"), ("elm", "ASH-LT-0002"),
                                                 ("elm", "ASH-PC-0001")]),
        (SessionFilter(owner="S1002"), [("oak", "OAK-LT-0002"), ("oak", "OAK-LT-0002")]),
        (SessionFilter(device="ASH-PC-0001"), [("elm", "ASH-PC-0001"), ("elm", "ASH-PC-0001")]),
        (SessionFilter(since=T0 + 2 * DAY), [("oak", "OAK-LT-0001"), ("oak", "OAK-LT-0002"),
                                             ("elm", "ASH-PC-0001")]),
        (SessionFilter(until=T0 + 1), [("elm", "ASH-PC-0001"), ("oak", "OAK-LT-0002")]),
        (SessionFilter(limit=3), [("elm", "ASH-PC-0001"), ("oak", "OAK-LT-0002"), ("elm", "ASH-LT-0002")]),
        (SessionFilter(platform="twitter"), []),
    ],
    ids=["all", "school", "owner", "device", "since", "until", "limit", "none"],
)
def test_sessions_of_every_gateway_oldest_first(reader, where, expected):
    found = list(reader.sessions(where))
    assert [(s.gateway, s.device) for s in found] == expected
    assert reader.count(where) == len(expected)


def test_sessions_are_the_gateways_own_byte_for_byte(reader, trust):
    """Each central session is the gateway's session: the same body, id, version and record."""
    *_, tmp = trust
    for gateway in ("oak", "elm"):
        with SQLiteSessionStore(tmp / f"{gateway}.db", create=False) as local:
            mine = {s.id: s for s in local.sessions()}
        central = [s for s in reader.sessions() if s.gateway == gateway]
        assert {s.id for s in central} == set(mine)
        for s in central:
            assert (s.body(), s.record_id, s.to_json()) == (mine[s.id].body(), mine[s.id].record_id,
                                                             mine[s.id].to_json())


def test_session_ids_repeat_across_gateways_and_say_so(reader):
    assert {s.gateway for s in reader.sessions() if s.id == 1} == {"oak", "elm"}
    with pytest.raises(CentralReaderError, match="session 1 is held for gateways elm, oak"):
        reader.session(1)
    assert reader.session(4) is not None and reader.session(4).gateway == "oak"
    assert reader.session(99) is None


@pytest.mark.parametrize(
    ("where", "devices", "owners"),
    [
        (SessionFilter(), {"OAK-LT-0001", "OAK-LT-0002", "ASH-PC-0001", "ASH-LT-0002"},
         {"S1001", "S1002", "S2002", "TRUST\\jsmith", "jsmith@trust.example"}),
        (SessionFilter(school="oak-primary"), {"OAK-LT-0001", "OAK-LT-0002"}, {"S1001", "S1002"}),
        (SessionFilter(limit=1), {"ASH-PC-0001"}, {"TRUST\\jsmith"}),
    ],
)
def test_devices_and_owners(reader, where, devices, owners):
    assert reader.devices_and_owners(where) == (devices, owners)


def test_sources_name_each_gateways_cursor_and_signed_head(reader, trust):
    *_, tmp = trust
    sources = {s.gateway_id: s for s in reader.sources()}
    assert set(sources) == {"oak", "elm"}
    for gateway, source in sources.items():
        with SQLiteSessionStore(tmp / f"{gateway}.db", create=False) as local:
            assert source.cursor == local.chain_head()
        assert source.signed_head is not None and source.signed_head["record_id"] == source.cursor.record_id
        assert source.to_dict()["cursor"] == {"record_id": source.cursor.record_id,
                                              "hash": source.cursor.hash}


@pytest.mark.parametrize(("gateways", "reviewed"), [(["oak"], []), (["elm"], [(1, "no action")])])
def test_one_gateway_reads_only_its_sessions_reviews_and_chain(trust, gateways, reviewed):
    server, name, _, role, _ = trust
    with CentralReader(server.dsn(role, name), gateways) as r:
        assert {s.gateway for s in r.sessions()} == set(gateways)
        assert r.chain_head() == r.sources()[0].cursor
        assert [(x.session_id, x.outcome) for x in r.reviews()] == reviewed


def test_reviews_are_kept_per_gateway(reader):
    found = reader.reviews_by_gateway()
    assert {g: [(r.session_id, r.by) for r in rs] for g, rs in found.items()} == {"elm": [(1, "dpo")]}


def test_a_trust_wide_read_has_no_single_chain_head(reader):
    with pytest.raises(CentralReaderError, match="one chain per gateway"):
        reader.chain_head()
    with pytest.raises(CentralReaderError, match="reviews_by_gateway"):
        reader.reviews()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO retention_log (action, detail) VALUES ('x', '{}')",
        "UPDATE sessions SET owner = 'someone else'",
        "DELETE FROM records",
    ],
)
def test_the_reader_cannot_write_even_as_the_owner(trust, statement):
    server, name, *_ = trust
    with CentralReader(server.dsn(dbname=name)) as r, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        r.con.execute(statement)


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("INSERT INTO records (gateway_id, seq, session_id, version, recorded_at, body_sha256, prev_hash, "
         "hash, session_start) VALUES ('oak', 999, 1, 1, 0, 'x', 'x', 'x', now())", "permission denied"),
        ("UPDATE sessions SET owner = 'someone else'", "permission denied"),
        ("DELETE FROM records", "permission denied"),
        ("INSERT INTO holds (case_ref, device, reason) VALUES ('c', 'd', 'r')", "permission denied"),
    ],
)
def test_a_reader_role_cannot_write_on_its_own_connection(trust, statement, error):
    server, name, _, role, _ = trust
    with psycopg.connect(server.dsn(role, name), autocommit=True) as con, \
            pytest.raises(psycopg.errors.InsufficientPrivilege, match=error):
        con.execute(statement)


def test_a_gateway_role_may_not_read_the_trust(trust):
    server, name, roles, *_ = trust
    with pytest.raises(CentralReaderError, match="may not read the trust's sessions"):
        CentralReader(server.dsn(roles["oak"], name))


def test_an_unknown_gateway_is_named(trust):
    server, name, _, role, _ = trust
    with pytest.raises(CentralReaderError, match="gateway 'ash' is not registered \\(elm, oak\\)"):
        CentralReader(server.dsn(role, name), ["ash"])


def test_a_server_that_is_not_there_is_one_line(tmp_path):
    with pytest.raises(CentralReaderError) as caught:
        CentralReader({"host": str(tmp_path), "port": 1, "user": "auditor", "dbname": "x",
                       "connect_timeout": "2"})
    text = str(caught.value)
    assert text.startswith("central store auditor@") and "\n" not in text


# --- pure: the filter in SQL, a body back to a session ------------------------------------------------


@pytest.mark.parametrize(
    ("where", "clause", "params"),
    [
        (SessionFilter(), " WHERE gateway_id = ANY(%s)", [["oak"]]),
        (SessionFilter(school="s", flagged=True),
         " WHERE gateway_id = ANY(%s) AND school = %s AND flagged = %s", [["oak"], "s", True]),
        (SessionFilter(owner="o", device="d"), " WHERE gateway_id = ANY(%s) AND device = %s AND owner = %s",
         [["oak"], "d", "o"]),
        (SessionFilter(since=5, until=9.5),
         " WHERE gateway_id = ANY(%s) AND first_seen >= to_timestamp(%s) AND first_seen < to_timestamp(%s)",
         [["oak"], 5.0, 9.5]),
        (SessionFilter(limit=3), " WHERE gateway_id = ANY(%s)", [["oak"]]),  # the caller adds LIMIT
    ],
)
def test_where_sql(where, clause, params):
    assert where_sql(where, ["oak"]) == (clause, params)


@pytest.mark.parametrize(
    "edit",
    [
        {},
        {"flags": [], "exemption": {"name": "teaching", "clause": "4.1", "reason": "lesson"}},
        {"roles": ["embed"], "probably_teaching": True, "owner": None, "asset_tag": None},
    ],
)
def test_body_session_round_trips(edit):
    from monitor.store.sessions import session_from_event
    from tests.store_helpers import event

    s = session_from_event(event())
    s.id, s.version, s.record_id = 7, 2, 40
    body = {**s.body(), **edit}
    back = body_session(body, "oak", 40)
    assert (back.body(), back.gateway, back.record_id) == (body, "oak", 40)


@pytest.mark.parametrize(
    "where",
    [SessionFilter(), SessionFilter(owner="S1002"), SessionFilter(device="ASH-PC-0001"),
     SessionFilter(since=T0 + 2 * DAY), SessionFilter(platform="twitter")],
    ids=["all", "owner", "device", "since", "none"],
)
def test_gateway_evidence_is_each_sessions_record_in_session_order(reader, where):
    from monitor.store.chain import body_digest

    sessions = [(s.gateway, s.record_id, s.id) for s in reader.sessions(where)]
    evidence = list(reader.gateway_evidence(where))
    assert [(g, r[0], r[1]) for g, r in evidence] == sessions
    assert all(body_digest(r[4]) == r[5] for _, r in evidence)
