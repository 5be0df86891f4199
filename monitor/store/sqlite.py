"""The event store: access sessions, durable and tamper-evident, kept only as long as allowed.

Design
------
Two tables hold the data, and one of them is evidence:

* ``records`` is an **append-only log of session versions**. Whenever a
  session is opened or extended, the store appends one record holding the
  session's full content (canonical JSON: sorted keys, compact) and its
  SHA-256, chained to the previous record:
  ``hash = sha256(canonical({id, session_id, version, recorded_at, body_sha256, prev}))``.
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
Each write is one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock, with a
busy timeout), inside which the writer reads the chain head, looks up the open
session row for each key (so observations from another process merge into the
same session) and appends. WAL mode lets readers work on a snapshot while
writers commit.

Known limits: a hash chain without a secret proves that records were not
changed *by someone who did not recompute the hashes*; the chain head that an
export manifest records (issue 6) anchors the store against a full rewrite
after that point. A late observation that falls between two sessions already
stored extends the later one rather than joining them (joining would delete
an evidence row). Tombstones keep the SHA-256 of purged content until they
are compacted into a checkpoint.

Portability: the SQL is plain (no AUTOINCREMENT, no UPSERT, no JSON
functions); ids are allocated from `store_meta` inside the transaction;
only `SQLiteSessionStore` knows about pragmas and file headers, so a
PostgreSQL class can implement `SessionStore` later.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from monitor.errors import UserError
from monitor.observation import AccessEvent, Exemption, Flag
from monitor.store.sessions import Session, SessionMerger, canonical_json, merge_into, within_gap

log = structlog.get_logger("monitor.store.sqlite")

SCHEMA_VERSION = 1
STORE_FORMAT = "social-monitor-store"
GENESIS = "0" * 64  # the `prev` of the first record ever written
SQLITE_HEADER = b"SQLite format 3\x00"
DAY = 86400.0

# Each migration is a list of portable statements; the key is the version it brings the schema to.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE store_meta (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            session_key TEXT NOT NULL,
            device TEXT NOT NULL,
            device_mac TEXT,
            asset_tag TEXT,
            device_kind TEXT,
            owner TEXT,
            platform TEXT NOT NULL,
            platform_name TEXT,
            category TEXT,
            school TEXT NOT NULL,
            zone TEXT NOT NULL,
            zone_kind TEXT,
            pupil_area INTEGER,
            period TEXT,
            period_kind TEXT NOT NULL,
            week TEXT,
            local_date TEXT NOT NULL,
            first_seen DOUBLE PRECISION NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL,
            observations INTEGER NOT NULL,
            signals TEXT NOT NULL,
            hostnames TEXT NOT NULL,
            flags TEXT NOT NULL,
            -- signals: comma-separated fixed tokens; hostnames, flags, exemption: canonical JSON
            flagged INTEGER NOT NULL,
            exemption TEXT,
            version INTEGER NOT NULL,
            record_id INTEGER NOT NULL
        )""",
        # the open session of a key: merge lookups inside the write transaction
        "CREATE INDEX sessions_open ON sessions (session_key, last_seen)",
        # one school's month (exports, `events --school`), flagged or all
        "CREATE INDEX sessions_school_flagged ON sessions (school, flagged, first_seen)",
        "CREATE INDEX sessions_school ON sessions (school, first_seen)",
        # one device's or one person's history (investigations, subject access requests)
        "CREATE INDEX sessions_device ON sessions (device, first_seen)",
        "CREATE INDEX sessions_owner ON sessions (owner, first_seen)",
        # time ranges across schools, and retention
        "CREATE INDEX sessions_last_seen ON sessions (last_seen)",
        """CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            recorded_at DOUBLE PRECISION NOT NULL,
            body TEXT,
            body_sha256 TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX records_session ON records (session_id, version)",
        """CREATE TABLE checkpoints (
            id INTEGER PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            cutoff DOUBLE PRECISION NOT NULL,
            through_record INTEGER NOT NULL,
            hash TEXT NOT NULL,
            records_removed INTEGER NOT NULL,
            sessions_removed INTEGER NOT NULL
        )""",
    ],
}

SESSION_COLUMNS = (
    "id", "session_key", "device", "device_mac", "asset_tag", "device_kind", "owner", "platform",
    "platform_name", "category", "school", "zone", "zone_kind", "pupil_area", "period", "period_kind",
    "week", "local_date", "first_seen", "last_seen", "observations", "signals", "hostnames", "flags",
    "flagged", "exemption", "version", "record_id",
)
_SELECT_SESSIONS = f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions"
# What an extension can change; the key columns (device, platform, school, zone, period, date) never do,
# and leaving them out of UPDATE spares SQLite the index work on them.
_IMMUTABLE = {"id", "session_key", "device", "platform", "school", "zone", "period", "period_kind",
              "local_date"}
_MUTABLE_COLUMNS = tuple(c for c in SESSION_COLUMNS if c not in _IMMUTABLE)
_MUTABLE_INDEXES = tuple(SESSION_COLUMNS.index(c) for c in _MUTABLE_COLUMNS)


def _iso_sql(column: str) -> str:
    millis = f"(CAST(round({column} * 1000000.0) AS INTEGER) / 1000)"
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', {millis} / 1000.0, 'unixepoch')"


_ECS_JSON_SQL = f"""json_object(
    'event.start', {_iso_sql("first_seen")},
    'event.end', {_iso_sql("last_seen")},
    'event.duration', CAST(round((last_seen - first_seen) * 1000000000.0) AS INTEGER),
    'host.id', device, 'host.mac', device_mac, 'host.type', device_kind, 'user.id', owner,
    'social.session_id', id, 'social.platform', platform, 'social.platform_name', platform_name,
    'social.category', category, 'social.school', school, 'social.zone', zone,
    'social.zone_kind', zone_kind,
    'social.pupil_area', CASE pupil_area WHEN 1 THEN json('true') WHEN 0 THEN json('false') END,
    'social.local_date', local_date, 'social.week', week, 'social.period', period,
    'social.period_kind', period_kind,
    'social.flagged', json(CASE WHEN flagged = 1 THEN 'true' ELSE 'false' END),
    'social.flags', json(flags), 'social.exemption', json(exemption),
    'social.signals', CASE WHEN signals = '' THEN json_array()
                           ELSE json('["' || replace(signals, ',', '","') || '"]') END,
    'social.observations', observations, 'social.hostnames', json(hostnames))"""


class StoreError(UserError):
    """The store cannot be opened or used: a message naming the file, never a traceback."""


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last link of the chain: what an export manifest records to anchor the store."""

    record_id: int
    hash: str


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


