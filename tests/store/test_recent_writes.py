"""The writer's memory of what it committed: which segments may wait, and for how long."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.observation import Exemption
from monitor.store.recent_writes import RecentWrites, written_key
from monitor.store.sessions import Session
from tests.store_helpers import PUPILS

T0 = 1_780_000_000.0
INTERVAL, GAP = 30.0, 300.0
PROFESSIONAL = Exemption("professional_use", "named staff account", "4.1")


def seg(**changes) -> Session:
    base = Session(device="OAK-0001", platform="facebook", school="oak-primary", zone="classrooms",
                   period="P1", local_date="2026-11-30", first_seen=T0, last_seen=T0 + 10,
                   signals=("tls",), roles=("platform",))
    return dataclasses.replace(base, **changes)


def committed(*segments: Session, at: float = 100.0) -> RecentWrites:
    recent = RecentWrites(INTERVAL, GAP)
    recent.committed(list(segments), at)
    return recent


@pytest.mark.parametrize(("then", "now", "waits"), [
    (seg(first_seen=T0 + 20, last_seen=T0 + 40), 110.0, True),  # more of the same, moments later
    (seg(first_seen=T0 + 20, last_seen=T0 + 40), 130.0, False),  # the interval has passed
    (seg(first_seen=T0 + 10 + GAP + 1), 110.0, False),  # after the idle gap: a new session
    (seg(signals=("quic",)), 110.0, False),  # a new signal
    (seg(flags=(PUPILS,)), 110.0, False),  # a new flag
    (seg(exemption=PROFESSIONAL), 110.0, False),  # newly exempt
    (seg(device="OAK-0002"), 110.0, False),  # another device: a new access
    (seg(period=None), 110.0, False),  # another period
    (seg(owner="staff-7"), 110.0, False),  # another owner
    (seg(roles=("embed",)), 110.0, True),  # an embed beside the platform adds nothing
], ids=["same", "interval-passed", "after-idle-gap", "new-signal", "new-flag", "new-exemption",
        "other-device", "other-period", "other-owner", "embed-beside-platform"])
def test_only_more_of_the_same_waits(then: Session, now: float, waits: bool):
    assert committed(seg()).may_wait(then, now) is waits


@pytest.mark.parametrize(("first_roles", "then_roles", "waits"), [
    (("embed",), ("platform",), False),  # the platform itself after its embeds only: material
    (("tracker",), ("platform",), False),
    (("platform",), ("platform",), True),
    (("embed",), ("embed",), True),
])
def test_reaching_the_platform_itself_is_material(first_roles, then_roles, waits):
    assert committed(seg(roles=first_roles)).may_wait(seg(roles=then_roles), 101.0) is waits


def test_what_was_committed_accumulates_within_a_session():
    recent = committed(seg())
    recent.committed([seg(signals=("quic",), flags=(PUPILS,), last_seen=T0 + 50)], 105.0)
    assert recent.may_wait(seg(signals=("quic", "tls"), flags=(PUPILS,), first_seen=T0 + 60), 110.0)


@pytest.mark.parametrize(("held", "due"), [
    ([], float("inf")),
    ([seg()], 100.0 + INTERVAL),  # the interval after its commit
    ([seg(device="OAK-0009")], 120.0),  # never committed: due now
    ([seg(), seg(device="OAK-0009")], 120.0),  # the earliest
])
def test_held_segments_are_due_an_interval_after_their_commit(held, due):
    assert committed(seg()).due_at(held, 120.0) == due


@pytest.mark.parametrize(("now", "left"), [(110.0, 2), (130.0, 1), (140.0, 0)])
def test_entries_older_than_the_interval_are_forgotten(now: float, left: int):
    recent = committed(seg())
    recent.committed([seg(device="OAK-0002")], 110.0)
    recent.forget_old(now)
    assert len(recent) == left


def test_forgetting_runs_at_most_once_per_interval():
    recent = committed(seg())  # at 100
    recent.committed([seg(device="OAK-0002")], 120.0)
    recent.forget_old(131.0)  # the first sweep: the 100 entry goes, the 120 one is 11 s old and stays
    assert len(recent) == 1
    recent.forget_old(155.0)  # the 120 entry is old now, but the last sweep was less than 30 s ago
    assert len(recent) == 1
    recent.forget_old(161.0)
    assert len(recent) == 0


def test_key_is_the_session_the_store_merges_into():
    assert written_key(seg()) == ("OAK-0001", "facebook", "oak-primary", "classrooms", "P1", "2026-11-30", "")
    assert written_key(seg(period=None, owner="s1"))[4:] == ("", "2026-11-30", "s1")
