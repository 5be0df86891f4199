"""The hash chain over session records: pure functions, no database.

Every record's hash covers its header, ``{id, session_id, version, recorded_at,
body_sha256, prev}``, in canonical JSON; ``prev`` is the hash of the record
before it (`GENESIS` for the first record ever written, or the checkpoint's
hash once retention has compacted a prefix away). A store feeds its records
here in id order; the first link that does not hold is named as changed,
removed or inserted, in words an investigator can act on.

A purge is itself a link: a record of session 0 whose body names the cutoff and
the sessions it removed (`purge_body`). A tombstone (a record whose body is gone)
is valid only when a later purge record names its session.

The export log (`monitor.exports.log`) chains its entries from the same `GENESIS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

GENESIS = "0" * 64  # the `prev` of the first link of any chain: the store's records, the export log
PURGE_SESSION = 0  # the session id of a purge record (sessions are numbered from 1)

# (id, session_id, version, recorded_at, body, body_sha256, prev_hash, hash), as the store holds it
Record = tuple[int, int, int, float, str | None, str, str, str]
# asked about a record whose hash is wrong: is it a version its session really had?
KnownRecord = Callable[[int, int, int], bool]


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last link of the chain: what an export manifest records to anchor the store."""

    record_id: int
    hash: str


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first fault found: its kind (changed | removed | inserted), the record, one line in words."""

    kind: str
    record_id: int | None
    problem: str
    session_id: int | None = None


def record_hash(
    record_id: int, session_id: int, version: int, recorded_at: float, body_sha256: str, prev: str
) -> str:
    """SHA-256 of the record's header in canonical JSON (sorted keys, compact).

    Written out by hand because it runs for every record: it is byte for byte
    `canonical_json({"body_sha256", "id", "prev", "recorded_at", "session_id", "version"})`
    (a test holds it to that), so another implementation can recompute it with any JSON library.
    """
    header = (
        f'{{"body_sha256":"{body_sha256}","id":{int(record_id)},"prev":"{prev}",'
        f'"recorded_at":{float(recorded_at)!r},"session_id":{int(session_id)},"version":{int(version)}}}'
    )
    return hashlib.sha256(header.encode()).hexdigest()


def body_digest(body: str) -> str:
    """SHA-256 of a record's body (a session's canonical JSON), as the record stores it."""
    return hashlib.sha256(body.encode()).hexdigest()


def id_ranges(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as [first, last] runs."""
    ranges: list[list[int]] = []
    for n in sorted(set(ids)):
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ranges


def purge_body(cutoff: float, session_ids: Iterable[int], entries: Iterable[int] = (),
               held: dict[str, int] | None = None) -> str:
    """A purge record's body: the cutoff, and the removed sessions as ranges of ids (canonical JSON).

    `entries` are records of session 0 blanked with them (their reviews, coverage intervals), and
    `held` how many sessions past the cutoff each legal hold's case kept: each named only when
    there are some, so a purge without any is written as before."""
    purge: dict[str, object] = {"cutoff": float(cutoff), "sessions": id_ranges(session_ids)}
    if named := id_ranges(entries):
        purge["entries"] = named
    if held:
        purge["held"] = dict(held)
    return json.dumps({"purge": purge}, sort_keys=True, separators=(",", ":"))


def purged_ranges(body: str) -> list[tuple[int, int]]:
    """The session id ranges a purge record's body names (empty when the body is not a purge)."""
    try:
        ranges = json.loads(body)["purge"]["sessions"]
        return [(int(a), int(b)) for a, b in ranges]
    except (ValueError, KeyError, TypeError):
        return []


def purged_entries(body: str) -> list[tuple[int, int]]:
    """The record id ranges of session-0 entries (reviews) a purge record's body names."""
    try:
        ranges = json.loads(body)["purge"].get("entries", [])
        return [(int(a), int(b)) for a, b in ranges]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def entry_kind(body: str) -> str:
    """What a session-0 record holds, in words ("the review"), for a message about it."""
    try:
        kind = next(iter(json.loads(body)))
        return f"the {kind}" if isinstance(kind, str) and kind.isidentifier() else "the chain entry"
    except (ValueError, TypeError, StopIteration):
        return "the chain entry"