@dataclass(slots=True)
class WriteResult:
    segments: int  # merged segments handed to the store
    sessions_written: int  # session versions appended (new or extended sessions)


TimeBound = datetime | float | int | None


def _epoch(value: TimeBound) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a time zone")
        return value.timestamp()
    return float(value)


class SessionStore(abc.ABC):
    """The store's whole interface: what the writer, the daemon, the exports and SAR call.

    One object per thread (connections are not shared across threads).
    """

    idle_gap: float

    # --- writing --------------------------------------------------------------------------

    @abc.abstractmethod
    def write_sessions(self, segments: Sequence[Session], now: float | None = None) -> int:
        """Merge segments into open sessions and append their new versions; one transaction.

        Returns the number of session versions appended. Raises on failure with
        nothing written, so the caller can retry the same segments."""

    def write(self, events: Iterable[AccessEvent], now: float | None = None) -> WriteResult:
        """Merge events in memory, then write them in one transaction. Non-recordable events are dropped."""
        merger = SessionMerger(self.idle_gap)
        for event in events:
            merger.add(event)
        segments = merger.drain()
        return WriteResult(len(segments), self.write_sessions(segments, now=now))

    # --- reading --------------------------------------------------------------------------

    @abc.abstractmethod
    def sessions(
        self,
        *,
        school: str | None = None,
        since: TimeBound = None,
        until: TimeBound = None,
        flagged: bool | None = None,
        device: str | None = None,
        owner: str | None = None,
        platform: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Session]:
        """Sessions whose first sighting is in [since, until), oldest first, filtered."""

    def ecs_json(self, **filters: Any) -> Iterator[str]:
        """`sessions(**filters)` as JSON lines, each parsing to `Session.to_ecs()`.

        For listings and exports of many sessions; a store may build the lines natively."""
        for session in self.sessions(**filters):
            yield session.to_json()

    @abc.abstractmethod
    def count(self, **filters: Any) -> int:
        """How many sessions `sessions(**filters)` would yield."""

    @abc.abstractmethod
    def session(self, session_id: int) -> Session | None: ...

    @abc.abstractmethod
    def chain_head(self) -> ChainHead: ...

    @abc.abstractmethod
    def verify(self) -> VerifyResult: ...

    def _record_known(self, record_id: int, session_id: int, version: int) -> bool:
        """Whether a record is one the store wrote: its session points at it or moved past it."""
        row = self._con.execute(
            "SELECT 1 FROM sessions WHERE id = ? AND (record_id = ? OR version > ?)",
            (session_id, record_id, version),
        ).fetchone()
        if row:
            return True
        later = self._con.execute(
            "SELECT 1 FROM records WHERE session_id = ? AND version > ? AND id > ?",
            (session_id, version, record_id),
        ).fetchone()
        return later is not None

    # --- retention ------------------------------------------------------------------------

    @abc.abstractmethod
    def purge(self, retention_days: int, now: float | None = None) -> PurgeResult: ...

    @abc.abstractmethod
    def purge_due(self, now: float | None = None) -> bool:
        """Whether a day has passed since the last purge (the daemon asks this hourly)."""

    def relieve(self) -> None:  # noqa: B027 (optional hook: a server database has nothing to give back)
        """After a full disk: give back what the store can (SQLite: checkpoint and truncate the WAL)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- encoding --------------------------------------------------------------------------------


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


# Flags and exemptions repeat across millions of rows: encode and parse each distinct value once.
_CACHE_LIMIT = 4096
_flags_json: dict[tuple[Flag, ...], str] = {}
_flags_parsed: dict[str, tuple[Flag, ...]] = {}
_exemption_json: dict[Exemption, str] = {}
_hostnames_parsed: dict[str, tuple[str, ...]] = {}
_hostnames_json: dict[tuple[str, ...], str] = {}


def _encode_flags(flags: tuple[Flag, ...]) -> str:
    text = _flags_json.get(flags)
    if text is None:
        text = canonical_json([f.to_dict() for f in flags])
        if len(_flags_json) < _CACHE_LIMIT:
            _flags_json[flags] = text
    return text


def _decode_flags(text: str) -> tuple[Flag, ...]:
    flags = _flags_parsed.get(text)
    if flags is None:
        flags = tuple(Flag(**f) for f in json.loads(text))
        if len(_flags_parsed) < _CACHE_LIMIT:
            _flags_parsed[text] = flags
    return flags


def _encode_hostnames(names: tuple[str, ...]) -> str:
    text = _hostnames_json.get(names)
    if text is None:
        text = canonical_json(list(names))
        if len(_hostnames_json) < _CACHE_LIMIT:
            _hostnames_json[names] = text
    return text


def _decode_hostnames(text: str) -> tuple[str, ...]:
    """Hostnames are stored as a JSON array: a name seen on the wire may hold any character."""
    names = _hostnames_parsed.get(text)
    if names is None:
        names = tuple(json.loads(text))
        if len(_hostnames_parsed) < _CACHE_LIMIT:
            _hostnames_parsed[text] = names
    return names


def _encode_exemption(exemption: Exemption | None) -> str | None:
    if exemption is None:
        return None
    text = _exemption_json.get(exemption)
    if text is None:
        text = canonical_json(exemption.to_dict())
        if len(_exemption_json) < _CACHE_LIMIT:
            _exemption_json[exemption] = text
    return text


def _session_row(s: Session) -> tuple[Any, ...]:
    return (
        s.id, s.key, s.device, s.device_mac, s.asset_tag, s.device_kind, s.owner, s.platform,
        s.platform_name, s.category, s.school, s.zone, s.zone_kind,
        None if s.pupil_area is None else int(s.pupil_area), s.period, s.period_kind, s.week,
        s.local_date, s.first_seen, s.last_seen, s.observations, ",".join(s.signals),
        _encode_hostnames(s.hostnames), _encode_flags(s.flags), int(s.flagged),
        _encode_exemption(s.exemption),
        s.version, s.record_id,
    )


def _row_session(row: Sequence[Any]) -> Session:
    (sid, _key, device, device_mac, asset_tag, device_kind, owner, platform, platform_name, category,
     school, zone, zone_kind, pupil_area, period, period_kind, week, local_date, first_seen, last_seen,
     observations, signals, hostnames, flags, _flagged, exemption, version, record_id) = row
    ex = json.loads(exemption) if exemption else None
    return Session(
        device=device,
        platform=platform,
        school=school,
        zone=zone,
        period=period,
        local_date=local_date,
        first_seen=first_seen,
        last_seen=last_seen,
        observations=observations,
        signals=tuple(signals.split(",")) if signals else (),
        hostnames=_decode_hostnames(hostnames),
        flags=_decode_flags(flags),
        exemption=Exemption(**ex) if ex else None,
        period_kind=period_kind,
        week=week,
        pupil_area=None if pupil_area is None else bool(pupil_area),
        owner=owner,
        asset_tag=asset_tag,
        device_mac=device_mac,
        device_kind=device_kind,
        platform_name=platform_name,
        category=category,
        zone_kind=zone_kind,
        id=sid,
        version=version,
        record_id=record_id,
    )


# --- SQLite ----------------------------------------------------------------------------------


class SQLiteSessionStore(SessionStore):
    """One SQLite file per gateway: WAL, a busy timeout, synchronous=FULL for evidence."""

    def __init__(
        self,
        path: str | Path,
        *,
        idle_gap: float = 300.0,
        create: bool = True,
        busy_timeout: float = 10.0,
    ):
        self.path = Path(path)
        self.idle_gap = float(idle_gap)
        self._shown = str(self.path)
        exists = self.path.exists()
        if not exists and not create:
            raise StoreError(f"{self._shown}: no such store (nothing has been recorded yet?)")
        if exists:
            self._check_header()
        elif create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = sqlite3.connect(
                str(self.path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self._shown}: cannot open store: {exc}") from None
        try:
            con = self._con
            con.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("store_not_wal", path=self._shown, journal_mode=mode)
            con.execute("PRAGMA synchronous = FULL")
            if create:
                # a writer: 64 MiB of page cache keeps the six session indexes of a million rows in memory
                con.execute("PRAGMA cache_size = -65536")
            else:
                # a reader (events, verify, exports): pages straight from the OS cache, no read() per
                # page; a month of one school lists in half the time. Writes never go through the map.
                con.execute("PRAGMA mmap_size = 2147483648")
            # a reset WAL is cut back to 4 MiB, so one burst does not keep the disk space forever
            con.execute("PRAGMA journal_size_limit = 4194304")
            self._migrate(create)
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise StoreError(f"{self._shown}: not a usable social-monitor store: {exc}") from None
        except StoreError:
            self._con.close()
            raise

    # --- opening --------------------------------------------------------------------------

    def _check_header(self) -> None:
        try:
            with self.path.open("rb") as fh:
                head = fh.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise StoreError(f"{self._shown}: cannot read store: {exc.strerror or exc}") from None
        if head and head != SQLITE_HEADER:
            raise StoreError(f"{self._shown}: not a social-monitor store (not an SQLite database)")

    def _tables(self) -> set[str]:
        rows = self._con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {r[0] for r in rows}

    def _read_version(self) -> int:
        current = self._con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        if current == SCHEMA_VERSION:
            fmt = self._meta("format")
            if fmt != STORE_FORMAT:
                raise StoreError(f"{self._shown}: not a social-monitor store (format {fmt!r})")
        return int(current)

    def _migrate(self, create: bool) -> None:
        con = self._con
        tables = self._tables()
        if "schema_version" not in tables:
            foreign = sorted(t for t in tables if not t.startswith("sqlite_"))
            if foreign:
                raise StoreError(
                    f"{self._shown}: not a social-monitor store (it holds tables {', '.join(foreign[:5])})"
                )
            if not create:
                raise StoreError(f"{self._shown}: empty file, not a social-monitor store")
        elif self._read_version() == SCHEMA_VERSION:
            return  # the common case takes no write lock: readers open while writers write
        con.execute("BEGIN IMMEDIATE")
        try:
            if "schema_version" not in self._tables():
                con.execute(
                    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                    "applied_at DOUBLE PRECISION NOT NULL)"
                )
                current = 0
            else:
                current = con.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self._shown}: store schema {current} is newer than this social-monitor "
                    f"understands ({SCHEMA_VERSION}): upgrade social-monitor"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    con.execute(statement)
                if version == 1:
                    con.executemany(
                        "INSERT INTO store_meta (name, value) VALUES (?, ?)",
                        [("format", STORE_FORMAT), ("next_session_id", "1"),
                         ("created_at", repr(time.time()))],
                    )
                con.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                            (version, time.time()))
                log.info("store_migrated", path=self._shown, version=version)
            fmt = con.execute("SELECT value FROM store_meta WHERE name = 'format'").fetchone()
            if not fmt or fmt[0] != STORE_FORMAT:
                raise StoreError(f"{self._shown}: not a social-monitor store (format {fmt!r})")
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    def relieve(self) -> None:
        """Copy committed WAL frames into the database and truncate the WAL.

        On a full disk the WAL has often grown into the last free space (failed transactions
        leave frames past the commit point); truncating it is what lets the retry fit."""
        try:
            self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("store_checkpoint_failed", path=self._shown, error=str(exc))

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._con.close()

    # --- chain ----------------------------------------------------------------------------

    def _checkpoint(self) -> tuple[int, str] | None:
        row = self._con.execute(
            "SELECT through_record, hash FROM checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return (row[0], row[1]) if row else None

    def chain_head(self) -> ChainHead:
        row = self._con.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
        if row:
            return ChainHead(row[0], row[1])
        cp = self._checkpoint()
        return ChainHead(cp[0], cp[1]) if cp else ChainHead(0, GENESIS)

    def _meta(self, name: str) -> str | None:
        row = self._con.execute("SELECT value FROM store_meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, name: str, value: str) -> None:
        if self._con.execute("UPDATE store_meta SET value = ? WHERE name = ?", (value, name)).rowcount == 0:
            self._con.execute("INSERT INTO store_meta (name, value) VALUES (?, ?)", (name, value))

    # --- writing --------------------------------------------------------------------------

    def write_sessions(self, segments: Sequence[Session], now: float | None = None) -> int:
        if not segments:
            return 0
        recorded_at = round(time.time() if now is None else now, 6)
        con = self._con
        gap = self.idle_gap
        con.execute("BEGIN IMMEDIATE")
        try:
            head = self.chain_head()
            next_sid = int(self._meta("next_session_id") or "1")
            changed: dict[int, Session] = {}
            new_ids: set[int] = set()
            opened: dict[str, list[Session]] = {}
            assigned: set[int] = set()  # ids set on the caller's own segments (undone on failure)
            keys = [seg.key for seg in segments]
            open_rows = self._open_rows(keys, segments)
            for seg, key in zip(segments, keys, strict=True):
                match = None
                for row in open_rows.get(key, ()):
                    sid = row[0]
                    current = changed.get(sid)
                    first, last = (current.first_seen, current.last_seen) if current else (row[18], row[19])
                    if seg.first_seen <= last + gap and seg.last_seen >= first - gap and (
                        match is None or last > match[1]
                    ):
                        match = (row, last)
                if match is None:
                    # a session opened earlier in this same transaction (callers may pass unmerged segments)
                    fresh = next((n for n in opened.get(key, ()) if within_gap(n, seg.first_seen,
                                                                                   seg.last_seen, gap)), None)
                    if fresh is not None:
                        if fresh.id in assigned:  # merge into a copy: the caller's segment stays as given
                            copy = dataclasses.replace(fresh)
                            changed[copy.id] = copy  # type: ignore[index]
                            opened[key] = [copy if n is fresh else n for n in opened[key]]
                            assigned.discard(fresh.id)
                            fresh = copy
                        merge_into(fresh, seg)
                        continue
                    seg.id, seg.version, seg.record_id = next_sid, 0, None
                    next_sid += 1
                    changed[seg.id] = seg
                    new_ids.add(seg.id)
                    assigned.add(seg.id)
                    opened.setdefault(key, []).append(seg)
                    continue
                row = match[0]
                target = changed.get(row[0])
                if target is None:
                    target = changed[row[0]] = _row_session(row)
                merge_into(target, seg)
            prev = head.hash
            rid = head.record_id
            records = []
            for sid, s in changed.items():
                rid += 1
                s.version += 1
                s.record_id = rid
                body = canonical_json(s.body())
                digest = hashlib.sha256(body.encode()).hexdigest()
                h = record_hash(rid, sid, s.version, recorded_at, digest, prev)
                records.append((rid, sid, s.version, recorded_at, body, digest, prev, h))
                prev = h
            con.executemany(
                "INSERT INTO records (id, session_id, version, recorded_at, body, body_sha256, prev_hash,"
                " hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                records,
            )
            placeholders = ", ".join("?" * len(SESSION_COLUMNS))
            con.executemany(
                f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES ({placeholders})",
                [_session_row(changed[i]) for i in changed if i in new_ids],
            )
            assignments = ", ".join(f"{c} = ?" for c in _MUTABLE_COLUMNS)
            con.executemany(
                f"UPDATE sessions SET {assignments} WHERE id = ?",
                [(*[r[j] for j in _MUTABLE_INDEXES], i)
                 for i, r in ((i, _session_row(s)) for i, s in changed.items() if i not in new_ids)],
            )
            self._set_meta("next_session_id", str(next_sid))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            for seg in segments:  # so that the same segments can be written again
                if seg.id in assigned:
                    seg.id, seg.version, seg.record_id = None, 0, None
            raise
        return len(records)

    def _open_rows(
        self, segment_keys: Sequence[str], segments: Sequence[Session]
    ) -> dict[str, list[tuple[Any, ...]]]:
        """Stored sessions that the segments may extend: one indexed query per 500 keys."""
        keys = sorted(set(segment_keys))
        low = min(seg.first_seen for seg in segments) - self.idle_gap
        found: dict[str, list[tuple[Any, ...]]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"{_SELECT_SESSIONS} WHERE session_key IN ({marks}) AND last_seen >= ?"
            for row in self._con.execute(sql, (*chunk, low)):
                found.setdefault(row[1], []).append(row)
        return found

    # --- reading --------------------------------------------------------------------------

    def _where(
        self,
        school: str | None = None,
        since: TimeBound = None,
        until: TimeBound = None,
        flagged: bool | None = None,
        device: str | None = None,
        owner: str | None = None,
        platform: str | None = None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if school is not None:
            clauses.append("school = ?")
            params.append(school)
        if flagged is not None:
            clauses.append("flagged = ?")
            params.append(int(flagged))
        if device is not None:
            clauses.append("device = ?")
            params.append(device)
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        if platform is not None:
            clauses.append("platform = ?")
            params.append(platform)
        start, end = _epoch(since), _epoch(until)
        if start is not None:
            clauses.append("first_seen >= ?")
            params.append(start)
        if end is not None:
            clauses.append("first_seen < ?")
            params.append(end)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def sessions(
        self,
        *,
        school: str | None = None,
        since: TimeBound = None,
        until: TimeBound = None,
        flagged: bool | None = None,
        device: str | None = None,
        owner: str | None = None,
        platform: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Session]:
        where, params = self._where(school, since, until, flagged, device, owner, platform)
        sql = f"{_SELECT_SESSIONS}{where} ORDER BY first_seen, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        cur = self._con.execute(sql, params)
        try:
            while True:
                rows = cur.fetchmany(1000)
                if not rows:
                    return
                for row in rows:
                    yield _row_session(row)
        finally:
            cur.close()

    def ecs_json(self, **filters: Any) -> Iterator[str]:
        """JSON lines built by SQLite's json_object, in C: a month of a school lists in well under a second.

        Parses to exactly `Session.to_ecs()` (a test holds it to that): timestamps are rounded to
        the microsecond and cut to the millisecond, as `iso_utc` does."""
        limit = filters.pop("limit", None)
        where, params = self._where(**filters)
        sql = f"SELECT {_ECS_JSON_SQL} FROM sessions{where} ORDER BY first_seen, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        try:
            cur = self._con.execute(sql, params)
        except sqlite3.OperationalError:  # an SQLite built without JSON functions
            yield from super().ecs_json(**filters, limit=limit)
            return
        try:
            while True:
                rows = cur.fetchmany(2000)
                if not rows:
                    return
                for (line,) in rows:
                    yield line
        finally:
            cur.close()

    def count(self, **filters: Any) -> int:
        where, params = self._where(**filters)
        return int(self._con.execute(f"SELECT COUNT(*) FROM sessions{where}", params).fetchone()[0])

    def session(self, session_id: int) -> Session | None:
        row = self._con.execute(f"{_SELECT_SESSIONS} WHERE id = ?", (session_id,)).fetchone()
        return _row_session(row) if row else None

    # --- verification ---------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        con = self._con
        con.execute("BEGIN")  # one snapshot while writers carry on
        try:
            return self._verify()
        finally:
            if con.in_transaction:
                con.execute("COMMIT")

    def _verify(self) -> VerifyResult:
        con = self._con
        cp = self._checkpoint()
        expected = cp[0] + 1 if cp else 1
        prev = cp[1] if cp else GENESIS
        head = self.chain_head()
        checked = 0

        def broken(
            kind: str, record_id: int | None, problem: str, session_id: int | None = None
        ) -> VerifyResult:
            return VerifyResult(False, checked, 0, head, cp[0] if cp else None, kind, record_id, session_id,
                                problem)

        cur = con.execute(
            "SELECT id, session_id, version, recorded_at, body, body_sha256, prev_hash, hash "
            "FROM records ORDER BY id"
        )
        if cp is not None:
            first = con.execute("SELECT MIN(id) FROM records").fetchone()[0]
            if first is not None and first <= cp[0]:
                return broken("inserted", first, f"record {first} inserted before the checkpoint "
                              f"at record {cp[0]}")
        rows = iter(lambda: cur.fetchmany(2000), [])
        stream = (r for batch in rows for r in batch)
        current = next(stream, None)
        while current is not None:
            following = next(stream, None)
            rid, sid, version, recorded_at, body, digest, link, stored = current
            valid = record_hash(rid, sid, version, recorded_at, digest, link) == stored
            if rid != expected:
                if not valid or link == prev:
                    return broken("inserted", rid, f"record {rid} inserted (expected record {expected} next)")
                gone = f"record {expected}" if rid == expected + 1 else f"records {expected}-{rid - 1}"
                return broken("removed", expected, f"{gone} removed (record {rid} follows {expected - 1})")
            if link != prev:
                if not valid:
                    return broken("inserted", rid, f"record {rid} inserted (it does not link to record "
                                  f"{rid - 1} and its own hash is wrong)")
                if following is not None and following[6] == prev:
                    return broken("inserted", rid, f"record {rid} inserted (record {rid + 1} links past it)")
                if cp is not None and rid == cp[0] + 1:
                    return broken("changed", rid, f"record {rid} changed or the checkpoint at record "
                                  f"{cp[0]} was altered (the link does not match)")
                return broken("changed", rid - 1, f"record {rid - 1} changed (record {rid} no longer "
                              "links to it)")
            if not valid:
                if not self._record_known(rid, sid, version):
                    return broken("inserted", rid, f"record {rid} inserted (no session version it could "
                                  "belong to, and its hash is wrong)")
                return broken("changed", rid, f"record {rid} changed (its hash does not match its fields)")
            if body is not None and hashlib.sha256(body.encode()).hexdigest() != digest:
                return broken("changed", rid, f"record {rid} changed (content of session {sid} "
                              f"version {version} does not match its digest)")
            checked += 1
            prev = stored
            expected = rid + 1
            current = following

        # every session row must be the latest record of its session, byte for byte
        sessions = 0
        joined = con.execute(
            f"SELECT {', '.join('s.' + c for c in SESSION_COLUMNS)}, r.session_id, r.version, r.body_sha256, "
            "r.body IS NULL FROM sessions s LEFT JOIN records r ON r.id = s.record_id ORDER BY s.id"
        )
        n = len(SESSION_COLUMNS)
        for batch in iter(lambda: joined.fetchmany(2000), []):
            for row in batch:
                s = _row_session(row[:n])
                r_sid, r_version, r_digest, tomb = row[n:]
                if row[1] != s.key or row[24] != int(s.flagged):
                    return broken("changed", s.record_id, f"session {s.id} changed (its index columns do "
                                  "not match its content)", s.id)
                if r_sid is None:
                    return broken("inserted", None, f"session {s.id} inserted (its record {s.record_id} "
                                  "does not exist)", s.id)
                if r_sid != s.id or r_version != s.version or tomb:
                    return broken("changed", s.record_id, f"session {s.id} changed (it does not match "
                                  f"record {s.record_id})", s.id)
                body = canonical_json(s.body())
                if hashlib.sha256(body.encode()).hexdigest() != r_digest:
                    return broken("changed", s.record_id, f"session {s.id} changed (it differs from "
                                  f"record {s.record_id})", s.id)
                sessions += 1
        row = con.execute(
            "SELECT s.id, r.id FROM sessions s JOIN records r ON r.session_id = s.id "
            "AND r.version > s.version LIMIT 1"
        ).fetchone()
        if row:
            return broken("changed", row[1], f"session {row[0]} changed (rolled back behind its record "
                          f"{row[1]})", row[0])
        row = con.execute(
            "SELECT r.session_id, r.id FROM records r WHERE r.body IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM sessions s WHERE s.id = r.session_id) LIMIT 1"
        ).fetchone()
        if row:
            return broken("removed", row[1], f"session {row[0]} removed (its record {row[1]} is still in "
                          "the log and was not purged)", row[0])
        return VerifyResult(True, checked, sessions, head, cp[0] if cp else None)

    # --- retention ------------------------------------------------------------------------

    def purge_due(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        last = self._meta("last_purge")
        return last is None or now - float(last) >= DAY

    def purge(self, retention_days: int, now: float | None = None) -> PurgeResult:
        """Remove sessions last seen before now - retention_days; compact the log's dead prefix.

        Every version of a removed session becomes a tombstone (content gone,
        digest and links kept), so the chain still verifies. The leading run of
        tombstones is then deleted and replaced by a checkpoint holding the hash
        of the last one removed; verification starts there. A broken link in
        that run is never compacted away: the content is still removed, but
        the tombstones stay so `verify` keeps reporting the break.
        """
        now = time.time() if now is None else now
        cutoff = now - retention_days * DAY
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            doomed = "SELECT id FROM sessions WHERE last_seen < ?"
            con.execute(
                f"UPDATE records SET body = NULL WHERE body IS NOT NULL AND session_id IN ({doomed})",
                (cutoff,),
            )
            removed = con.execute("DELETE FROM sessions WHERE last_seen < ?", (cutoff,)).rowcount
            cp = self._checkpoint()
            start = cp[0] if cp else 0
            prev = cp[1] if cp else GENESIS
            first_live = con.execute("SELECT MIN(id) FROM records WHERE body IS NOT NULL").fetchone()[0]
            last = con.execute("SELECT MAX(id) FROM records").fetchone()[0]
            through = (first_live - 1) if first_live is not None else last
            checkpoint = None
            compacted = 0
            if through is not None and through > start:
                expected = start + 1
                intact = True
                for rid, sid, version, recorded_at, digest, link, stored in con.execute(
                    "SELECT id, session_id, version, recorded_at, body_sha256, prev_hash, hash FROM records "
                    "WHERE id <= ? ORDER BY id", (through,)
                ):
                    if (rid != expected or link != prev
                            or record_hash(rid, sid, version, recorded_at, digest, link) != stored):
                        intact = False
                        log.error("store_purge_chain_broken", path=self._shown, record=rid)
                        break
                    prev, expected = stored, rid + 1
                if intact:
                    compacted = con.execute("DELETE FROM records WHERE id <= ?", (through,)).rowcount
                    con.execute(
                        "INSERT INTO checkpoints (created_at, cutoff, through_record, hash, records_removed, "
                        "sessions_removed) VALUES (?, ?, ?, ?, ?, ?)",
                        (now, cutoff, through, prev, compacted, removed),
                    )
                    checkpoint = ChainHead(through, prev)
            self._set_meta("last_purge", repr(now))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        log.info("store_purged", path=self._shown, sessions=removed, records_compacted=compacted,
                 cutoff=cutoff)
        return PurgeResult(cutoff, removed, compacted, checkpoint)


def open_store(
    path: str | Path, *, idle_gap: float = 300.0, create: bool = True, busy_timeout: float = 10.0
) -> SessionStore:
    """The store at `path`. Today always SQLite; a `postgresql://` URL is where a central store would go."""
    text = os.fspath(path)
    if text.startswith(("postgresql://", "postgres://")):
        raise StoreError(f"{text}: a PostgreSQL store is not implemented yet")
    return SQLiteSessionStore(path, idle_gap=idle_gap, create=create, busy_timeout=busy_timeout)


def open_config_store(config: Any, *, create: bool = True) -> SessionStore:
    """The store a loaded `Config` names, with its idle gap."""
    return open_store(config.store_path, idle_gap=config.model.store.idle_gap_seconds, create=create)


__all__ = [
    "GENESIS",
    "SCHEMA_VERSION",
    "ChainHead",
    "PurgeResult",
    "SQLiteSessionStore",
    "Session",
    "SessionStore",
    "StoreError",
    "VerifyResult",
    "WriteResult",
    "open_config_store",
    "open_store",
]
