"""Bounded per-flow state: each reported flow's life, DNS answers, and TCP reassembly.

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
from dataclasses import dataclass, field, replace
from typing import Final

from monitor.capture.http import HeadScanner
from monitor.capture.tls import MAX_CLIENT_HELLO, HelloReader
from monitor.observation import Observation

MAX_OUT_OF_ORDER: Final = 128  # segments a stream may hold past a hole (a 64 KiB hello is 45 at 1460)
SEGMENT_OVERHEAD: Final = 160  # bytes of Python objects behind each held segment, charged to the table
STREAM_BYTES: Final = MAX_CLIENT_HELLO + 5 * 16  # the largest ClientHello and its record headers
TABLE_BYTES: Final = 32 << 20  # all streams together
CONTINUE_EVERY: Final = 60.0  # seconds between a live flow's reports, at most (half the idle gap if less)
FLOW_TIMEOUT: Final = 300.0  # seconds of silence that end a flow (Zeek's TCP inactivity timeout), at most
MAX_NAMES_PER_FLOW: Final = 8  # names a flow is continued under (a TLS flow has one or two)


def flow_key(proto: int, src: bytes, sport: int, dst: bytes, dport: int) -> tuple:
    """The same key for both directions of a flow: the end with the higher port (or address) first."""
    if sport > dport or (sport == dport and src > dst):
        return (proto, src, sport, dst, dport)
    return (proto, dst, dport, src, sport)


@dataclass(slots=True)
class FlowLife:
    """A flow that produced observations, or for DNS one name asked on one socket: its life so far.

    Zeek's conn.log `duration` is the model: the first packet starts it, every
    later packet moves `last`, and FIN, RST or `idle_timeout` of silence ends
    it. `reported` is the time the latest observation of it carried.
    """

    last: float
    reported: float
    due: float  # `reported` + the table's `every`: a packet before it only moves `last`
    placed: float  # when it was (re)queued at the table's end: the sweep looks at the oldest first
    sightings: list[Observation]  # what it was first reported as, one per name: continued as is


class FlowLives:
    """One observation per flow and name, then continuations while the flow lives.

    A continuation is the first observation again with a later time and
    `continuation=True`: the store extends the session with it (its last seen)
    without counting another observation. One goes out when a packet comes
    `every` seconds or more after the last report (and, after a quiet spell,
    one at the end of the burst before it), and a last one when the flow ends
    (FIN or RST, `idle_timeout` of silence, eviction, or the end of the input)
    if it went on for `min_step` seconds or more since. With `every` at most
    half the store's idle gap and `idle_timeout` at most the gap, a flow's
    reports never leave a gap that would split its session: both follow the
    store's `idle_gap` (`store.idle_gap_seconds`).

    Bounded: at most `cap` lives (the oldest placed goes, its end reported,
    `on_evict` counts it) and `MAX_NAMES_PER_FLOW` names each. Each packet
    costs a dict lookup; the order is kept lazily, so a packet never moves an
    entry: the sweep requeues a live entry it meets at the front, at most once
    per `idle_timeout`, and a flow is dropped between one and two timeouts
    after its last packet (a packet after one timeout finds it ended anyway).
    """

    def __init__(self, report: Callable[[Observation], object], cap: int = 65536, idle_gap: float = 300.0,
                 min_step: float = 1.0, on_evict: Callable[[], None] | None = None):
        self.report = report
        self.cap = cap
        self.idle_timeout = min(FLOW_TIMEOUT, idle_gap)
        self.every = min(CONTINUE_EVERY, idle_gap / 2)
        self.min_step = min_step
        self.lives: OrderedDict[tuple, FlowLife] = OrderedDict()
        self.get = self.lives.get  # bound once: the sensor looks every TCP and UDP packet up
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self.lives)

    def touch(self, key: tuple, life: FlowLife, ts: float) -> None:
        """A packet of a known flow at `ts`: extend it, reporting a continuation when one is due."""
        last = life.last
        if ts - last >= self.idle_timeout:
            self.end(key, last)  # silent for the whole timeout: that flow is over
            return
        if ts > last:
            life.last = ts
        if ts >= life.due:
            if ts - last >= self.every and last > life.reported:
                self._continue(life, last)  # the end of the burst before this quiet spell
            self._continue(life, ts)

    def known(self, key: tuple, protocol: str, name: str, ts: float) -> bool:
        """Whether `name` was already reported for this live flow (which this sighting extends)."""
        life = self.get(key)
        if life is None:
            return False
        self.touch(key, life, ts)
        if key not in self.lives:
            return False  # it had ended: this is a new sighting
        return any(o.hostname == name and o.protocol == protocol for o in life.sightings)

    def add(self, key: tuple, obs: Observation) -> None:
        """Remember a name just reported for a flow, starting its life if it has none."""
        life = self.get(key)
        if life is not None:
            if len(life.sightings) < MAX_NAMES_PER_FLOW:
                life.sightings.append(obs)
            return
        ts = obs.timestamp
        lives = self.lives
        lives[key] = FlowLife(ts, ts, ts + self.every, ts, [obs])
        if len(lives) > self.cap:
            old_key = next(iter(lives))
            self.end(old_key, lives[old_key].last)
            if self._on_evict:
                self._on_evict()

    def end(self, key: tuple, ts: float) -> None:
        """The flow ended at `ts` (FIN, RST, timeout): its last report, and it is forgotten."""
        life = self.lives.pop(key, None)
        if life is not None and ts - life.reported >= self.min_step:
            self._continue(life, ts)

    def expire(self, now: float) -> None:
        """End the flows silent for `idle_timeout`, at their last packet."""
        cutoff = now - self.idle_timeout
        lives = self.lives
        while lives:
            key = next(iter(lives))  # O(1) on an OrderedDict
            life = lives[key]
            if life.placed >= cutoff:
                break
            if life.last < cutoff:
                self.end(key, life.last)
            else:
                life.placed = now
                lives.move_to_end(key)

    def close(self) -> None:
        """The input ended: every flow's last report, at its last packet."""
        for key in list(self.lives):
            self.end(key, self.lives[key].last)

    def _continue(self, life: FlowLife, at: float) -> None:
        life.reported, life.due = at, at + self.every
        for obs in life.sightings:
            self.report(replace(obs, timestamp=at, continuation=True))


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
