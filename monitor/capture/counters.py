"""What the sensor counts, through an interface the capture package owns.

The sensor and the live capture report parse errors, table evictions,
packets and kernel drops to a `CaptureCounters`; whoever runs them decides
where the counts go. The daemon passes `monitor.metrics.registry.SensorMetrics`
(Prometheus series); the CLI and tests get `PlainCounters` (integers).

Each method is called once per label and returns the function to call later,
so the hot path still makes a single call per count (a bound `Counter.inc` in
the daemon). Counts are pushed as they happen rather than read by a collector
at scrape time because in multi-process mode the daemon's endpoint serves only
what the processes wrote to the metrics directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Increment = Callable[[], None]
"""Count one more (a parse error, an eviction)."""
Amount = Callable[[int], None]
"""Add packets to a counter, or set a gauge to the kernel's drop count."""


@runtime_checkable
class CaptureCounters(Protocol):
    """Where the sensor's counts go, one bound function per label."""

    def parse_error_counter(self, protocol: str) -> Increment:
        """Malformed packets meant for `protocol` (dns, tls, quic, http, dhcp, packet, fragment, tunnel)."""
        ...

    def eviction_counter(self, table: str) -> Increment:
        """Entries pushed out of a full table: flows, dns_answers, tcp_reassembly (by count),
        tcp_reassembly_bytes (by total bytes), tcp_stream_bytes (a stream over its own byte
        cap), quic_initials, ip_fragments (datagrams under reassembly; see docs/capture.md)."""
        ...

    def packet_counter(self, interface: str) -> Amount:
        """Packets read from a live interface, added in batches."""
        ...

    def dropped_setter(self, interface: str) -> Amount:
        """The kernel's running total of packets it dropped on an interface."""
        ...


@dataclass
class PlainCounters:
    """Counts as integers keyed by (kind, label), for a sensor run without Prometheus."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def _adder(self, key: tuple[str, str]) -> Callable[..., None]:
        """An Amount whose amount defaults to 1, so it serves as an Increment too."""
        counts = self.counts
        counts.setdefault(key, 0)

        def add(amount: int = 1) -> None:
            counts[key] += amount

        return add

    def parse_error_counter(self, protocol: str) -> Increment:
        return self._adder(("parse_errors", protocol))

    def eviction_counter(self, table: str) -> Increment:
        return self._adder(("evictions", table))

    def packet_counter(self, interface: str) -> Amount:
        return self._adder(("packets", interface))

    def dropped_setter(self, interface: str) -> Amount:
        counts = self.counts
        key = ("kernel_dropped", interface)
        counts.setdefault(key, 0)

        def set_total(total: int) -> None:
            counts[key] = total

        return set_total
