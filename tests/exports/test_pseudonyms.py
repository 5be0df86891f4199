"""Aliases: stable within an export, renumbered across exports, never the MAC."""

from __future__ import annotations

import pytest

from monitor.exports.pseudonyms import Pseudonymiser, alias_labeller, identity
from monitor.store.sessions import Session


def session(device: str = "ASH-LT-0002", owner: str | None = "S2002") -> Session:
    return Session(device=device, platform="youtube", school="ash-secondary", zone="classrooms",
                   period="P3", local_date="2026-11-16", first_seen=1.0, last_seen=2.0, owner=owner,
                   device_mac="3c:52:82:20:00:02")


def test_pseudonyms_stable_within_and_different_across():
    devices = [f"ASH-LT-{i:04d}" for i in range(40)]
    maps = []
    for _ in range(4):
        p = Pseudonymiser({"Device": devices})
        first = {d: p.alias("Device", d) for d in devices}
        assert {d: p.alias("Device", d) for d in reversed(devices)} == first  # stable
        assert sorted(first.values()) == [f"Device {i:02d}" for i in range(1, 41)]  # short, one each
        maps.append(first)
    assert len({tuple(m.values()) for m in maps}) == 4  # a new numbering each export


def test_pseudonym_for_value_seen_late_and_none():
    p = Pseudonymiser({"Staff": ["S1", "S2"]}, key=b"k" * 32)
    assert p.alias("Staff", None) is None
    assert p.alias("Staff", "S9") == "Staff 03"
    assert p.alias("Staff", "S9") == "Staff 03"


@pytest.mark.parametrize(
    ("a", "b", "same_device", "same_owner"),
    [
        (("ASH-LT-0002", "S2002"), ("ASH-LT-0002", "S2002"), True, True),
        (("ASH-LT-0002", "S2002"), ("ASH-LT-0003", "S2002"), False, True),
        (("ASH-LT-0002", "S2002"), ("ASH-LT-0002", "S2003"), True, False),
        (("ASH-LT-0002", "S2002"), ("ASH-LT-0009", "S2009"), False, False),  # met late: new numbers
    ],
)
def test_alias_labeller_keeps_people_apart_and_hides_the_mac(a, b, same_device, same_owner):
    labels = alias_labeller(Pseudonymiser({"Device": ["ASH-LT-0002", "ASH-LT-0003"],
                                           "Staff": ["S2002", "S2003"]}))
    (da, ma, oa), (db, mb, ob) = labels(session(*a)), labels(session(*b))
    assert (da == db, oa == ob) == (same_device, same_owner)
    assert ma is None and mb is None
    assert {da[:7], db[:7], oa[:6], ob[:6]} == {"Device ", "Staff "}


def test_alias_labeller_keeps_no_owner_as_none():
    labels = alias_labeller(Pseudonymiser({"Device": ["ASH-LT-0002"]}))
    assert labels(session(owner=None)) == ("Device 01", None, None)


def test_identity_shows_the_session_itself():
    assert identity(session()) == ("ASH-LT-0002", "3c:52:82:20:00:02", "S2002")
