"""The daemon's coverage recorder: what was observed, interval by interval, into the store's chain.

Every `sample_every` seconds a thread looks at what is up (each capture
interface, the sensor, the proxy, the storage gate) and adds the elapsed time
to the open interval; every `interval` seconds of wall-clock time (aligned to
multiples of it, so 11:35:00 to 11:40:00), and once more when the daemon stops,
it closes the interval with the increase of the counters the metrics endpoint
serves (`Totals.read`: packets, kernel drops, parse errors, observations the
DPIA gate refused, writer queue drops, obscured flows by kind) and hands it to
`write` (`monitor.store.coverage.append_to_file`). Reading the very series
Prometheus scrapes means the ledger and a dashboard cannot disagree: over a
window without a restart, the ledger's sums are the counters' increases.

The same samples drive two gauges per school for the "unmonitored" alert:
`social_monitor_school_observed` (a capture interface or the proxy is up) and
`social_monitor_school_day` (the timetable says it is a school day, within its
hours). A failed write is counted and logged; the interval is kept and retried
with the next one (bounded), so a locked store loses no coverage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.store.coverage import Interval

log = structlog.get_logger("social_monitor.ledger")
MAX_UNWRITTEN = 288  # intervals held while the store refuses them: a day of 5-minute intervals


@dataclass(slots=True)
class Totals:
    """Running totals of the counters the ledger takes its increases from."""

    packets: dict[str, float] = field(default_factory=dict)  # interface label -> packets read
    kernel_drops: dict[str, float] = field(default_factory=dict)  # interface label -> dropped by the kernel
    parse_errors: float = 0.0
    observations: float = 0.0
    refused: float = 0.0  # observations with outcome not_stored (the DPIA gate)
    queue_dropped: float = 0.0
    obscured: dict[str, float] = field(default_factory=dict)  # kind -> flows

    @classmethod
    def read(cls, families: Iterable[Any]) -> Totals:
        """From `registry.collect()` (prometheus-client metric families; multi-process: every process)."""
        t = cls()
        for family in families:
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, float(sample.value)
                if name == "social_monitor_packets_total":
                    _add(t.packets, labels.get("interface", ""), value)
                elif name == "social_monitor_kernel_dropped_packets":
                    _add(t.kernel_drops, labels.get("interface", ""), value)
                elif name == "social_monitor_parse_errors_total":
                    t.parse_errors += value
                elif name == "social_monitor_observations_total":
                    t.observations += value
                    if labels.get("outcome") == "not_stored":
                        t.refused += value
                elif name == "social_monitor_store_queue_dropped_total":
                    t.queue_dropped += value
                elif name == "social_monitor_obscured_flows_total":
                    _add(t.obscured, labels.get("kind", ""), value)
        return t


def _add(into: dict[str, float], key: str, value: float) -> None:
    into[key] = into.get(key, 0.0) + value


def _rise(after: float, before: float) -> int:
    """The increase of a running total (never negative: a total that went back is a reset, counted from 0)."""
    return round(after - before) if after >= before else round(after)


@dataclass
class Sources:
    """Where the recorder looks; each a cheap call, made from the recorder's thread."""

    totals: Callable[[], Totals]
    interfaces: Callable[[], dict[str, bool]]  # capture label -> up now ({} when not capturing live)
    sensor: Callable[[], tuple[str, bool]]  # (live | file | off, running now)
    proxy: Callable[[], bool | None]  # None: no proxy configured; else listening now
    storage_refused: Callable[[], bool]  # the DPIA gate is shut now
    write: Callable[[Interval], object]  # append one closed interval to the store
    school_days: Callable[[float], dict[str, bool]] = lambda _now: {}  # school -> in its school day
    metrics: Any = None  # monitor.metrics.registry.Metrics, for the gauges and the interval counter


