"""Bounded per-flow state: what was already reported, DNS answers, and TCP reassembly.

Every table here grows with traffic, so every table has a hard cap; when
full, the oldest entry goes and `flow_evictions{table}` counts it. Dicts keep
insertion order, so "oldest" is the first key and eviction is O(1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.capture.tls import MAX_CLIENT_HELLO


class SeenFlows:
    """One observation per flow, signal and name: later packets of the same flow report nothing."""

    def __init__(self, cap: int = 65536, idle_timeout: float = 300.0,
                 on_evict: Callable[[], None] | None = None):
        self.cap = cap
        self.idle_timeout = idle_timeout
        self._seen: dict[tuple, float] = {}
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._seen)

    def first(self, key: tuple, now: float) -> bool:
        """True the first time `key` is seen (or again after it went idle)."""
        seen = self._seen
        last = seen.pop(key, None)  # re-insert to keep the dict ordered by last activity
        seen[key] = now
        if last is not None and now - last < self.idle_timeout:
            return False
        if len(seen) > self.cap:
            del seen[next(iter(seen))]
            if self._on_evict:
                self._on_evict()
        return True

    def expire(self, now: float) -> None:
        cutoff = now - self.idle_timeout
        seen = self._seen
        while seen:
            key = next(iter(seen))
            if seen[key] >= cutoff:
                break
            del seen[key]


class DnsAnswers:
    """Address -> the name a client asked for, from DNS answers, for a bounded time and number."""

    def __init__(self, cap: int = 65536, max_ttl: float = 3600.0, min_ttl: float = 60.0,
                 on_evict: Callable[[], None] | None = None):
        self.cap = cap
        self.max_ttl = max_ttl
        self.min_ttl = min_ttl
        self._names: dict[bytes, tuple[str, float]] = {}
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._names)

    def remember(self, address: bytes, name: str, ttl: int, now: float) -> None:
        names = self._names
        names.pop(address, None)
        names[address] = (name, now + min(max(ttl, self.min_ttl), self.max_ttl))
        if len(names) > self.cap:
            del names[next(iter(names))]
            if self._on_evict:
                self._on_evict()

    def name_for(self, address: bytes, now: float) -> str | None:
        hit = self._names.get(address)
        if hit is None or hit[1] < now:
            return None
        return hit[0]


@dataclass(slots=True)
class PendingStream:
    """The first bytes a client sends on a TCP connection, gathered until a name can be read."""

    next_seq: int  # sequence number of the first byte we expect (ISN + 1, or the first segment)
    last_seen: float
    segments: dict[int, bytes] = field(default_factory=dict)
    size: int = 0
    syn_only: bool = True  # created from a SYN: we do not know yet what the client will send

    def add(self, seq: int, data: bytes, limit: int) -> None:
        offset = (seq - self.next_seq) & 0xFFFFFFFF
        if offset >= limit or not data:
            return  # retransmission of earlier bytes, or far beyond what a ClientHello needs
        old = self.segments.get(offset)
        if old is None or len(old) < len(data):
            self.segments[offset] = data
            self.size += len(data) - (len(old) if old else 0)

    def contiguous(self) -> bytes:
        segs = self.segments
        if 0 not in segs:
            return b""
        if len(segs) == 1:
            return segs[0]
        out = bytearray()
        for offset in sorted(segs):
            if offset > len(out):
                break
            data = segs[offset]
            if offset + len(data) > len(out):
                out += data[len(out) - offset :]
        return bytes(out)


class TcpReassembly:
    """Client-to-server byte streams of connections whose first request is not yet readable."""

    def __init__(self, cap: int = 16384, max_bytes: int = MAX_CLIENT_HELLO + 5 * 16,
                 idle_timeout: float = 30.0, on_evict: Callable[[], None] | None = None):
        self.cap = cap
        self.max_bytes = max_bytes
        self.idle_timeout = idle_timeout
        self.streams: dict[tuple, PendingStream] = {}
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self.streams)

    def open(self, key: tuple, next_seq: int, now: float, syn_only: bool) -> PendingStream:
        streams = self.streams
        stream = streams[key] = PendingStream(next_seq, now, syn_only=syn_only)
        if len(streams) > self.cap:
            del streams[next(iter(streams))]
            if self._on_evict:
                self._on_evict()
        return stream

    def expire(self, now: float) -> None:
        cutoff = now - self.idle_timeout
        for key in [k for k, s in self.streams.items() if s.last_seen < cutoff]:
            del self.streams[key]
