"""Live capture in a thread: interfaces -> Sensor -> callbacks, with counters the daemon can scrape.

`LiveCapture(sensor, ["eth1", "eth2"]).start()` opens every interface with
the kernel pre-filter, reads them from one thread and feeds the sensor; the
sensor's callbacks (observations, DHCP bindings) run in that thread, so they
must hand work over (a queue) rather than block. `stop()` ends it cleanly.
Packets read and kernel drops (PACKET_STATISTICS) go to the sensor's
`CaptureCounters` every `stats_interval` (in the daemon, the
`social_monitor_packets_total` and `social_monitor_kernel_dropped_packets`
series).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from monitor.capture.bpf import capture_filter
from monitor.capture.sensor import Sensor
from monitor.capture.sources import LiveInterface, live_frames


class LiveCapture:
    def __init__(self, sensor: Sensor, interfaces: list[str], *, extra_filter: str | None = None,
                 use_filter: bool = True, stats_interval: float = 10.0,
                 on_stats: Callable[[LiveCapture], None] | None = None):
        if not interfaces:
            raise ValueError("no interface to capture on")
        self.sensor = sensor
        self.names = list(interfaces)
        self.extra_filter = extra_filter
        self.use_filter = use_filter
        self.stats_interval = stats_interval
        self.on_stats = on_stats
        self.packets: dict[str, int] = dict.fromkeys(self.names, 0)
        self.dropped: dict[str, int] = dict.fromkeys(self.names, 0)
        self._published: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._interfaces: list[LiveInterface] = []
        self.error: BaseException | None = None

    def open(self) -> None:
        """Open the interfaces (raises UserError naming the interface that fails)."""
        def bpf(linktype: int) -> str | None:
            return capture_filter(linktype, self.extra_filter) if self.use_filter else None

        try:
            for name in self.names:
                self._interfaces.append(LiveInterface(name, bpf))
        except BaseException:
            self.close()
            raise

    def run(self) -> None:
        """Capture until stop() (or a signal handler setting it); call from any one thread."""
        if not self._interfaces:
            self.open()
        next_stats = time.monotonic() + self.stats_interval
        feed = self.sensor.feed

        def idle() -> None:
            nonlocal next_stats
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.stats_interval
                self.update_stats()

        packets = self.packets
        try:
            for iface, (ts, linktype, frame) in live_frames(self._interfaces, self._stop, on_idle=idle):
                packets[iface.name] += 1
                feed(ts, linktype, frame)
        finally:
            self.update_stats()
            self.close()

    def update_stats(self) -> None:
        # The packet counters are plain ints on the hot path, published here (a Prometheus
        # counter takes a lock on every inc()).
        counters = self.sensor.counters
        for name, count in self.packets.items():
            counters.packet_counter(name)(count - self._published.get(name, 0))
            self._published[name] = count
        for iface in self._interfaces:
            _received, dropped = iface.statistics()
            self.dropped[iface.name] = dropped
            counters.dropped_setter(iface.name)(dropped)
        if self.on_stats is not None:
            self.on_stats(self)

    def start(self) -> None:
        """Open now (so errors reach the caller), then capture in a daemon thread."""
        self.open()

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # kept for the supervisor to read and restart
                self.error = exc

        self._thread = threading.Thread(target=target, name="sensor-capture", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def request_stop(self) -> None:
        """Safe from a signal handler: the loop notices within its poll interval."""
        self._stop.set()

    def close(self) -> None:
        for iface in self._interfaces:
            iface.close()
        self._interfaces = []
