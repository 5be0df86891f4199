"""A person's identity forms, and the keyed record of whom each export log entry included."""

from __future__ import annotations

import stat

import pytest

from monitor.exports.log import ExportLogError, LogEntry
from monitor.exports.subjects import (
    IdentityForms,
    Included,
    disclosures,
    key_path_for,
    log_key,
    normal_form,
    subject_tokens,
)
from monitor.store.sessions import Session


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bjones", "bjones"),
        ("TRUST\\bjones", "bjones"),
        ("bjones@trust.org", "bjones"),
        ("BJONES", "bjones"),
        ("  Trust\\BJones  ", "bjones"),
        ("a\\b\\bjones", "bjones"),  # the last domain part goes
        ("S2002", "s2002"),
        ("a.patel@x@y", "a.patel"),
        ("", ""),
    ],
)
def test_normal_form(name, expected):
    assert normal_form(name) == expected


def session(owner: str | None, device: str = "ASH-LT-0002") -> Session:
    return Session(id=1, device=device, platform="youtube", school="ash-secondary", zone="classrooms",
                   period="P1", local_date="2026-11-02", first_seen=0.0, last_seen=1.0, owner=owner)


@pytest.mark.parametrize(
    ("owners", "forms", "matches"),
    [
        (["TRUST\\bjones"], IdentityForms("bjones", names={"bjones"}), True),
        (["BJONES"], IdentityForms("bjones", names={"bjones"}), True),
        (["S2002"], IdentityForms("bjones", names={"bjones"}), False),
        # their device, a session naming no one; a device is not the person who had it before
        ([None], IdentityForms("S2009", devices=["ASH-LT-0002"], names={"s2009"}), True),
        ([None], IdentityForms("S2009", devices=["ASH-LT-0003"], names={"s2009"}), False),
        (["S2003"], IdentityForms("S2009", devices=["ASH-LT-0002"], names={"s2009"}), False),
    ],
)
def test_tokens_match_the_person_and_their_unnamed_devices(tmp_path, owners, forms, matches):
    log = tmp_path / "log.jsonl"
    included = Included()
    for owner in owners:
        included.add(session(owner))
    held = included.tokens(log)
    assert bool(subject_tokens(log, forms).intersection(held)) is matches
    assert all(len(t) == 32 and (o is None or o not in t) for t in held for o in owners)


def test_tokens_depend_on_the_log_key(tmp_path):
    one, two = Included(), Included()
    one.add(session("S2002"))
    two.add(session("S2002"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert one.tokens(tmp_path / "a" / "log") != two.tokens(tmp_path / "b" / "log")
    assert one.tokens(tmp_path / "a" / "log") == one.tokens(tmp_path / "a" / "log")


def test_log_key_is_private_and_made_once(tmp_path):
    log = tmp_path / "var" / "log.jsonl"
    key = log_key(log)
    path = key_path_for(log)
    assert len(key) == 32 and log_key(log) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("content", [b"", b"short", b"x" * 33])
def test_a_damaged_key_is_one_line(tmp_path, content):
    log = tmp_path / "log.jsonl"
    key_path_for(log).write_bytes(content)
    with pytest.raises(ExportLogError, match="not an export log key"):
        log_key(log)


@pytest.mark.parametrize(
    ("kind", "included", "found", "unrecorded"),
    [
        ("export", True, 1, 0),
        ("listing", True, 1, 0),
        ("investigation", True, 1, 0),
        ("sar", True, 0, 0),  # a SAR gives the person their own data: not a recipient
        ("export", False, 0, 1),  # an entry from before entries recorded whom they held
    ],
)
def test_disclosures(tmp_path, kind, included, found, unrecorded):
    log = tmp_path / "log.jsonl"
    held = Included()
    held.add(session("S2002"))
    extra = {"included": held.tokens(log)} if included else {}
    entry = LogEntry(kind=kind, at="2026-11-30T10:00:00Z", user="head", out="/x", manifest_sha256="",
                     sessions=1, extra=extra)
    result = disclosures(log, IdentityForms("S2002", names={"s2002"}), [entry])
    assert (len(result.entries), result.unrecorded) == (found, unrecorded)
