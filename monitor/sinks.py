"""Where recordable events go, without ever blocking the caller (the proxy's event loop, the sensor).

A `Sink` takes an event with `submit(event) -> bool`: True when it was
accepted, False when it was dropped because a bounded queue was full (each
sink counts its own drops; the pipeline counts both outcomes). `close` flushes
and stops its thread. The store writer (monitor.store.writer.StoreWriter) is
one; `JsonLinesSink` writes ECS JSON lines from its own thread, for a SIEM or
log shipper and for tests that run a real mitmdump. `open_sinks` opens the
set a config asks for, the same way for the daemon and the proxy addon.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import structlog

from monitor.metrics.registry import Metrics
from monitor.observation import AccessEvent

if TYPE_CHECKING:
    from monitor.config.loader import Config

log = structlog.get_logger("social_monitor.sink")
_STOP = object()


@runtime_checkable
class Sink(Protocol):
    """Takes recordable events; neither method may block the event loop for long."""

    def submit(self, event: AccessEvent) -> bool:
        """Accept or drop (False, counted) one event at once."""
        ...

    def close(self, timeout: float = 5.0) -> bool:
        """Write what was accepted and stop (bounded wait); False if some was left unwritten."""
        ...


class JsonLinesSink:
    """Appends `event.to_ecs()` as one JSON line per event, from a writer thread fed by a bounded queue."""

    def __init__(self, path: str | Path, metrics: Metrics | None = None, queue_size: int = 10000):
        self.path = Path(path)
        self.metrics = metrics
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="social-monitor-jsonl", daemon=True)
        self._thread.start()

    def submit(self, event: AccessEvent) -> bool:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            if self.metrics is not None:
                self.metrics.store_queue_dropped.inc()
            return False
        return True

    @property
    def alive(self) -> bool:
        """False once the writing thread has ended (closed, or died: then nothing more is written)."""
        return self._thread.is_alive()

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

    def close(self, timeout: float = 5.0) -> bool:
        """Flush what is queued and stop the thread (bounded wait)."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("jsonl_close_timeout", path=str(self.path), pending=self._queue.qsize())
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()


@dataclass
class SinkSet:
    """The sinks a config asks for, opened: the store's and the optional JSON-lines file.

    Itself a Sink: an event is accepted if any of them accepted it."""

    store: Sink | None = None
    events_jsonl: Sink | None = None
    _open: list[Sink] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._open = [sink for sink in (self.store, self.events_jsonl) if sink is not None]

    @property
    def empty(self) -> bool:
        return not self._open

    @property
    def alive(self) -> bool:
        """True while every sink's thread runs (the daemon's watchdog); a sink without `alive` has none."""
        return all(getattr(sink, "alive", True) for sink in self._open)

    def counts_accesses(self) -> bool:
        """The store's writer counts each access it stores (monitor.tagging.counting says why)."""
        return bool(getattr(self.store, "counts_accesses", False))

    def submit(self, event: AccessEvent) -> bool:
        accepted = False
        for sink in self._open:
            accepted = sink.submit(event) or accepted
        return accepted

    def close(self, timeout: float = 5.0) -> bool:
        """Close each one (each within `timeout`); False if any left events unwritten."""
        results = [sink.close(timeout) for sink in self._open]
        return all(results)


def open_store_writer(config: Config, metrics: Metrics) -> Sink:
    """Open the config's store and start its writer thread; StoreError when it cannot be opened.

    The writer purges by retention too (the store records its last purge, so several writing
    processes purge once a day between them): a proxy-only gateway must not keep data forever."""
    from monitor.store.writer import StoreWriter

    return StoreWriter.from_config(config, metrics).start()


def open_sinks(
    config: Config,
    metrics: Metrics,
    *,
    store: bool = True,
    events_jsonl: str | Path = "",
    open_store: Callable[[Config, Metrics], Sink | None] = open_store_writer,
) -> SinkSet:
    """The sinks for a config: its store's writer (unless `store` is off) and, when a path is
    given, a JSON-lines file. `open_store` opens the store's sink (tests inject one)."""
    store_sink = open_store(config, metrics) if store else None
    jsonl = JsonLinesSink(events_jsonl, metrics, config.model.store.queue_size) if events_jsonl else None
    return SinkSet(store_sink, jsonl)
