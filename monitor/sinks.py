"""Sinks for recordable events that never block the caller (the proxy's event loop).

A sink is `callable(event) -> bool`: True when the event was accepted, False
when it was dropped because a bounded queue was full. The pipeline counts
both outcomes. `JsonLinesSink` writes ECS JSON lines from its own thread, for
a SIEM or log shipper and for tests that run a real mitmdump; `StoreSink`
wraps the store's writer thread (monitor.store.writer). `FanOut` feeds several sinks.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from monitor.config.loader import Config
from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent

Sink = Callable[[AccessEvent], bool]
log = structlog.get_logger("social_monitor.sink")
_STOP = object()


class JsonLinesSink:
    """Appends `event.to_ecs()` as one JSON line per event, from a writer thread fed by a bounded queue."""

    def __init__(self, path: str | Path, metrics: Metrics | None = None, queue_size: int = 10000):
        self.path = Path(path)
        self.metrics = metrics
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="social-monitor-jsonl", daemon=True)
        self._thread.start()

    def __call__(self, event: AccessEvent) -> bool:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            if self.metrics is not None:
                self.metrics.store_queue_dropped.inc()
            return False
        return True

    def _run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                try:
                    assert isinstance(item, AccessEvent)
                    out.write(json.dumps(item.to_ecs(), separators=(",", ":")) + "\n")
                    if self._queue.empty():
                        out.flush()
                except Exception as exc:  # a bad event must not stop the writer
                    if self.metrics is not None:
                        self.metrics.store_write_errors.labels("jsonl").inc()
                    log.error("jsonl_write_failed", path=str(self.path), error=repr(exc))

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued and stop the thread (bounded wait)."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("jsonl_close_timeout", path=str(self.path), pending=self._queue.qsize())
            return
        self._thread.join(timeout)


class FanOut:
    """Hands each event to every sink; accepted if any sink accepted it."""

    def __init__(self, sinks: Sequence[Sink]):
        self.sinks = list(sinks)

    def __call__(self, event: AccessEvent) -> bool:
        accepted = False
        for sink in self.sinks:
            accepted = sink(event) or accepted
        return accepted

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()


def close_sink(sink: object) -> None:
    """Close a sink if it can be closed (writer threads flush and stop)."""
    close = getattr(sink, "close", None)
    if close is not None:
        close()


class StoreSink:
    """The store writer (monitor.store.writer) as a sink: `submit` never blocks, `close` flushes."""

    def __init__(self, writer: Any):
        self.writer = writer

    def __call__(self, event: AccessEvent) -> bool:
        return bool(self.writer.submit(event))

    def close(self, timeout: float = 5.0) -> None:
        self.writer.close(timeout)


def open_store_sink(config: Config, metrics: Metrics) -> StoreSink:
    """Open the config's store and start its writer thread; StoreError when it cannot be opened.

    The writer purges by retention too (the store records its last purge, so several writing
    processes purge once a day between them): a proxy-only gateway must not keep data forever."""
    from monitor.store.writer import StoreWriter

    return StoreSink(StoreWriter.from_config(config, metrics).start())
