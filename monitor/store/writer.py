"""The store writer: one thread, a bounded queue, batched commits, and no silent loss.

Capture and the proxy call `submit(event)`, which never blocks: when the queue
is full the event is dropped and counted (`store_queue_dropped`), because
stalling the proxy would hurt every user of the network (fail open, but
loudly). The thread drains the queue into a `SessionMerger` and commits one
transaction per batch (at most `batch_size` events or `max_delay` seconds).

A session that is merely extended (more observations of the same access,
no new signal, flag or exemption) is re-versioned at most once per
`extend_interval` seconds rather than once per batch: every version is a
full, chained record, and a 40-minute video stream would otherwise leave
thousands of them. A new access, a new session after the idle gap, or a new
flag, or the platform itself reached by a session that had seen only its
embeds, is written with the next batch; `flush()` and `close()` write
everything held.

Each new session row the store inserts is one access (`social_monitor_accesses_total`): merges
into an open session, even one the other process wrote, are not (monitor.tagging.counting).
The writer signs the chain head at start, every `sign_interval` and at close (monitor.store.signing).

When a commit fails (the disk is full, the file is locked for longer than the
busy timeout, an I/O error), the error is counted by reason and logged, and
the merged batch is kept and retried with back-off, merged with the events
that arrive meanwhile. While a retry is pending the thread takes at most
`max_pending` events into memory; beyond that the queue fills and new events
are dropped and counted, so memory stays bounded and nothing already accepted
is lost while the process lives.

A damaged store file (SQLite says SQLITE_CORRUPT or NOTADB, its quick_check at
start fails, or its WAL would drop committed transactions) is different: a retry
would write more into a file that no longer reads back whole. The writer closes
it and writes nothing more; the thread keeps taking events so producers never
block, and each batch it cannot store counts as a `corrupt` write error while
`social_monitor_store_damaged` reads 1. The process lives on (capture, the proxy
and every other metric carry on) until someone recovers the file
(docs/operations.md, "A damaged store") and restarts the service.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from monitor.config.loader import Config
from monitor.errors import UserError
from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent
from monitor.store.base import SessionStore, StoreError
from monitor.store.damage import RECOVERY, StoreDamaged, UnusableStore, error_reason, is_damage
from monitor.store.recent_writes import RecentWrites
from monitor.store.sessions import Session, SessionMerger
from monitor.store.signing import SIGN_INTERVAL, key_path_for, load_or_create_key
from monitor.store.sqlite import open_config_store

log = structlog.get_logger("monitor.store.writer")
HOUR = 3600.0


def daily_upkeep(config: Config) -> Callable[[set[str]], object]:
    """After the daily purge: exports past their retention go, the export log's old entries fold."""

    def run(held_cases: set[str]) -> object:
        from monitor.exports.expiry import upkeep

        return upkeep(config, held_cases, time.time())

    return run


