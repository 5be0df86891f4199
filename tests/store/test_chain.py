"""The hash chain, with no database: each kind of tampering is named as changed, removed or inserted."""

from __future__ import annotations

import hashlib
import json

import pytest

from monitor.store.chain import (
    GENESIS,
    ChainHead,
    body_digest,
    entry_kind,
    follow,
    purge_body,
    purged_entries,
    record_hash,
    walk,
)
from monitor.store.sessions import canonical_json


def chain(n: int, start: ChainHead | None = None) -> list[tuple]:
    """n well-formed records after `start` (or from GENESIS), one session version each."""
    out = []
    rid, prev = (start.record_id, start.hash) if start else (0, GENESIS)
    for _ in range(n):
        rid += 1
        body = canonical_json({"id": rid, "version": 1})
        digest = body_digest(body)
        h = record_hash(rid, rid, 1, 1_790_000_000.0 + rid, digest, prev)
        out.append((rid, rid, 1, 1_790_000_000.0 + rid, body, digest, prev, h))
        prev = h
    return out


def rehash(record: tuple, **changes) -> tuple:
    """The record with fields changed and its own hash recomputed, as a careful forger would."""
    rid, sid, version, at, body, digest, prev, _ = record
    fields = {"rid": rid, "sid": sid, "version": version, "at": at, "body": body, "digest": digest,
              "prev": prev, **changes}
    h = record_hash(fields["rid"], fields["sid"], fields["version"], fields["at"], fields["digest"],
                    fields["prev"])
    return (fields["rid"], fields["sid"], fields["version"], fields["at"], fields["body"], fields["digest"],
            fields["prev"], h)


def known(_rid: int, _sid: int, _version: int) -> bool:
    return True


def unknown(_rid: int, _sid: int, _version: int) -> bool:
    return False


def test_record_hash_is_canonical_json_of_the_header():
    """The hand-written header is byte for byte the canonical JSON another implementation would build."""
    for recorded_at in (1790000000.123456, 1790000000.0, 0.1 + 0.2):
        header = {"body_sha256": "ab" * 32, "id": 7, "prev": "cd" * 32, "recorded_at": recorded_at,
                  "session_id": 3, "version": 2}
        expected = hashlib.sha256(canonical_json(header).encode()).hexdigest()
        assert record_hash(7, 3, 2, recorded_at, "ab" * 32, "cd" * 32) == expected


@pytest.mark.parametrize("body", ["", "{}", '{"hostnames":["ünïcode"]}'])
def test_body_digest_is_sha256_of_utf8(body):
    assert body_digest(body) == hashlib.sha256(body.encode("utf-8")).hexdigest()


def test_genesis_is_64_zeros():
    assert GENESIS == "0" * 64


def tampered(case: str) -> tuple[list[tuple], ChainHead | None]:
    records = chain(6)
    cp = None
    if case == "intact":
        pass
    elif case == "empty":
        records = []
    elif case == "hash field edited":
        records[2] = (*records[2][:7], "f" * 64)
    elif case == "timestamp edited":
        records[2] = (*records[2][:3], records[2][3] + 60, *records[2][4:])
    elif case == "body edited":
        records[2] = (*records[2][:4], records[2][4].replace("1", "2"), *records[2][5:])
    elif case == "one removed":
        del records[2]
    elif case == "two removed":
        del records[2:4]
    elif case == "rehashed after a changed predecessor":
        records[2] = rehash(records[2], prev="e" * 64)
    elif case == "inserted with a wrong hash":
        records.insert(3, (*records[2][:7], "0" * 64))
    elif case == "from a checkpoint":
        records, cp = chain(3, ChainHead(10, "c" * 64)), ChainHead(10, "c" * 64)
    elif case == "checkpoint altered":
        records, cp = chain(3, ChainHead(10, "c" * 64)), ChainHead(10, "d" * 64)
    elif case == "inserted before the checkpoint":
        records, cp = chain(3), ChainHead(2, "c" * 64)
    return records, cp


