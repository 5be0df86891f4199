"""Bounded per-flow state: what was already reported, DNS answers, and TCP reassembly.

Every table here grows with traffic, so every table has a hard cap; when
full, the oldest entry goes and `flow_evictions{table}` counts it. The tables
are `OrderedDict`s so that dropping the oldest is O(1): a plain dict's first
key sits behind the dead slots its deletions leave, so `next(iter(d))` walks
them all (34 to 134 us per new flow at the cap instead of under 1 us).

TCP reassembly is bounded in bytes as well as in connections: each stream
holds at most `max_bytes` (a whole ClientHello and its record headers), in
order or not, and the table at most `max_total_bytes`, counting each
out-of-order segment's bookkeeping too. See docs/capture.md.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from monitor.capture.http import HeadScanner
from monitor.capture.tls import MAX_CLIENT_HELLO, HelloReader

MAX_OUT_OF_ORDER: Final = 128  # segments a stream may hold past a hole (a 64 KiB hello is 45 at 1460)
SEGMENT_OVERHEAD: Final = 160  # bytes of Python objects behind each held segment, charged to the table
STREAM_BYTES: Final = MAX_CLIENT_HELLO + 5 * 16  # the largest ClientHello and its record headers
TABLE_BYTES: Final = 32 << 20  # all streams together

class SeenFlows:
    """One observation per flow, signal and name: later packets of the same flow report nothing."""

    def __init__(self, cap: int = 65536, idle_timeout: float = 300.0,
                 on_evict: Callable[[], None] | None = None):
        self.cap = cap
        self.idle_timeout = idle_timeout
        self._seen: OrderedDict[tuple, float] = OrderedDict()
        self._last_seen = self._seen.get  # bound once: an OrderedDict's method lookup is slow
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._seen)

    def first(self, key: tuple, now: float) -> bool:
        """True the first time `key` is seen (or again after it went idle)."""
        seen = self._seen
        last = self._last_seen(key)
        seen[key] = now
        if last is not None:
            seen.move_to_end(key)  # ordered by last activity
            if now - last < self.idle_timeout:
                return False
        elif len(seen) > self.cap:
            seen.popitem(last=False)
            if self._on_evict:
                self._on_evict()
        return True

    def expire(self, now: float) -> None:
        cutoff = now - self.idle_timeout
        seen = self._seen
        while seen:
            key = next(iter(seen))  # O(1) on an OrderedDict
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
        self._names: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._names)

    def remember(self, address: bytes, name: str, ttl: int, now: float) -> None:
        names = self._names
        names[address] = (name, now + min(max(ttl, self.min_ttl), self.max_ttl))
        names.move_to_end(address)  # the latest answer is the newest entry
        if len(names) > self.cap:
            names.popitem(last=False)
            if self._on_evict:
                self._on_evict()

    def name_for(self, address: bytes, now: float) -> str | None:
        hit = self._names.get(address)
        if hit is None or hit[1] < now:
            return None
        return hit[0]


@dataclass(slots=True)
class PendingStream:
    """The first bytes a client sends on a TCP connection, gathered until a name can be read.

    Bytes in order are appended to `data` once; a segment past a hole waits in
    `later` until the hole is filled. `need` is how long `data` must be before
    its reader (TLS records or an HTTP head) can get any further, so a segment
    that does not reach it costs no parsing at all.
    """

    next_seq: int  # sequence number of the first byte (ISN + 1, or the first segment seen)
    last_seen: float
    data: bytearray = field(default_factory=bytearray)
    later: dict[int, bytes] | None = None  # offset -> segment, past a hole
    offsets: list[int] | None = None  # heap of `later`'s offsets, lowest first
    size: int = 0  # payload bytes held, in `data` and `later`: at most the stream's limit
    need: int = 4  # look at `data` again once it is this long (4 bytes tell TLS from HTTP)
    reader: HelloReader | HeadScanner | None = None  # None until the first bytes are in

    @property
    def cost(self) -> int:
        """What the stream counts against the table's byte budget."""
        return self.size + SEGMENT_OVERHEAD * len(self.later) if self.later else self.size

    def add(self, seq: int, buf: bytes, limit: int, start: int = 0, stop: int = -1) -> int | None:
        """Store the segment `buf[start:stop]` (all of `buf` by default: the sensor passes the
        whole frame, so that bytes already held are never copied); the change in `cost`, or
        None (and nothing stored) when the stream would then hold more than `limit` bytes."""
        if stop < 0:
            stop = len(buf)
        offset = (seq - self.next_seq) & 0xFFFFFFFF
        if offset >= limit or stop <= start:
            return 0  # retransmission of bytes before the start, or beyond what a ClientHello needs
        data = self.data
        have = len(data)
        end = min(offset + stop - start, limit)  # stream offset just past what may be kept
        if offset > have:
            return self._hold(offset, buf[start : start + end - offset], limit)
        if end <= have:
            return 0  # all of it is here already
        grown = end - have
        if self.size + grown > limit:
            return None  # held segments past a hole already fill the stream's budget
        data += buf[start + have - offset : start + end - offset]
        self.size += grown
        if self.offsets and self.offsets[0] <= end:
            grown += self._merge()  # merging never adds to the size: the held bytes were counted
        return grown

    def _hold(self, offset: int, segment: bytes, limit: int) -> int | None:
        later, offsets = self.later, self.offsets
        if later is None or offsets is None:
            later, offsets = self.later, self.offsets = {}, []
        old = later.get(offset)
        grown = len(segment) - (len(old) if old is not None else 0)
        if grown <= 0:
            return 0  # a copy of a segment already held
        if self.size + grown > limit or (old is None and len(later) >= MAX_OUT_OF_ORDER):
            return None
        later[offset] = segment
        self.size += grown
        if old is not None:
            return grown
        heapq.heappush(offsets, offset)
        return grown + SEGMENT_OVERHEAD

    def _merge(self) -> int:
        """Move the held segments the in-order bytes now reach onto them; the change in cost."""
        data, later, offsets = self.data, self.later, self.offsets
        assert later is not None and offsets is not None
        change = 0
        while offsets and offsets[0] <= len(data):
            offset = heapq.heappop(offsets)
            segment = later.pop(offset)
            self.size -= len(segment)
            change -= len(segment) + SEGMENT_OVERHEAD
            tail = offset + len(segment) - len(data)
            if tail > 0:
                data += segment[-tail:]
                self.size += tail
                change += tail
        return change


