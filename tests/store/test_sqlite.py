"""The store: writing, merging against stored rows, reading, the chain, retention, bad files."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.store.chain import GENESIS
from monitor.store.filter import SessionFilter
from monitor.store.sessions import SessionMerger
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "s.db", idle_gap=300) as s:
        yield s


def test_write_merge_and_read_back(store):
    store.write([event(T0), event(T0 + 1, protocol="dns"), event(T0 + 2, source="proxy")])
    store.write([event(T0 + 100, protocol="quic")])  # a later batch extends the stored session
    [s] = list(store.sessions())
    assert (s.id, s.version, s.observations) == (1, 2, 4)
    assert s.signals == ("dns", "proxy", "quic", "tls")
    assert (s.first_seen, s.last_seen) == (T0, T0 + 100)
    assert s.flagged and s.flags[0].clause == "4.3"
    assert store.verify().ok
    assert store.chain_head().record_id == 2


def test_empty_store_head_is_genesis(store):
    assert store.chain_head().hash == GENESIS
    assert store.verify().ok


def test_sessions_filters_use_indexes(store):
    for i in range(20):
        store.write([event(T0 + i * 1000, device=f"D{i % 3}", school=("oak-primary", "ash-secondary")[i % 2],
                           flags=() if i % 4 else (event().flags))])
    assert store.count(SessionFilter(school="oak-primary")) == 10
    assert store.count(SessionFilter(school="oak-primary", flagged=True)) == 5
    assert store.count(SessionFilter(device="D1")) == 7
    assert store.count(SessionFilter(owner="staff-0001")) == 20
    assert [s.first_seen for s in store.sessions(SessionFilter(since=T0 + 5000, until=T0 + 8000))] == [
        T0 + 5000, T0 + 6000, T0 + 7000]
    plan = " ".join(str(r) for r in store._con.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM sessions WHERE school = ? AND flagged = 1 AND first_seen >= ? "
        "AND first_seen < ? ORDER BY first_seen, id", ("oak-primary", 0, 1)))
    assert "sessions_school_flagged" in plan


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.floats(min_value=0, max_value=3000, allow_nan=False), min_size=1, max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=4),
    sources=st.lists(st.sampled_from(["sensor", "proxy"]), min_size=30, max_size=30),
)
def test_any_batching_keeps_every_observation_and_the_chain(tmp_path_factory, offsets, cuts, sources):
    events = [event(T0 + o, source=sources[i], device=f"D{i % 2}") for i, o in enumerate(offsets)]
    bounds = sorted({0, len(events), *[c for c in cuts if c < len(events)]})
    with open_store(tmp_path_factory.mktemp("h") / "s.db", idle_gap=300) as store:
        for a, b in itertools.pairwise(bounds):
            store.write(events[a:b])
        sessions = list(store.sessions())
        assert sum(s.observations for s in sessions) == len(events)
        assert store.verify().ok
        single = SessionMerger(300)
        for e in events:
            single.add(e)
        assert len(sessions) >= len(single.drain())  # batching never joins what one batch keeps apart


def test_ecs_json_lines_parse_to_to_ecs(store):
    """The SQL-built JSON lines and the Python `to_ecs()` agree field for field, timestamps included."""
    import json
    import random

    from monitor.observation import Exemption
    from monitor.store.base import SessionStore

    rng = random.Random(7)
    events = []
    for i in range(300):
        ts = T0 + i * 1000 + rng.random() * 500
        owner = None if i % 5 == 0 else "staff-1"
        events.append(event(ts, device=f"D{i % 7}", zone=("classrooms", "staff-room")[i % 2],
                            protocol=("dns", "tls", "quic")[i % 3], owner=owner,
                            exemption=Exemption("marketing-team", 'posts "for" the school', "4.1")
                            if i % 11 == 0 else None, flags=() if i % 3 == 0 else event().flags))
        events.append(event(ts + rng.random() * 100, device=f"D{i % 7}", owner=owner,
                            zone=("classrooms", "staff-room")[i % 2], source="proxy",
                            hostname='odd",name.facebook.com'))
    store.write(events)
    sessions = list(store.sessions())
    lines = list(store.ecs_json())
    assert len(lines) == len(sessions) == 300
    for s, line in zip(sessions, lines, strict=True):
        assert json.loads(line) == s.to_ecs()
    python_lines = list(SessionStore.ecs_json(store, SessionFilter(school="oak-primary", flagged=True)))
    assert python_lines and [json.loads(x) for x in python_lines] == [
        json.loads(x) for x in store.ecs_json(SessionFilter(school="oak-primary", flagged=True))]
    assert store.verify().ok  # a hostname with a quote and a comma round-trips through the row


def test_flagged_column_edit_is_detected(store):
    store.write([event(T0)])
    store._con.execute("UPDATE sessions SET flagged = 0")
    result = store.verify()
    assert not result.ok and "session 1 changed" in (result.problem or "")


def test_write_sessions_merges_unmerged_segments_of_one_call(store):
    from monitor.store.sessions import session_from_event

    segments = [session_from_event(event(T0 + i * 10, protocol=("dns", "tls")[i % 2])) for i in range(5)]
    assert store.write_sessions(segments) == 1
    [s] = store.sessions()
    assert s.observations == 5 and s.signals == ("dns", "tls")
    assert [seg.observations for seg in segments] == [1] * 5  # the caller's segments are not merged into


def test_snapshot_is_one_view_while_another_process_writes(tmp_path):
    from monitor.store.filter import EVERY_SESSION

    with open_store(tmp_path / "s.db") as writer, open_store(tmp_path / "s.db", create=False) as reader:
        writer.write([event(T0)])
        with reader.snapshot() as view:
            head = view.chain_head()  # the first read fixes the view
            writer.write([event(T0 + 5000, device="OAK-0002")])
            with reader.snapshot() as inner:  # nested: the same view
                assert inner.count(EVERY_SESSION) == 1 and inner.chain_head() == head
            assert view.devices_and_owners() == ({"OAK-0001"}, {"staff-0001"})
        assert reader.count() == 2 and reader.chain_head().record_id == head.record_id + 1


@pytest.mark.parametrize(
    ("where", "count"),
    [
        (SessionFilter(), 6),
        (SessionFilter(limit=4), 4),
        (SessionFilter(limit=10), 6),
        (SessionFilter(device="D1", limit=1), 1),
        (SessionFilter(platform="tiktok"), 0),
    ],
)
def test_count_and_devices_follow_the_limit(store, where, count):
    store.write([event(T0 + i * 1000, device=f"D{i % 3}") for i in range(6)])
    assert store.count(where) == count == len(list(store.sessions(where))) == len(list(store.ecs_json(where)))
    devices, _ = store.devices_and_owners(where)
    assert devices == {s.device for s in store.sessions(where)}


@pytest.mark.parametrize(("after", "limit", "ids"),
                         [(0, 3, [1, 2, 3]), (2, 10, [3, 4]), (4, 5, []), (1, 1, [2])])
def test_records_since_reads_the_chain_in_order(tmp_path, after, limit, ids):
    with open_store(tmp_path / "s.db") as store:
        store.write([event(T0), event(T0 + 10, device="B")])
        store.write([event(T0 + 20), event(T0 + 30, device="B")])
        records = store.records_since(after, limit)  # type: ignore[attr-defined]
    assert [r[0] for r in records] == ids
    assert all(len(r) == 8 for r in records)


# --- a destination hidden (issue 16): stored with no platform, obscured_by chained --------------------


def _hidden_event(ts: float, kind: str, protocol: str = "wireguard"):
    from tests.store_helpers import event

    e = event(ts, platform=None, flags=(), protocol=protocol, hostname="")
    e.observation.hostname = ""
    e.observation.obscured, e.observation.obscured_by = True, kind  # type: ignore[assignment]
    return e


@pytest.mark.parametrize(
    ("kinds", "stored"),
    [(("vpn",), ("vpn",)), (("vpn", "encrypted-dns", "vpn"), ("encrypted-dns", "vpn")), (("tor",), ("tor",))],
)
def test_obscured_by_round_trips_and_verifies(tmp_path, kinds, stored):
    from tests.store_helpers import T0

    with open_store(tmp_path / "s.db") as store:
        store.write([_hidden_event(T0 + i, kind) for i, kind in enumerate(kinds)], now=T0 + 100)
        sessions = list(store.sessions())
        assert store.verify().ok
    assert [(s.platform, s.obscured_by, s.flags, s.hostnames) for s in sessions] == [("", stored, (), ())]
    assert sessions[0].body()["obscured_by"] == list(stored)


def test_obscured_by_of_a_later_batch_merges_into_the_open_session(tmp_path):
    from tests.store_helpers import T0

    with open_store(tmp_path / "s.db") as store:
        store.write([_hidden_event(T0, "vpn")], now=T0 + 1)
        store.write([_hidden_event(T0 + 30, "encrypted-dns", "tls")], now=T0 + 31)
        sessions = list(store.sessions())
        assert store.verify().ok
    assert [(s.obscured_by, s.signals, s.observations) for s in sessions] == [
        (("encrypted-dns", "vpn"), ("tls", "wireguard"), 2)]
