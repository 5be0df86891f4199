"""The SQLite store: one file per gateway, WAL, hash-chained (see `monitor.store.base` for the design).

Each write is one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock, with a
busy timeout); WAL mode lets readers work on a snapshot while writers commit.
Ids are allocated from `store_meta` inside the transaction. Only this module
(with `sqlite_open`, its checks on opening) knows about pragmas and file headers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from monitor.logsetup import get_logger
from monitor.store import (
    anchors,
    damage,
    files,
    integrity,
    reclaim,
    retention,
    schema,
    sqlite_open,
    transactions,
)
from monitor.store.base import PurgeResult, SessionReader, SessionStore, StoreError, VerifyResult
from monitor.store.chain import GENESIS, ChainHead, Record, body_digest, record_hash
from monitor.store.codec import MUTABLE_COLUMNS, MUTABLE_INDEXES, row_session, session_row
from monitor.store.coverage import LedgerView, ledger_view
from monitor.store.damage import StoreDamaged
from monitor.store.ecs import ECS_JSON_SQL
from monitor.store.filter import EVERY_SESSION, SessionFilter
from monitor.store.holds import Hold, read_holds
from monitor.store.reviews import Review, read_reviews
from monitor.store.schema import MIGRATIONS, SESSION_COLUMNS, Migration
from monitor.store.sessions import Session, canonical_json, merge_into, within_gap
from monitor.store.signing import SignedHead

if TYPE_CHECKING:  # cryptography is imported where a key is used (signing._ed25519): `events` needs none
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = get_logger("monitor.store.sqlite")

DAY = 86400.0
T = TypeVar("T")
_SELECT_SESSIONS = f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions"


class SQLiteSessionStore(SessionStore):
    """One SQLite file per gateway: WAL, a busy timeout, synchronous=FULL for evidence."""

    def __init__(self, path: str | Path, *, idle_gap: float = 300.0, create: bool = True,
                 busy_timeout: float = 10.0, migrations: Mapping[int, Migration] = MIGRATIONS):
        """`migrations` is the schema this code writes; a test (or a later release) passes its own."""
        self.path = Path(path)
        self._migrations = migrations
        self._version = schema.check_migrations(migrations)
        self.idle_gap = float(idle_gap)
        self._shown = str(self.path)
        self.damaged: str | None = None  # once set, closing leaves the files as they were found
        files.refuse_root_in_foreign_folder(self.path)  # before anything is created there
        exists = self.path.exists()
        if not exists and not create:
            raise StoreError(f"{self._shown}: no such store (nothing has been recorded yet?)")
        if exists:
            sqlite_open.check_header(self.path, self._shown)
            if problem := damage.wal_problem(self.path):  # before SQLite's recovery would drop it
                raise StoreDamaged(self._shown, problem)
        if create:  # 0700 folders, a 0600 file (SQLite gives -wal and -shm the file's mode)
            files.prepare_store(self.path)
        try:
            self._con = sqlite3.connect(
                str(self.path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self._shown}: cannot open store: {exc}") from None
        try:
            con = self._con
            mode = reclaim.tune(con, create=create, busy_timeout=busy_timeout)
            if mode.lower() != "wal":
                log.warning("store_not_wal", path=self._shown, journal_mode=mode)
            sqlite_open.migrate(con, self._shown, self._version, migrations, create)
        except sqlite3.DatabaseError as exc:
            if damage.is_damage(exc):
                self.mark_damaged(str(exc))
            self.close()
            if self.damaged:
                raise StoreDamaged(self._shown, exc) from None
            raise StoreError(f"{self._shown}: not a usable social-monitor store: {exc}") from None
        except StoreError:
            self._con.close()
            raise

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One BEGIN IMMEDIATE transaction, committed when the block ends, rolled back on any error."""
        with transactions.immediate(self._con):
            yield

    # --- opening and closing (the checks on opening: monitor.store.sqlite_open) -------------

    def relieve(self) -> None:
        """Copy committed WAL frames into the database and truncate the WAL: on a full disk the WAL has
        often grown into the last free space, and truncating it is what lets the retry fit."""
        try:
            self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("store_checkpoint_failed", path=self._shown, error=str(exc))

    def close(self) -> None:
        if self.damaged is not None:
            damage.close_keeping_files(self._con, self.path)
        with contextlib.suppress(sqlite3.Error):
            self._con.close()

    def mark_damaged(self, detail: str) -> None:
        self.damaged = detail

    def __exit__(self, *exc_info: object) -> None:
        """Close; an SQLite error that says the file is damaged leaves as one line naming the file."""
        exc = exc_info[1] if len(exc_info) > 1 else None
        if found := isinstance(exc, BaseException) and damage.is_damage(exc):
            self.mark_damaged(str(exc))
        self.close()
        if found:
            raise StoreDamaged(self._shown, str(exc)) from None

    def damage_found(self) -> str | None:
        if problem := damage.quick_check(self._con):
            self.mark_damaged(problem)
        return problem

    # --- chain ----------------------------------------------------------------------------

    def _checkpoint(self) -> ChainHead | None:
        row = self._con.execute(
            "SELECT through_record, hash FROM checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return ChainHead(row[0], row[1]) if row else None

    def chain_head(self) -> ChainHead:
        row = self._con.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
        if row:
            return ChainHead(row[0], row[1])
        return self._checkpoint() or ChainHead(0, GENESIS)

    def records_since(self, after: int, limit: int) -> list[Record]:
        """Up to `limit` records after record `after`, in chain order: what the shipper sends on."""
        return self._con.execute(f"SELECT {integrity.RECORD_COLUMNS} FROM records WHERE id > ? ORDER BY id"
                                 " LIMIT ?", (after, limit)).fetchall()

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
        assigned: set[int] = set()  # ids set on the caller's own segments (undone on failure)
        con.execute("BEGIN IMMEDIATE")
        try:
            head = self.chain_head()
            next_sid = int(self._meta("next_session_id") or "1")
            changed: dict[int, Session] = {}
            new_ids: set[int] = set()
            opened: dict[str, list[Session]] = {}
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
                    target = changed[row[0]] = row_session(row)
                merge_into(target, seg)
            prev = head.hash
            rid = head.record_id
            records = []
            for sid, s in changed.items():
                rid += 1
                s.version += 1
                s.record_id = rid
                body = canonical_json(s.body())
                digest = body_digest(body)
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
                [session_row(changed[i]) for i in changed if i in new_ids],
            )
            assignments = ", ".join(f"{c} = ?" for c in MUTABLE_COLUMNS)
            con.executemany(
                f"UPDATE sessions SET {assignments} WHERE id = ?",
                [(*[r[j] for j in MUTABLE_INDEXES], i)
                 for i, r in ((i, session_row(s)) for i, s in changed.items() if i not in new_ids)],
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

    def _open_rows(self, segment_keys: Sequence[str], segments: Sequence[Session]) -> dict[str, list[Any]]:
        """Stored sessions that the segments may extend: one indexed query per 500 keys."""
        keys = sorted(set(segment_keys))
        low = min(seg.first_seen for seg in segments) - self.idle_gap
        found: dict[str, list[Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"{_SELECT_SESSIONS} WHERE session_key IN ({marks}) AND last_seen >= ?"
            for row in self._con.execute(sql, (*chunk, low)):
                found.setdefault(row[1], []).append(row)
        return found

    # --- reading --------------------------------------------------------------------------

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[SessionReader]:
        """One read transaction: SQLite fixes the snapshot at its first read, and WAL lets writers go on."""
        con = self._con
        if con.in_transaction:  # already inside a snapshot (or a write): the same view
            yield self
            return
        con.execute("BEGIN")
        try:
            yield self
        except BaseException:  # the error that ended the read is the one to report, not the COMMIT's
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            raise
        if con.in_transaction:
            con.execute("COMMIT")

    def _batches(self, select: str, where: SessionFilter, size: int) -> Iterator[list[Any]]:
        """Rows of `select ... FROM sessions` matching `where`, oldest first, in batches of `size`."""
        clause, params = where.sql()
        sql = f"{select}{clause} ORDER BY first_seen, id"
        if where.limit is not None:
            sql += " LIMIT ?"
            params.append(int(where.limit))
        cur = self._con.execute(sql, params)
        try:
            yield from iter(lambda: cur.fetchmany(size), [])
        finally:  # a reader abandoned after its store closed (an export that failed) has nothing to close
            with contextlib.suppress(sqlite3.Error):
                cur.close()

    def sessions(self, where: SessionFilter = EVERY_SESSION) -> Iterator[Session]:
        for batch in self._batches(_SELECT_SESSIONS, where, 1000):
            for row in batch:
                yield row_session(row)

    def ecs_json(self, where: SessionFilter = EVERY_SESSION) -> Iterator[str]:
        """JSON lines built by SQLite's json_object, in C (a school's month in well under a second); they
        parse to exactly `Session.to_ecs()`, timestamps rounded to the µs and cut to the ms (a test)."""
        batches = self._batches(f"SELECT {ECS_JSON_SQL} FROM sessions", where, 2000)
        try:
            first = next(batches, [])
        except sqlite3.OperationalError:  # an SQLite built without JSON functions
            yield from super().ecs_json(where)
            return
        for batch in itertools.chain((first,), batches):
            for (line,) in batch:
                yield line

    def count(self, where: SessionFilter = EVERY_SESSION) -> int:
        clause, params = where.sql()
        n = int(self._con.execute(f"SELECT COUNT(*) FROM sessions{clause}", params).fetchone()[0])
        return n if where.limit is None else min(n, where.limit)

    def devices_and_owners(self, where: SessionFilter = EVERY_SESSION) -> tuple[set[str], set[str]]:
        """One indexed query (a limit needs the sessions themselves: read them)."""
        if where.limit is not None:
            return super().devices_and_owners(where)
        clause, params = where.sql()
        devices: set[str] = set()
        owners: set[str] = set()
        query = f"SELECT DISTINCT device, owner FROM sessions{clause}"
        for device, owner in self._con.execute(query, params):
            devices.add(device)
            if owner:
                owners.add(owner)
        return devices, owners

    def ledger(self, since: float, until: float) -> LedgerView:
        return ledger_view(self._con, since, until)

    def session(self, session_id: int) -> Session | None:
        row = self._con.execute(f"{_SELECT_SESSIONS} WHERE id = ?", (session_id,)).fetchone()
        return row_session(row) if row else None

    def reviews(self) -> list[Review]:
        return read_reviews(self._con)

    # --- verification and signed heads (monitor.store.integrity, monitor.store.anchors) ------

    def verify(self) -> VerifyResult:
        """Every page first (SQLite's quick_check), then the chain; damage raises `StoreDamaged`."""
        if problem := self.damage_found():
            raise StoreDamaged(self._shown, problem)
        with self.snapshot():  # one view while writers carry on
            return integrity.verify(self._con, self._checkpoint(), self.chain_head())

    def check_heads(self, heads: Iterable[SignedHead], key: Ed25519PublicKey) -> tuple[int, Any]:
        with self.snapshot():
            return anchors.check_heads(self._con, heads, self._checkpoint(), key)

    def sign_head(self, key: Ed25519PrivateKey, reason: str, head: ChainHead | None = None) -> SignedHead:
        """On a connection of its own: an export signs its snapshot's head from inside the snapshot."""
        return anchors.sign_store_file(self.path, key, head, reason, time.time())

    # --- retention ------------------------------------------------------------------------

    def purge_due(self, now: float | None = None) -> bool:
        last = self._meta("last_purge")
        return last is None or (time.time() if now is None else now) - float(last) >= DAY

    def purge(self, retention_days: int, now: float | None = None) -> PurgeResult:
        """Remove sessions last seen before now - retention_days, except those a legal hold keeps (see
        `monitor.store.retention`); then give the freed pages back (`monitor.store.reclaim`)."""
        now = time.time() if now is None else now
        with self._writing():
            start = self._checkpoint() or ChainHead(0, GENESIS)
            result = retention.purge_before(self._con, now - retention_days * DAY, start, now, self._shown)
            self._set_meta("last_purge", repr(now))
        result.reclaimed_pages = reclaim.reclaim(self._con, self._shown).pages
        log.info("store_purged", path=self._shown, sessions=result.sessions_removed,
                 records_compacted=result.records_removed, cutoff=result.cutoff, held=result.held,
                 pages_reclaimed=result.reclaimed_pages)
        return result

    def in_transaction(self, change: Callable[[Any, ChainHead, float], T]) -> T:
        """`change(con, checkpoint, now)` in one write transaction: holds (`monitor.store.holds`)."""
        with self._writing():
            return change(self._con, self._checkpoint() or ChainHead(0, GENESIS), time.time())

    def holds(self) -> list[Hold]:
        return read_holds(self._con)

    def evidence(self, where: SessionFilter = EVERY_SESSION) -> Iterator[Record]:
        """The chain record of each matching session's latest version, in record order."""
        clause, params = where.sql()
        yield from self._con.execute(f"SELECT {integrity.RECORD_COLUMNS} FROM records WHERE id IN "
                                     f"(SELECT record_id FROM sessions{clause}) ORDER BY id", params)


def open_store(path: str | Path, *, idle_gap: float = 300.0, create: bool = True,
               busy_timeout: float = 10.0) -> SessionStore:
    """The gateway's SQLite store at `path` (the central PostgreSQL store is `store.central`, shipped to)."""
    if os.fspath(path).startswith(("postgresql://", "postgres://")):
        raise StoreError(f"{path}: the central store is set as store.central and filled by `ship`")
    return SQLiteSessionStore(path, idle_gap=idle_gap, create=create, busy_timeout=busy_timeout)


def open_config_store(config: Any, *, create: bool = True) -> SessionStore:  # with the config's idle gap
    return open_store(config.store_path, idle_gap=config.model.store.idle_gap_seconds, create=create)


__all__ = ["DAY", "SQLiteSessionStore", "open_config_store", "open_store"]
