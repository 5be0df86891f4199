"""A session as a sessions-table row and back: every value survives, the derived columns follow."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.observation import Exemption
from monitor.store.codec import (
    MUTABLE_COLUMNS,
    decode_flags,
    decode_hostnames,
    encode_flags,
    encode_hostnames,
    row_session,
    session_row,
)
from monitor.store.schema import SESSION_COLUMNS
from monitor.store.sessions import Session
from tests.store_helpers import CONTACT, PUPILS, T0

EXEMPT = Exemption("marketing-team", 'posts "for" the school — ünïcode', "4.1")


def session(**changes) -> Session:
    base = Session(device="OAK-0001", platform="facebook", school="oak-primary", zone="classrooms",
                   period="Lesson 1", local_date="2026-09-21", first_seen=T0 + 0.123456, last_seen=T0 + 90,
                   observations=3, signals=("dns", "tls"), hostnames=("www.facebook.com",), flags=(CONTACT,),
                   period_kind="contact", week="A", pupil_area=True, owner="staff-0001", id=3, version=2,
                   record_id=5)
    return dataclasses.replace(base, **changes)


VARIANTS = {
    "ordinary": {},
    "every optional absent": {"owner": None, "week": None, "pupil_area": None, "period": None},
    "not a pupil area": {"pupil_area": False},
    "no signals or hostnames": {"signals": (), "hostnames": ()},
    "hostile hostnames": {"hostnames": ('a,"b"', "ünïcode", "x\\y")},
    "two flags and an exemption": {"flags": (CONTACT, PUPILS), "exemption": EXEMPT},
    "no flags": {"flags": ()},
}


@pytest.mark.parametrize("changes", list(VARIANTS.values()), ids=list(VARIANTS))
def test_row_round_trip(changes):
    s = session(**changes)
    assert row_session(session_row(s)) == s


@pytest.mark.parametrize(
    ("changes", "column", "stored"),
    [
        ({}, "pupil_area", 1),
        ({"pupil_area": False}, "pupil_area", 0),
        ({"pupil_area": None}, "pupil_area", None),
        ({}, "signals", "dns,tls"),
        ({"signals": ()}, "signals", ""),
        ({"hostnames": ("b.example", "ü.example")}, "hostnames", '["b.example","ü.example"]'),
        ({}, "flags", '[{"clause":"4.3","name":"contact_time","reason":"personal social media during '
                      'contact time"}]'),
        ({"flags": ()}, "flags", "[]"),
        ({}, "flagged", 1),
        ({"exemption": EXEMPT}, "flagged", 0),
        ({}, "exemption", None),
        ({"exemption": Exemption("it", "admin")}, "exemption",
         '{"clause":null,"name":"it","reason":"admin"}'),
        ({}, "session_key", "OAK-0001\x1ffacebook\x1foak-primary\x1fclassrooms\x1fLesson 1\x1f2026-09-21"
                            "\x1fstaff-0001"),
    ],
)
def test_columns_hold_canonical_values(changes, column, stored):
    assert session_row(session(**changes))[SESSION_COLUMNS.index(column)] == stored


@pytest.mark.parametrize("column", ["id", "session_key", "device", "platform", "school", "zone", "period",
                                    "period_kind", "local_date"])
def test_key_columns_are_never_updated(column):
    assert column not in MUTABLE_COLUMNS


@pytest.mark.parametrize("column", ["last_seen", "observations", "signals", "hostnames", "flags", "flagged",
                                    "exemption", "version", "record_id"])
def test_what_an_extension_changes_is_updated(column):
    assert column in MUTABLE_COLUMNS


@pytest.mark.parametrize("flags", [(), (CONTACT,), (CONTACT, PUPILS)])
def test_flags_decode_once_per_distinct_text(flags):
    text = encode_flags(flags)
    assert decode_flags(text) == flags and decode_flags(text) is decode_flags(text)


@pytest.mark.parametrize("names", [(), ("a.example",), ('q"uote', "ünï,code")])
def test_hostnames_round_trip(names):
    assert decode_hostnames(encode_hostnames(names)) == names
