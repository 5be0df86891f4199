"""The in-memory session table that counts accesses the store does not: once per device, platform and gap."""

from __future__ import annotations

import pytest

from monitor.observation import AccessEvent, Observation
from monitor.tagging.counting import AccessCounter, counting_key

GAP = 300.0
A = ("aa:bb", "facebook", "ash", "classrooms", "P2", "2026-11-30", "")
B = ("aa:bb", "tiktok", "ash", "classrooms", "P2", "2026-11-30", "")
C = ("cc:dd", "facebook", "ash", "classrooms", "P2", "2026-11-30", "")


@pytest.mark.parametrize(
    ("events", "new"),
    [
        ([(A, 0)], [True]),
        ([(A, 0), (A, 0.02)], [True, False]),  # sensor and proxy, milliseconds apart
        ([(A, 0), (A, GAP)], [True, False]),  # exactly the gap: still the same access
        ([(A, 0), (A, GAP + 1)], [True, True]),  # after the idle gap: a second access
        ([(A, 0), (A, 200), (A, 400), (A, 600)], [True, False, False, False]),  # gap from the last sighting
        ([(A, 100), (A, 20)], [True, False]),  # out of order within the gap (the proxy reports later)
        ([(A, 1000), (A, 10)], [True, True]),  # an older, separate session arriving late
        ([(A, 0), (B, 1)], [True, True]),  # another platform
        ([(A, 0), (C, 1)], [True, True]),  # another device
        ([(A, 0), (B, 1), (A, 2), (B, 3)], [True, True, False, False]),
    ],
)
def test_is_new(events, new):
    counter = AccessCounter(GAP)
    assert [counter.is_new(key, ts) for key, ts in events] == new


@pytest.mark.parametrize(
    ("capacity", "events", "new", "evictions"),
    [
        (2, [(A, 0), (B, 1), (C, 2), (A, 3)], [True, True, True, True], 2),  # A evicted, then B by A again
        (2, [(A, 0), (B, 1), (A, 2), (C, 3), (A, 4)], [True, True, False, True, False], 1),  # B, not A
        (1, [(A, 0), (A, 1)], [True, False], 0),
    ],
)
def test_a_full_table_evicts_the_least_recently_touched_and_counts_it(capacity, events, new, evictions):
    evicted: list[int] = []
    counter = AccessCounter(GAP, capacity, on_evict=lambda: evicted.append(1))
    assert [counter.is_new(key, ts) for key, ts in events] == new
    assert (len(evicted), len(counter) <= capacity) == (evictions, True)


def test_idle_entries_are_dropped_as_time_moves_on():
    counter = AccessCounter(GAP)
    for i in range(100):
        counter.is_new((f"dev{i}", "facebook"), float(i))
    counter.is_new(("late", "facebook"), 100 + GAP + 50)  # everything before t=150 has been idle too long
    assert len(counter) == 1


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_must_be_positive(capacity):
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        AccessCounter(GAP, capacity)


def event(**fields) -> AccessEvent:
    o = Observation(1.0, "10.0.0.9", 5, "198.51.100.7", 443, "tcp", "tls", "www.facebook.com",
                    client_mac=fields.pop("client_mac", None))
    return AccessEvent(o, platform="facebook", school="ash", zone="classrooms", period="P2",
                       local_time="2026-11-30T10:00:00+00:00", **fields)


@pytest.mark.parametrize(
    ("fields", "device"),
    [
        ({"asset_tag": "ASH-1", "device_mac": "aa:bb"}, "ASH-1"),  # the store's device: asset tag first
        ({"device_mac": "aa:bb"}, "aa:bb"),
        ({"client_mac": "ee:ff"}, "ee:ff"),
        ({}, "10.0.0.9"),  # a device the trust does not own: its address, in memory only
    ],
)
def test_counting_key_names_the_device_as_the_store_does(fields, device):
    assert counting_key(event(**fields)) == (device, "facebook", "ash", "classrooms", "P2", "2026-11-30", "")


def test_counting_key_keeps_owners_apart():
    """Two people signed in on one shared PC are two accesses, as they are two sessions in the store."""
    assert counting_key(event(owner="S1")) != counting_key(event(owner="S2"))