class StoreWriter:
    """Owns `store` from `start()` on: no other thread may use that store object. It counts
    `social_monitor_accesses_total` (and the flagged family) once per session row it inserts."""

    counts_accesses = True

    def __init__(
        self,
        store: SessionStore,
        metrics: Metrics | None = None,
        *,
        queue_size: int = 10000,
        batch_size: int = 5000,
        max_delay: float = 0.25,
        max_pending: int | None = None,
        retry_initial: float = 0.25,
        retry_max: float = 10.0,
        retention_days: int | None = None,
        extend_interval: float = 30.0,
        signing_key: Any = None, sign_interval: float = SIGN_INTERVAL,
    ):
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.max_pending = max_pending if max_pending is not None else max(queue_size * 10, batch_size)
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.retention_days = retention_days
        self.upkeep: Callable[[set[str]], object] | None = None  # exports and export log, after each purge
        self.signing_key, self.sign_interval, self._next_sign = signing_key, sign_interval, 0.0
        # A deque, not queue.Queue: append and popleft are atomic under the GIL and cost a tenth
        # of Queue's lock and condition per event; the bound is checked on submit.
        self.queue_size = queue_size
        self._queue: deque[AccessEvent] = deque()
        self._wake = threading.Event()
        self._merger = SessionMerger(store.idle_gap)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._taken = 0  # events moved from the queue into the merger (writer thread only)
        self._settled = 0  # events committed (writer thread only)
        self._failures = 0  # consecutive failed commits
        self._fresh = 0  # events taken since the last commit
        self._chunk = batch_size  # most segments per transaction; halved after each failure
        # what was written recently: a long session is re-versioned at most once per extend_interval
        self.recent = RecentWrites(extend_interval, store.idle_gap)
        self._due_at = float("inf")  # when held extensions must be written
        self._flush_requested = threading.Event()
        self._next_purge_check = 0.0
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self.dropped = 0
        self.last_error: str | None = None
        self.damaged: str | None = None  # what was found wrong with the store file, once found
        self.discarded = 0  # events taken after the store was found damaged: not stored

    @classmethod
    def from_config(cls, config: Config, metrics: Metrics | None = None) -> StoreWriter:
        """The daemon's writer: the config's store, idle gap, queue size and retention (purged daily).

        A store found damaged on opening gives a writer that stores nothing and says so."""
        try:
            store: SessionStore = open_config_store(config)
        except StoreDamaged as exc:
            store = UnusableStore(exc, config.model.store.idle_gap_seconds)
        writer = cls(store, metrics, queue_size=config.model.store.queue_size,
                     retention_days=config.model.retention_days,
                     signing_key=load_or_create_key(key_path_for(config.store_path)))  # made on first start
        writer.upkeep = daily_upkeep(config)
        return writer

    def start(self) -> StoreWriter:
        self._thread.start()
        log.info("store_writer_started", queue_size=self.queue_size, batch_size=self.batch_size)
        return self

    # --- producer side (any thread, never blocks) --------------------------------------------

    def submit(self, event: AccessEvent) -> bool:
        """Queue an event; False only when it was dropped because the queue was full (counted)."""
        if not event.recordable:
            return True  # never stored by design: not a loss
        q = self._queue
        if len(q) >= self.queue_size:
            self.dropped += 1
            self.metrics.store_queue_dropped.inc()
            return False
        q.append(event)
        if len(q) == 1:
            self._wake.set()
        return True

    @property
    def alive(self) -> bool:
        """False once the writer thread has ended (closed, or died: nothing more is stored)."""
        return self._thread.is_alive()

    @property
    def pending(self) -> int:
        """Events accepted but not yet committed."""
        return len(self._queue) + (self._taken - self._settled)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything accepted so far is committed; False on timeout or a damaged store."""
        deadline = time.monotonic() + timeout
        target = self._taken + len(self._queue)
        self._flush_requested.set()
        self._wake.set()
        with self._cond:
            while self._settled < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return self._settled >= target and self.damaged is None
                self._cond.wait(min(left, 0.05))
        return self.damaged is None  # settled, but not stored when the file is damaged

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, stop the thread and close the store (SIGTERM). False if events were left unwritten."""
        flushed = self.flush(timeout) if self._thread.is_alive() else self.pending == 0
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(1.0, timeout))
        self._sign("stop")
        left = self.pending
        if left:
            log.error("store_writer_closed_with_unwritten_events", events=left, error=self.last_error)
        self.store.close()
        log.info("store_writer_stopped", unwritten=left, dropped=self.dropped,
                 damaged_discarded=self.discarded)
        return flushed and left == 0 and not self.discarded

    # --- the thread ---------------------------------------------------------------------------

    def _collect(self, wait: float) -> int:
        """Move up to one batch from the queue into the merger; returns how many events."""
        merger, q = self._merger, self._queue
        room = min(self.batch_size, self.max_pending - len(merger))
        if room <= 0:
            self._stop.wait(wait)
            return 0
        if not q and wait > 0:
            self._wake.clear()
            if not q:
                self._wake.wait(wait)
        taken = 0
        deadline = time.monotonic() + self.max_delay
        add, popleft = merger.add, q.popleft
        while taken < room:
            if not q:
                if taken == 0 or time.monotonic() >= deadline or self._stop.is_set():
                    break
                self._wake.clear()
                if not q:
                    self._wake.wait(min(0.02, max(0.0, deadline - time.monotonic())))
                continue
            for _ in range(min(room - taken, len(q))):
                add(popleft())
                taken += 1
        self._taken += taken
        return taken

    def _commit(self, force: bool) -> bool:
        merger = self._merger
        if not len(merger):
            return True
        segments = merger.drain()
        now = time.monotonic()
        due: list[Session] = []
        held: list[Session] = []
        may_hold = not force and not self._failures
        for seg in segments:
            (held if may_hold and self.recent.may_wait(seg, now) else due).append(seg)
        overflow: list[Session] = []
        if self._failures and len(due) > self._chunk:
            # after a failure, smaller transactions: a nearly full disk still takes part of the backlog
            overflow = due[self._chunk :]
            due = due[: self._chunk]
        if self.damaged is not None:
            self._discard(segments)
            return True
        if due:
            started = time.perf_counter()
            try:
                written = self.store.write_sessions(due)
            except Exception as exc:  # any failure: keep the batch, count, retry (bounded by max_pending)
                if is_damage(exc) or isinstance(exc, StoreDamaged):
                    self._found_damaged(exc)
                    self._discard(segments)
                    return True
                for seg in segments:
                    merger.add_session(seg)
                self._chunk = max(1, min(self._chunk, len(due)) // 2)
                reason = error_reason(exc)
                if reason == "disk_full":
                    self.store.relieve()
                self._failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.metrics.store_write_errors.labels(reason=reason).inc()
                log.error("store_write_failed", reason=reason, error=str(exc), pending_events=self.pending,
                          attempt=self._failures, exc_info=reason == "other")
                return False
            self.metrics.store_write_latency.observe(time.perf_counter() - started)
            self.metrics.store_writes.inc(written)
            self._count_accesses(due)
            if self._failures and not overflow:
                log.info("store_write_resumed", after_failures=self._failures, sessions=written)
                self._failures = 0
                self._chunk = self.batch_size
                self.last_error = None
            elif self._failures:
                self._chunk = min(self.batch_size, self._chunk * 2)
            self.recent.committed(due, now)
        for seg in overflow:
            merger.add_session(seg)
        for seg in held:
            merger.add_session(seg)
        self._due_at = self.recent.due_at(held, now)
        self._fresh = 0
        self.recent.forget_old(now)
        with self._cond:
            self._settled += sum(seg.events for seg in due)
            self._cond.notify_all()
        return True

    def _found_damaged(self, exc: BaseException | str) -> None:
        """Stop writing to the file for good: close it, count it, say it once with the way out."""
        detail = exc.detail if isinstance(exc, StoreDamaged) else str(exc)
        self.damaged = self.last_error = detail
        self.metrics.store_damaged.set(1)
        self.metrics.store_write_errors.labels(reason="corrupt").inc()
        log.critical("store_damaged", path=str(getattr(self.store, "path", "?")), error=detail,
                     action=f"writes stopped; {RECOVERY}")
        self.store.mark_damaged(detail)
        self.store.close()

    def _discard(self, segments: list[Session]) -> None:
        """Segments the damaged store cannot take: counted as a failed write, settled so flush returns."""
        events = sum(seg.events for seg in segments)
        if not events:
            return
        self.discarded += events
        self.metrics.store_write_errors.labels(reason="corrupt").inc()
        with self._cond:
            self._settled += events
            self._cond.notify_all()

    def _check_at_start(self) -> None:
        """Every page of the file, once, in this thread (about 5 ms per MB) before the first write."""
        if isinstance(self.store, UnusableStore):
            self._found_damaged(self.store.error)
            return
        try:
            problem = self.store.damage_found()
        except (sqlite3.Error, StoreError) as exc:
            problem = str(exc)
        if problem:
            self._found_damaged(problem)

    def _count_accesses(self, committed: list[Session]) -> None:
        """One access per new session row: the store set `id` only on segments that opened one.

        A segment merged into an open session (of this process or of the other one
        writing to the same store) keeps `id` None, so an access seen by the sensor and
        the proxy counts once. See monitor.tagging.counting."""
        m = self.metrics
        for seg in committed:
            if seg.id is None:
                continue
            school = seg.school or "unknown"
            flagged = seg.flagged
            m.accesses.labels(school, seg.zone or "unknown", seg.platform, seg.period_kind,
                              "true" if flagged else "false").inc()
            if flagged:
                for flag in seg.flags:
                    m.flagged.labels(school, flag.name).inc()

    def _maybe_purge(self) -> None:
        if self.retention_days is None or self.damaged or time.monotonic() < self._next_purge_check:
            return
        self._next_purge_check = time.monotonic() + HOUR
        try:
            if self.store.purge_due():
                self.store.purge(self.retention_days)
                if self.upkeep is not None:  # exports past their retention, the export log's old entries
                    self.upkeep({h.case for h in self.store.holds() if h.open})
        except (sqlite3.Error, OSError) as exc:
            if is_damage(exc):
                self._found_damaged(exc)
                return
            self.metrics.store_write_errors.labels(reason=error_reason(exc)).inc()
            log.error("store_purge_failed", error=str(exc))
        except UserError as exc:  # the export log could not be read or written: the next day retries
            log.error("exports_upkeep_failed", error=str(exc))

    def _sign(self, reason: str | None = None) -> None:
        """Sign the chain head when due (or now, for a `reason`): a `chain_head_signed` journal line."""
        due = reason is not None or time.monotonic() >= self._next_sign
        if self.signing_key is None or self.damaged or not due:
            return
        reason = reason or ("interval" if self._next_sign else "start")
        self._next_sign = time.monotonic() + self.sign_interval
        try:
            self.store.sign_head(self.signing_key, reason)
        except (sqlite3.Error, OSError, StoreError) as exc:
            log.error("chain_head_sign_failed", reason=reason, error=str(exc))  # the next one may hold

    def _run(self) -> None:
        self._check_at_start()
        delay = self.retry_initial
        retry_at = 0.0
        while True:
            stopping = self._stop.is_set()
            now = time.monotonic()
            if self._failures and now < retry_at:
                if stopping:
                    return  # close() gave up waiting; the unwritten count is logged there
                # keep accepting into memory (bounded) while waiting to retry
                self._collect(max(0.001, min(0.1, retry_at - now)))
                self.metrics.store_queue_depth.set(len(self._queue))
                continue
            force = stopping or self._flush_requested.is_set()
            busy = self._failures or force or self._fresh
            self._fresh += self._collect(0.0 if busy else max(0.001, min(0.1, self._due_at - now)))
            self.metrics.store_queue_depth.set(len(self._queue))
            if len(self._merger) and (self._fresh or self._failures or force
                                      or time.monotonic() >= self._due_at):
                if self._commit(force):
                    delay = self.retry_initial
                else:
                    retry_at = time.monotonic() + delay
                    delay = min(delay * 2, self.retry_max)
                    continue
            if not self._queue and not len(self._merger):
                if force:
                    self._flush_requested.clear()
                if stopping:
                    return
            self._maybe_purge()
            self._sign()

