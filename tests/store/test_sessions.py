"""Session merging, table-driven: one fact per row, through the real merger and the real store."""

from __future__ import annotations

import json

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
    ("a flow's continuations extend without counting",
     [event(T0), event(T0 + 200, continuation=True), event(T0 + 400, continuation=True)], [(1, ("tls",))]),
    ("a continuation and a new flow: two observations",
     [event(T0), event(T0 + 200, continuation=True), event(T0 + 260)], [(2, ("tls",))]),
    ("a continuation alone opens a session of no observations",
     [event(T0, continuation=True)], [(0, ("tls",))]),
    ("a flow carried into the next period opens a session there",
     [event(T0), event(T0 + 60, period="Break", period_kind="non-contact", flags=(), continuation=True)],
     [(1, ("tls",)), (0, ("tls",))]),
    ("a continuation past the idle gap is a session of its own",
     [event(T0), event(T0 + GAP + 1, continuation=True)], [(1, ("tls",)), (0, ("tls",))]),
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


# --- issue 17 through the store: roles, pupil hours, teaching mark, special categories -------------


def _tagged(example_config, host: str, when: tuple[int, ...], client: str = "10.20.10.41"):
    from monitor.observation import Observation
    from monitor.tagging.tagger import Tagger
    from tests.conftest import london

    tagger = Tagger(example_config)
    return [tagger.tag(Observation(london(*when) + k * 30, client, 50000 + k, "198.51.100.7", 443, "tcp",
                                   "tls", h)) for k, h in enumerate(host.split())]


@pytest.mark.parametrize(
    ("hosts", "when", "roles", "flags", "flagged", "embed_only", "teaching"),
    [
        # one session per row: a news page's Facebook SDK alone, then with the site itself
        ("connect.facebook.net", (2026, 11, 30, 10, 0), ("widget",), [], False, True, False),
        ("connect.facebook.net www.facebook.com", (2026, 11, 30, 10, 0), ("platform", "widget"),
         ["contact_time", "pupil_area"], True, False, False),
        ("i0.wp.com stats.wp.com", (2026, 11, 30, 10, 0), ("cdn", "tracker"), [], False, True, False),
        ("i.ytimg.com www.youtube.com", (2026, 11, 30, 10, 0), ("cdn", "platform"),
         ["contact_time", "pupil_area"], True, False, True),
        # Wednesday short day, staff CPD after lessons: no pupils, no flag
        ("www.facebook.com", (2026, 11, 25, 14, 30), ("platform",), [], False, False, False),
        # after lessons on a full day: no pupils by default
        ("www.facebook.com", (2026, 11, 30, 15, 30), ("platform",), [], False, False, False),
    ],
)
def test_roles_flags_and_teaching_survive_the_store(tmp_path, example_config, hosts, when, roles, flags,
                                                    flagged, embed_only, teaching):
    with open_store(tmp_path / "s.db") as store:
        store.write(_tagged(example_config, hosts, when), now=T0)
        sessions = list(store.sessions())
        assert store.verify().ok
        line = json.loads(next(iter(store.ecs_json())))
    assert len(sessions) == 1
    s = sessions[0]
    assert (s.roles, sorted(f.name for f in s.flags), s.flagged) == (roles, flags, flagged)
    assert (s.embed_only, s.probably_teaching) == (embed_only, teaching)
    assert (line["social.roles"], line["social.probably_teaching"]) == (list(roles), teaching)


@pytest.mark.parametrize(
    ("host", "record_special", "stored"),
    [
        ("www.tinder.com", [], False),
        ("truthsocial.com", [], False),
        ("www.tinder.com", [{"category": "dating", "reason": "DPIA-2026-03: safeguarding duty"}], True),
        ("truthsocial.com", [{"category": "dating", "reason": "DPIA-2026-03"}], False),
        ("www.instagram.com", [], True),
    ],
)
def test_special_categories_are_never_stored_unless_recorded(tmp_path, example_data, write_config, host,
                                                             record_special, stored):
    from monitor.config.loader import load_config

    example_data["policy"]["record_special"] = record_special
    config = load_config(write_config(example_data))
    with open_store(tmp_path / "s.db") as store:
        store.write([e for e in _tagged(config, host, (2026, 11, 30, 12, 30)) if e.recordable], now=T0)
        assert [s.platform for s in store.sessions()] == ([host.split(".")[-2]] if stored else [])
