"""The event store's interface: access sessions, durable and tamper-evident, kept only as long as allowed.

Design
------
Two tables hold the data, and one of them is evidence:

* ``records`` is an **append-only log of session versions**. Whenever a
  session is opened or extended, the store appends one record holding the
  session's full content (canonical JSON: sorted keys, compact) and its
  SHA-256, chained to the previous record (`monitor.store.chain`).
  A record is never updated, except by retention, which sets the body to
  NULL (a *tombstone*: the digest and the links stay, so the chain still
  verifies) and later compacts a prefix of tombstones into a **checkpoint**
  (the id and hash of the last removed record, and how many were removed).
  The chain then verifies from the checkpoint.
* ``sessions`` is the mutable current state, one row per session, read by
  `events`, the exports and SAR. It is a projection of the log: every row
  names the record of its latest version, and `verify` checks that the row
  still encodes to exactly that record's digest and that no newer version
  exists. So an edited session row is detected as well as an edited record.

Why a log rather than hashing rows in place: an open session changes as
observations extend it, and a chain over mutable rows would have to be
rewritten on every extension, which is exactly what a chain must forbid.

Concurrency: several processes (the sensor, the proxy addon) write at once.
Each write is one transaction holding the store's write lock, inside which the
writer reads the chain head, looks up the open session row for each key (so
observations from another process merge into the same session) and appends.
Readers take a `snapshot()`: one consistent view while writers commit.

Known limits: a hash chain without a secret proves that records were not
changed *by someone who did not recompute the hashes*. Signed chain heads
(`monitor.store.signing`) say which gateway wrote them, and a copy of one held
off the box (a journal line, an export manifest, the central store) anchors the
store against truncation and a full rewrite up to that head (`verify --against`).
A late observation that falls between two sessions already stored extends the
later one rather than joining them (joining would delete an evidence row).
Tombstones keep the SHA-256 of purged content until they are compacted into a
checkpoint.

Portability: the schema (`monitor.store.schema`) is plain SQL, and only
`SQLiteSessionStore` knows about pragmas and file headers, so a PostgreSQL
class can implement `SessionStore` later.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from monitor.errors import UserError
from monitor.observation import AccessEvent
from monitor.store.chain import ChainHead, Record
from monitor.store.filter import EVERY_SESSION, SessionFilter
from monitor.store.holds import Hold
from monitor.store.sessions import Session, SessionMerger

if TYPE_CHECKING:  # signing pulls in cryptography and structlog: readers of the interface need neither
    from monitor.store.signing import SignedHead

T = TypeVar("T")


class StoreError(UserError):
    """The store cannot be opened or used: a message naming the file, never a traceback."""


@dataclass(slots=True)
class VerifyResult:
    ok: bool
    records: int  # records whose links were checked
    sessions: int  # session rows checked against the log
    head: ChainHead
    checkpoint: int | None = None  # id of the last record compacted away by retention
    kind: str | None = None  # changed | removed | inserted
    record_id: int | None = None  # the first record at fault
    session_id: int | None = None  # or the first session row at fault
    problem: str | None = None  # one line, in words

    def summary(self) -> str:
        if self.ok:
            base = f"chain ok: {self.records} records, {self.sessions} sessions, head {self.head.record_id}"
            if self.checkpoint is not None:
                base += f", verified from checkpoint at record {self.checkpoint}"
            return f"{base} ({self.head.hash[:16]})"
        return f"chain broken: {self.problem}"


@dataclass(slots=True)
class PurgeResult:
    cutoff: float
    sessions_removed: int
    records_removed: int  # tombstones compacted into the checkpoint
    checkpoint: ChainHead | None  # the checkpoint this purge wrote, if any
    held: dict[str, int] = field(default_factory=dict)  # case -> sessions past the cutoff a legal hold kept
    reclaimed_pages: int = 0  # free pages given back to the file system after the purge


@dataclass(slots=True)
class WriteResult:
    segments: int  # merged segments handed to the store
    sessions_written: int  # session versions appended (new or extended sessions)


class SessionReader(abc.ABC):
    """What listings, exports and SAR read. Inside `SessionStore.snapshot()` every answer comes from
    the same moment, so a manifest's chain head anchors exactly the rows exported beside it."""

    @abc.abstractmethod
    def sessions(self, where: SessionFilter = EVERY_SESSION) -> Iterator[Session]:
        """Sessions whose first sighting is in [since, until), oldest first, filtered."""

    def ecs_json(self, where: SessionFilter = EVERY_SESSION) -> Iterator[str]:
        """`sessions(where)` as JSON lines, each parsing to `Session.to_ecs()`.

        For listings and exports of many sessions; a store may build the lines natively."""
        for session in self.sessions(where):
            yield session.to_json()

    @abc.abstractmethod
    def count(self, where: SessionFilter = EVERY_SESSION) -> int:
        """How many sessions `sessions(where)` would yield."""

    def devices_and_owners(self, where: SessionFilter = EVERY_SESSION) -> tuple[set[str], set[str]]:
        """The devices and owners that the matching sessions name (an export numbers its aliases first)."""
        devices: set[str] = set()
        owners: set[str] = set()
        for s in self.sessions(where):
            devices.add(s.device)
            if s.owner:
                owners.add(s.owner)
        return devices, owners

    @abc.abstractmethod
    def session(self, session_id: int) -> Session | None: ...

    def reviews(self) -> list[Any]:
        """The live reviews in the chain, oldest first (`monitor.store.reviews.Review`)."""
        return []

    def ledger(self, since: float, until: float) -> Any:
        """The coverage ledger over [since, until) (`monitor.store.coverage.LedgerView`); None: none kept."""
        return None

    def evidence(self, where: SessionFilter = EVERY_SESSION) -> Iterator[Record]:
        """The chain record of each matching session's latest version (an investigation's proof)."""
        raise StoreError(f"{type(self).__name__} cannot give the chain records of its sessions")

    @abc.abstractmethod
    def chain_head(self) -> ChainHead: ...