class CoverageRecorder:
    def __init__(self, sources: Sources, interval: float = 300.0, *, sample_every: float = 1.0,
                 clock: Callable[[], float] = time.time):
        self.sources = sources
        self.interval = float(interval)
        self.sample_every = sample_every
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.unwritten: list[Interval] = []
        self.written = 0
        self._open: Interval | None = None
        self._baseline = Totals()
        self._last_sample = 0.0

    # --- life cycle ---------------------------------------------------------------------------

    def begin(self) -> None:
        """Open the first interval now (before capture starts, so its first packet is counted in it)."""
        now = self.clock()
        self._baseline = self.sources.totals()
        self._open = self._new_interval(now)
        self._last_sample = now

    def start(self) -> CoverageRecorder:
        if self._open is None:
            self.begin()
        self._thread = threading.Thread(target=self._run, name="coverage-ledger", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the open interval where it stands and write it (the daemon stops: a gap follows)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            if self._open is not None:
                now = self.clock()
                self.tick(now)  # a boundary passed since the last tick closes its interval first
                if now > self._open.start:  # nothing of an interval that has only just opened
                    self._close(now)
                self._open = None
            self._flush()

    def _run(self) -> None:
        while not self._stop.wait(self.sample_every):
            with self._lock:
                try:
                    self.tick(self.clock())
                except Exception as exc:  # the ledger must never take the daemon down
                    log.error("coverage_failed", error=repr(exc))

    # --- the work -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """One sample; close the interval when its boundary has passed."""
        current = self._open
        if current is None:
            return
        boundary = self._boundary_after(current.start)
        while now >= boundary:  # more than one when the process was stalled (SIGSTOP, a suspended VM)
            self.sample(boundary)
            self._close(boundary)
            self._open = self._new_interval(boundary)
            boundary += self.interval
        self.sample(now)
        self._flush()

    def sample(self, now: float) -> None:
        """Credit the time since the last sample to what is up now (a change is seen within one sample)."""
        current = self._open
        if current is None:
            return
        elapsed = max(0.0, now - self._last_sample)
        self._last_sample = max(self._last_sample, now)
        src = self.sources
        interfaces = src.interfaces()
        for label, up in interfaces.items():
            entry = current.interfaces.setdefault(label, {"up_seconds": 0.0, "packets": 0, "kernel_drops": 0})
            if up:
                entry["up_seconds"] += elapsed
        mode, running = src.sensor()
        current.sensor = mode
        if running and mode != "off":
            current.sensor_up_seconds += elapsed
        proxy = src.proxy()
        current.proxy = proxy is not None
        if proxy:
            current.proxy_up_seconds += elapsed
        if src.storage_refused():
            current.storage_refused = True
        metrics = src.metrics
        if metrics is not None:
            observed = 1 if any(interfaces.values()) or (running and mode == "file") or bool(proxy) else 0
            for school, in_day in src.school_days(now).items():
                metrics.school_observed.labels(school).set(observed)
                metrics.school_day.labels(school).set(1 if in_day else 0)

    def _boundary_after(self, start: float) -> float:
        return (start // self.interval + 1) * self.interval

    def _new_interval(self, start: float) -> Interval:
        return Interval(start, start, sensor=self.sources.sensor()[0],
                        proxy=self.sources.proxy() is not None)

    def _close(self, end: float) -> None:
        current = self._open
        assert current is not None
        totals = self.sources.totals()
        before = self._baseline
        current.end = end
        for label in set(totals.packets) | set(totals.kernel_drops):
            entry = current.interfaces.setdefault(label, {"up_seconds": 0.0, "packets": 0, "kernel_drops": 0})
            entry["packets"] = _rise(totals.packets.get(label, 0.0), before.packets.get(label, 0.0))
            entry["kernel_drops"] = _rise(totals.kernel_drops.get(label, 0.0),
                                          before.kernel_drops.get(label, 0.0))
        for entry in current.interfaces.values():
            entry["up_seconds"] = round(min(entry["up_seconds"], current.seconds), 3)
        current.sensor_up_seconds = min(current.sensor_up_seconds, current.seconds)
        current.proxy_up_seconds = min(current.proxy_up_seconds, current.seconds)
        current.parse_errors = _rise(totals.parse_errors, before.parse_errors)
        current.observations = _rise(totals.observations, before.observations)
        current.refused = _rise(totals.refused, before.refused)
        current.queue_dropped = _rise(totals.queue_dropped, before.queue_dropped)
        current.obscured = {kind: n for kind in sorted(totals.obscured)
                            if (n := _rise(totals.obscured[kind], before.obscured.get(kind, 0.0)))}
        self._baseline = totals
        self.unwritten.append(current)
        del self.unwritten[:-MAX_UNWRITTEN]

    def _flush(self) -> None:
        """Write what is closed, oldest first; stop at the first failure (kept for the next turn)."""
        metrics = self.sources.metrics
        while self.unwritten:
            interval = self.unwritten[0]
            try:
                self.sources.write(interval)
            except Exception as exc:
                if metrics is not None:
                    metrics.coverage_intervals.labels("failed").inc()
                log.error("coverage_write_failed", error=str(exc), held=len(self.unwritten))
                return
            self.unwritten.pop(0)
            self.written += 1
            if metrics is not None:
                metrics.coverage_intervals.labels("written").inc()


__all__ = ["MAX_UNWRITTEN", "CoverageRecorder", "Sources", "Totals"]