class TcpReassembly:
    """Client-to-server byte streams of connections whose first request is not yet readable.

    Bounded three ways: `cap` streams (the oldest goes, `on_evict`), `max_bytes`
    per stream (a stream that would hold more is dropped, `on_overflow`) and
    `max_total_bytes` for all of them (the oldest go until the rest fit,
    `on_bytes_evict`).
    """

    def __init__(self, cap: int = 16384, max_bytes: int = STREAM_BYTES,
                 idle_timeout: float = 30.0, on_evict: Callable[[], None] | None = None, *,
                 max_total_bytes: int = TABLE_BYTES, on_overflow: Callable[[], None] | None = None,
                 on_bytes_evict: Callable[[], None] | None = None):
        if max_total_bytes < max_bytes + SEGMENT_OVERHEAD * MAX_OUT_OF_ORDER:
            raise ValueError("the table's byte budget must hold at least one whole stream")
        self.cap = cap
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.idle_timeout = idle_timeout
        self.streams: OrderedDict[tuple, PendingStream] = OrderedDict()
        self.total_bytes = 0  # the sum of the streams' `cost`
        self._on_evict = on_evict
        self._on_overflow = on_overflow
        self._on_bytes_evict = on_bytes_evict

    def __len__(self) -> int:
        return len(self.streams)

    def open(self, key: tuple, next_seq: int, now: float) -> PendingStream:
        """A new, empty stream for `key` (replacing any it had), the newest in the table."""
        streams = self.streams
        self.drop(key)
        stream = streams[key] = PendingStream(next_seq, now)
        if len(streams) > self.cap:
            self.total_bytes -= streams.popitem(last=False)[1].cost
            if self._on_evict:
                self._on_evict()
        return stream

    def add(self, key: tuple, stream: PendingStream, seq: int, buf: bytes, start: int = 0,
            stop: int = -1) -> bool:
        """Store `buf[start:stop]` in `stream`; False when that put it over its cap and it was
        dropped."""
        change = stream.add(seq, buf, self.max_bytes, start, stop)
        if change is None:
            self.drop(key)
            if self._on_overflow:
                self._on_overflow()
            return False
        self.total_bytes += change
        if self.total_bytes > self.max_total_bytes:
            self._make_room(key)
        return True

    def drop(self, key: tuple) -> None:
        stream = self.streams.pop(key, None)
        if stream is not None:
            self.total_bytes -= stream.cost

    def _make_room(self, keep: tuple) -> None:
        """Drop the oldest streams, but not `keep`, until the table is within its byte budget."""
        streams = self.streams
        while self.total_bytes > self.max_total_bytes and len(streams) > 1:
            key, stream = streams.popitem(last=False)
            if key == keep:
                streams[key] = stream  # the one just added to stays, as the newest
                continue
            self.total_bytes -= stream.cost
            if self._on_bytes_evict:
                self._on_bytes_evict()

    def expire(self, now: float) -> None:
        cutoff = now - self.idle_timeout
        for key in [k for k, s in self.streams.items() if s.last_seen < cutoff]:
            self.drop(key)
