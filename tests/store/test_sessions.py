"""Session merging, table-driven: one fact per row, through the real merger and the real store."""

from __future__ import annotations

import pytest

from monitor.observation import Exemption
from monitor.store.sessions import MAX_HOSTNAMES, SessionMerger
from monitor.store.sqlite import open_store
from tests.store_helpers import PUPILS, T0, event

GAP = 300

# (name, events, expected sessions as (observations, signals) in order of first sighting)
CASES = [
    ("one observation opens a session", [event(T0)], [(1, ("tls",))]),
    ("within the idle gap extends", [event(T0), event(T0 + GAP)], [(2, ("tls",))]),
    ("beyond the idle gap splits", [event(T0), event(T0 + GAP + 1)], [(1, ("tls",)), (1, ("tls",))]),
    ("a chain of short gaps stays one session",
     [event(T0 + i * 200) for i in range(10)], [(10, ("tls",))]),
    ("sensor and proxy merge",
     [event(T0, protocol="dns"), event(T0 + 0.01, protocol="tls"), event(T0 + 0.02, source="proxy")],
     [(3, ("dns", "proxy", "tls"))]),
    ("out of order within the gap merges", [event(T0 + 100), event(T0)], [(2, ("tls",))]),
    ("a late event bridges two segments",
     [event(T0), event(T0 + 500), event(T0 + 250)], [(3, ("tls",))]),
    ("another zone is another session",
     [event(T0), event(T0 + 1, zone="staff-room")], [(1, ("tls",)), (1, ("tls",))]),
    ("another period is another session",
     [event(T0), event(T0 + 1, period="Break", period_kind="non-contact", flags=())],
     [(1, ("tls",)), (1, ("tls",))]),
    ("another platform is another session",
     [event(T0), event(T0 + 1, platform="tiktok")], [(1, ("tls",)), (1, ("tls",))]),
    ("another device is another session",
     [event(T0), event(T0 + 1, device="OAK-0002", mac="3c:52:82:10:00:02")], [(1, ("tls",)), (1, ("tls",))]),
    ("another local date is another session",
     [event(T0), event(T0 + 1, local_date="2026-09-22")], [(1, ("tls",)), (1, ("tls",))]),
    ("two signed-in users of one shared PC are two sessions",
     [event(T0, source="proxy", owner="S2003"), event(T0 + 1, source="proxy", owner="S2005")],
     [(1, ("proxy",)), (1, ("proxy",))]),
    ("a device the trust does not own is never stored", [event(T0, trust_device=False)], []),
    ("an unmonitored zone is never stored", [event(T0, monitored=False)], []),
    ("a sensitive category is never stored", [event(T0, sensitive=True)], []),
    ("no platform is never stored", [event(T0, platform=None)], []),
]


@pytest.mark.parametrize(("events", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_merger(events, expected):
    merger = SessionMerger(GAP)
    for e in events:
        merger.add(e)
    got = [(s.observations, s.signals) for s in merger.drain()]
    assert got == expected


@pytest.mark.parametrize(("events", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_store_merges_the_same_way_one_event_per_batch(tmp_path, events, expected):
    """Each event in its own transaction: the merge then happens against stored rows."""
    with open_store(tmp_path / "s.db", idle_gap=GAP) as store:
        for e in events:
            store.write([e])
        got = sorted((s.observations, s.signals) for s in store.sessions())
        if len(events) == 3 and events[2].observation.timestamp == T0 + 250:
            # Known limit: two sessions already stored are not joined by a late event between
            # them; it extends the later one (joining would delete evidence rows).
            expected = [(1, ("tls",)), (2, ("tls",))]
        assert got == sorted(expected)
        assert store.verify().ok


def test_flags_union_and_exemption_kept():
    merger = SessionMerger(GAP)
    merger.add(event(T0))
    merger.add(event(T0 + 1, flags=(PUPILS,)))
    merger.add(event(T0 + 2, exemption=Exemption("marketing-team", "role", "4.1")))
    [s] = merger.drain()
    assert [f.name for f in s.flags] == ["contact_time", "pupil_area"]
    assert s.exemption is not None and not s.flagged


def test_hostnames_are_bounded():
    merger = SessionMerger(GAP)
    for i in range(50):
        merger.add(event(T0 + i, hostname=f"h{i:02d}.facebook.com"))
    [s] = merger.drain()
    assert len(s.hostnames) == MAX_HOSTNAMES and s.observations == 50


def test_ecs_names():
    merger = SessionMerger(GAP)
    merger.add(event(T0))
    [s] = merger.drain()
    ecs = s.to_ecs()
    assert ecs["event.start"] == "2026-09-21T14:13:20.000Z"
    assert ecs["host.id"] == "OAK-0001" and ecs["user.id"] == "staff-0001"
    assert ecs["social.flags"] == [{"name": "contact_time", "clause": "4.3", "reason": s.flags[0].reason}]
    assert s.to_csv_row()["social.flags"] == "contact_time (4.3)"
    assert "url.full" not in ecs and "url.path" not in ecs


@pytest.mark.parametrize(
    "extra",
    [{}, {"exemption": Exemption("marketing-team", "role \"quoted\" ünïcode", "4.1")}, {"owner": None},
     {"flags": ()}, {"hostname": "xn--bcher-kva.example"}],
)
def test_to_json_parses_to_to_ecs(extra):
    import json

    merger = SessionMerger(GAP)
    merger.add(event(T0 + 0.25, **extra))
    merger.add(event(T0 + 12.5, protocol="quic", **{k: v for k, v in extra.items() if k == "owner"}))
    [s] = merger.drain()
    s.id = 42
    assert json.loads(s.to_json()) == s.to_ecs()