@pytest.mark.parametrize(
    ("case", "checker", "checked", "kind", "record_id", "words"),
    [
        ("intact", known, 6, None, None, None),
        ("empty", known, 0, None, None, None),
        ("from a checkpoint", known, 3, None, None, None),
        ("hash field edited", known, 2, "changed", 3, "record 3 changed (its hash does not match"),
        ("hash field edited", unknown, 2, "inserted", 3, "no session version it could belong to"),
        ("timestamp edited", known, 2, "changed", 3, "record 3 changed"),
        ("body edited", known, 2, "changed", 3, "content of session 3 version 1 does not match"),
        ("one removed", known, 2, "removed", 3, "record 3 removed (record 4 follows 2)"),
        ("two removed", known, 2, "removed", 3, "records 3-4 removed"),
        ("rehashed after a changed predecessor", known, 2, "changed", 2, "record 2 changed (record 3 no"),
        ("inserted with a wrong hash", known, 3, "inserted", 3, "record 3 inserted (expected record 4"),
        ("checkpoint altered", known, 0, "changed", 11, "checkpoint at record 10 was altered"),
        ("inserted before the checkpoint", known, 0, "inserted", 1, "inserted before the checkpoint"),
    ],
)
def test_walk_names_the_first_fault(case, checker, checked, kind, record_id, words):
    records, cp = tampered(case)
    count, fault = walk(iter(records), cp, checker)
    assert count == checked
    if kind is None:
        assert fault is None
    else:
        assert fault is not None and (fault.kind, fault.record_id) == (kind, record_id)
        assert words in fault.problem


@pytest.mark.parametrize(
    ("case", "broken_at"),
    [("intact", None), ("hash field edited", 3), ("one removed", 4),
     ("rehashed after a changed predecessor", 3)],
)
def test_follow_stops_at_the_first_break(case, broken_at):
    records, _ = tampered(case)
    last, at = follow(records, ChainHead(0, GENESIS))
    assert at == broken_at
    held = [r for r in records if broken_at is None or r[0] < broken_at]
    assert last == (held[-1][7] if held else GENESIS)


@pytest.mark.parametrize(
    ("sessions", "entries", "body"),
    [
        ([3, 1, 2], (), '{"purge":{"cutoff":5.0,"sessions":[[1,3]]}}'),  # as before reviews existed
        ([1, 3], [9], '{"purge":{"cutoff":5.0,"entries":[[9,9]],"sessions":[[1,1],[3,3]]}}'),
        ([1], [9, 10, 12], '{"purge":{"cutoff":5.0,"entries":[[9,10],[12,12]],"sessions":[[1,1]]}}'),
    ],
)
def test_purge_body_names_the_entries_blanked_with_the_sessions(sessions, entries, body):
    assert purge_body(5, sessions, entries) == body
    assert purged_entries(body) == [tuple(r) for r in json.loads(body)["purge"].get("entries", [])]


@pytest.mark.parametrize(
    ("body", "entries"),
    [("not json", []), ('{"review":{}}', []), ('{"purge":[]}', []),
     ('{"purge":{"entries":[[2,4]]}}', [(2, 4)])],
)
def test_purged_entries_of_any_body(body, entries):
    assert purged_entries(body) == entries


@pytest.mark.parametrize(
    ("body", "words"),
    [('{"review":{"outcome":"no action"}}', "the review"), ('{"purge":{}}', "the purge"),
     ("garbage", "the chain entry"), ('{"<script>":1}', "the chain entry"), ("{}", "the chain entry")],
)
def test_an_edited_session_0_entry_is_named_by_its_kind(body, words):
    assert entry_kind(body) == words
    records = chain(2)
    rid, _sid, version, at, _body, _digest, prev, _ = records[1]
    digest = body_digest('{"review":{}}')
    records[1] = (rid, 0, version, at, body, digest, prev, record_hash(rid, 0, version, at, digest, prev))
    _checked, fault = walk(records, None, lambda *_: True)
    assert fault is not None and f"content of {words} does not match" in fault.problem
