"""The store writer: one thread, a bounded queue, batched commits, and no silent loss.

Capture and the proxy call `submit(event)`, which never blocks: when the queue
is full the event is dropped and counted (`store_queue_dropped`), because
stalling the proxy would hurt every user of the network (fail open, but
loudly). The thread drains the queue into a `SessionMerger` and commits one
transaction per batch (at most `batch_size` events or `max_delay` seconds).

When a commit fails (the disk is full, the file is locked for longer than the
busy timeout, an I/O error), the error is counted by reason and logged, and
the merged batch is kept and retried with back-off, merged with the events
that arrive meanwhile. While a retry is pending the thread takes at most
`max_pending` events into memory; beyond that the queue fills and new events
are dropped and counted, so memory stays bounded and nothing already accepted
is lost while the process lives.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time

import structlog

from monitor.metrics import Metrics
from monitor.observation import AccessEvent
from monitor.sessions import SessionMerger
from monitor.store import SessionStore

log = structlog.get_logger("monitor.writer")

HOUR = 3600.0


def error_reason(exc: BaseException) -> str:
    """A bounded label for `store_write_errors_total{reason}`."""
    text = str(exc).lower()
    if "full" in text:
        return "disk_full"
    if "locked" in text or "busy" in text:
        return "locked"
    if "readonly" in text or "read-only" in text:
        return "readonly"
    if "malformed" in text or "not a database" in text:
        return "corrupt"
    if "i/o" in text or isinstance(exc, OSError):
        return "io"
    return "other"


class StoreWriter:
    """Owns `store` from `start()` on: no other thread may use that store object."""

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
    ):
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.max_pending = max_pending if max_pending is not None else max(queue_size * 10, batch_size)
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.retention_days = retention_days
        self._queue: queue.Queue[AccessEvent] = queue.Queue(maxsize=queue_size)
        self._merger = SessionMerger(store.idle_gap)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._accepted = 0  # events taken into the queue
        self._settled = 0  # events committed (or refused as not recordable)
        self._failures = 0  # consecutive failed commits
        self._next_purge_check = 0.0
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self.dropped = 0
        self.last_error: str | None = None

    def start(self) -> StoreWriter:
        self._thread.start()
        log.info("store_writer_started", queue_size=self._queue.maxsize, batch_size=self.batch_size)
        return self

    # --- producer side (any thread, never blocks) --------------------------------------------

    def submit(self, event: AccessEvent) -> bool:
        """Queue an event; False only when it was dropped because the queue was full (counted)."""
        if not event.recordable:
            return True  # never stored by design: not a loss
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            self.metrics.store_queue_dropped.inc()
            return False
        with self._cond:
            self._accepted += 1
        return True

    @property
    def pending(self) -> int:
        """Events accepted but not yet committed."""
        with self._cond:
            return self._accepted - self._settled

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything accepted so far is committed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            while self._settled < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return self._settled >= target
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, stop the thread and close the store (SIGTERM). False if events were left unwritten."""
        flushed = self.flush(timeout) if self._thread.is_alive() else self.pending == 0
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(1.0, timeout))
        left = self.pending
        if left:
            log.error("store_writer_closed_with_unwritten_events", events=left, error=self.last_error)
        self.store.close()
        log.info("store_writer_stopped", unwritten=left, dropped=self.dropped)
        return flushed and left == 0

    # --- the thread ---------------------------------------------------------------------------

    def _collect(self, wait: float) -> int:
        """Move up to one batch from the queue into the merger; returns how many events."""
        merger, q = self._merger, self._queue
        room = min(self.batch_size, self.max_pending - len(merger))
        if room <= 0:
            self._stop.wait(wait)
            return 0
        try:
            first = q.get(timeout=wait) if wait > 0 else q.get_nowait()
        except queue.Empty:
            return 0
        merger.add(first)
        taken = 1
        deadline = time.monotonic() + self.max_delay
        while taken < room:
            try:
                event = q.get_nowait()
            except queue.Empty:
                if time.monotonic() >= deadline or self._stop.is_set():
                    break
                try:
                    event = q.get(timeout=min(0.02, max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    continue
            merger.add(event)
            taken += 1
        return taken

    def _commit(self) -> bool:
        merger = self._merger
        events = len(merger)
        if not events:
            return True
        segments = merger.drain()
        started = time.perf_counter()
        try:
            written = self.store.write_sessions(segments)
        except (sqlite3.Error, OSError) as exc:
            for seg in segments:
                merger.add_session(seg)
            reason = error_reason(exc)
            self._failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.metrics.store_write_errors.labels(reason=reason).inc()
            log.error("store_write_failed", reason=reason, error=str(exc), pending_events=self.pending,
                      attempt=self._failures)
            return False
        self.metrics.store_write_latency.observe(time.perf_counter() - started)
        self.metrics.store_writes.inc(written)
        if self._failures:
            log.info("store_write_resumed", after_failures=self._failures, sessions=written)
            self._failures = 0
            self.last_error = None
        with self._cond:
            self._settled += events
            self._cond.notify_all()
        return True

    def _maybe_purge(self) -> None:
        if self.retention_days is None or time.monotonic() < self._next_purge_check:
            return
        self._next_purge_check = time.monotonic() + HOUR
        try:
            if self.store.purge_due():
                self.store.purge(self.retention_days)
        except (sqlite3.Error, OSError) as exc:
            self.metrics.store_write_errors.labels(reason=error_reason(exc)).inc()
            log.error("store_purge_failed", error=str(exc))

    def _run(self) -> None:
        delay = self.retry_initial
        retry_at = 0.0
        while True:
            stopping = self._stop.is_set()
            if self._failures and time.monotonic() < retry_at:
                if stopping:
                    return  # close() gave up waiting; the unwritten count is logged there
                # keep accepting into memory (bounded) while waiting to retry
                self._collect(max(0.001, min(0.1, retry_at - time.monotonic())))
                self.metrics.store_queue_depth.set(self._queue.qsize())
                continue
            self._collect(0.0 if (self._failures or len(self._merger)) else 0.1)
            self.metrics.store_queue_depth.set(self._queue.qsize())
            if len(self._merger):
                if self._commit():
                    delay = self.retry_initial
                else:
                    retry_at = time.monotonic() + delay
                    delay = min(delay * 2, self.retry_max)
                    continue
            if stopping and self._queue.empty() and not len(self._merger):
                return
            self._maybe_purge()