def walk(
    records: Iterable[Record], checkpoint: ChainHead | None, known: KnownRecord
) -> tuple[int, ChainBreak | None]:
    """Check every link of `records` (in id order) from the checkpoint, or from `GENESIS`.

    Returns how many records held, and the first break (None when the chain is whole).
    A record whose own hash is wrong is *changed* if `known` says its session had that
    version, else *inserted*; a gap in the ids is a *removal*."""
    expected = checkpoint.record_id + 1 if checkpoint else 1
    prev = checkpoint.hash if checkpoint else GENESIS
    checked = 0
    stream: Iterator[Record] = iter(records)
    current = next(stream, None)
    if current is not None and checkpoint is not None and current[0] <= checkpoint.record_id:
        return 0, ChainBreak("inserted", current[0], f"record {current[0]} inserted before the checkpoint "
                             f"at record {checkpoint.record_id}")
    while current is not None:
        following = next(stream, None)
        rid, sid, version, recorded_at, body, digest, link, stored = current
        valid = record_hash(rid, sid, version, recorded_at, digest, link) == stored
        if rid != expected:
            if not valid or link == prev:
                return checked, ChainBreak("inserted", rid, f"record {rid} inserted (expected record "
                                           f"{expected} next)")
            gone = f"record {expected}" if rid == expected + 1 else f"records {expected}-{rid - 1}"
            return checked, ChainBreak("removed", expected, f"{gone} removed (record {rid} follows "
                                       f"{expected - 1})")
        if link != prev:
            if not valid:
                return checked, ChainBreak("inserted", rid, f"record {rid} inserted (it does not link to "
                                           f"record {rid - 1} and its own hash is wrong)")
            if following is not None and following[6] == prev:
                return checked, ChainBreak("inserted", rid, f"record {rid} inserted (record {rid + 1} "
                                           "links past it)")
            if checkpoint is not None and rid == checkpoint.record_id + 1:
                return checked, ChainBreak("changed", rid, f"record {rid} changed or the checkpoint at "
                                           f"record {checkpoint.record_id} was altered (the link does not "
                                           "match)")
            return checked, ChainBreak("changed", rid - 1, f"record {rid - 1} changed (record {rid} no "
                                       "longer links to it)")
        if not valid:
            if not known(rid, sid, version):
                return checked, ChainBreak("inserted", rid, f"record {rid} inserted (no session version it "
                                           "could belong to, and its hash is wrong)")
            return checked, ChainBreak("changed", rid, f"record {rid} changed (its hash does not match its "
                                       "fields)")
        if body is not None and body_digest(body) != digest:
            what = f"session {sid} version {version}" if sid != PURGE_SESSION else entry_kind(body)
            return checked, ChainBreak("changed", rid, f"record {rid} changed (content of {what} does not "
                                       "match its digest)")
        checked += 1
        prev = stored
        expected = rid + 1
        current = following
    return checked, None


def follow(records: Iterable[Record], start: ChainHead) -> tuple[str, int | None]:
    """Follow the links of `records` (in id order) from `start`, as retention does before compacting.

    Returns the hash of the last record that held, and the id of the first that did not
    (None when every link holds): a broken prefix is never compacted away."""
    expected, prev = start.record_id + 1, start.hash
    for rid, sid, version, recorded_at, _body, digest, link, stored in records:
        if rid != expected or link != prev or record_hash(rid, sid, version, recorded_at, digest,
                                                          link) != stored:
            return prev, rid
        prev, expected = stored, rid + 1
    return prev, None


__all__ = ["GENESIS", "PURGE_SESSION", "ChainBreak", "ChainHead", "Record", "body_digest", "follow",
           "id_ranges", "purge_body", "purged_entries", "purged_ranges", "record_hash", "walk"]