class SessionStore(SessionReader):
    """The store's whole interface: what the writer, the daemon, the exports and SAR call.

    One object per thread (connections are not shared across threads).
    """

    idle_gap: float

    # --- writing --------------------------------------------------------------------------

    @abc.abstractmethod
    def write_sessions(self, segments: Sequence[Session], now: float | None = None) -> int:
        """Merge segments into open sessions and append their new versions; one transaction.

        Returns the number of session versions appended. Raises on failure with
        nothing written, so the caller can retry the same segments. A segment
        (passed in with `id` None) that opened a new session row comes back with
        its `id` set; one merged into a session already stored keeps `id` None:
        the writer counts accesses by that (monitor.store.writer)."""

    def write(self, events: Iterable[AccessEvent], now: float | None = None) -> WriteResult:
        """Merge events in memory, then write them in one transaction. Non-recordable events are dropped."""
        merger = SessionMerger(self.idle_gap)
        for event in events:
            merger.add(event)
        segments = merger.drain()
        return WriteResult(len(segments), self.write_sessions(segments, now=now))

    # --- reading --------------------------------------------------------------------------

    @abc.abstractmethod
    def snapshot(self) -> contextlib.AbstractContextManager[SessionReader]:
        """A consistent read view for the `with` block, while writers carry on; nested use is one view."""

    @abc.abstractmethod
    def verify(self) -> VerifyResult: ...

    # --- signed chain heads (monitor.store.signing, monitor.store.anchors) -----------------

    def sign_head(self, key: Any, reason: str, head: ChainHead | None = None) -> SignedHead:
        """Sign `head` (default: the chain's head) after the last signed head, keep it, log it."""
        raise StoreError(f"{type(self).__name__} cannot sign its chain head")

    def check_heads(self, heads: Iterable[SignedHead], key: Any) -> tuple[int, Any]:
        """How many of `heads` hold under `key` and are still on the chain; the first that does not."""
        raise StoreError(f"{type(self).__name__} cannot check signed heads")

    # --- legal holds (monitor.store.holds) ------------------------------------------------

    def holds(self) -> list[Hold]:
        """Every hold whose record is still in the chain, open or released."""
        raise StoreError(f"{type(self).__name__} cannot keep legal holds")

    def in_transaction(self, change: Callable[[Any, ChainHead, float], T]) -> T:
        """`change(connection, checkpoint, now)` inside one write transaction (placing a hold)."""
        raise StoreError(f"{type(self).__name__} cannot keep legal holds")

    # --- retention ------------------------------------------------------------------------

    @abc.abstractmethod
    def purge(self, retention_days: int, now: float | None = None) -> PurgeResult: ...

    @abc.abstractmethod
    def purge_due(self, now: float | None = None) -> bool:
        """Whether a day has passed since the last purge (the daemon asks this hourly)."""

    def relieve(self) -> None:  # optional: a server database has nothing to give back
        """After a full disk: give back what the store can (SQLite: checkpoint and truncate the WAL)."""

    def damage_found(self) -> str | None:  # optional: a server database checks its own pages
        """What is wrong with the store's file, page by page, or None (the writer asks once at start)."""
        return None

    def mark_damaged(self, detail: str) -> None:  # optional: a server database is not a file to keep
        """The file was found damaged: from now on leave it exactly as it is, closing included."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["PurgeResult", "SessionReader", "SessionStore", "StoreError", "VerifyResult", "WriteResult"]
