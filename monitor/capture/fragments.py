"""IPv4 and IPv6 fragment reassembly with hard caps on what a sender can make it hold.

A DNS answer, a QUIC Initial (1200 bytes or more) or a tunnelled packet is
split into IP fragments when a link's MTU is small. `IpFragments.add` keeps
the pieces of each datagram until it is whole, then returns the datagram:
the headers of its first fragment followed by all the data, so that the
decoder can go on from there with the original link-layer offsets.

Every fragment is hostile until proven otherwise, so (as Suricata's
`defrag.memcap` and the kernel's `ipfrag_high_thresh` do):

- at most `cap` datagrams in progress and `max_bytes` held in all; the
  oldest datagram goes first when either is exceeded, counted by `on_evict`;
- a datagram may not grow beyond 65,535 bytes nor `max_fragments` pieces;
- a fragment that overlaps another with different bytes condemns its whole
  datagram, including fragments still to come (RFC 5722 for IPv6; done for
  IPv4 too, as Linux does), counted by `on_reject`; exact duplicates are
  ignored (RFC 5722 erratum 3089);
- a datagram not completed within `timeout` seconds of its first fragment is
  dropped at the next sweep (`expire`), counted by `on_evict`.

The pieces are kept sorted by offset, so an overlap is found by looking at
the two neighbours of a new piece (a binary search), and completion is a
comparison of the bytes held with the total length: the work per fragment
does not grow with the number of datagrams, and joining is linear.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Final

MAX_DATAGRAM: Final = 65535  # the IPv4 total length and IPv6 payload length limit


@dataclass(slots=True)
class _Datagram:
    """The pieces of one datagram so far."""

    first_seen: float
    offsets: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    held: int = 0  # data bytes in pieces
    total: int = -1  # the datagram's data length, known once the last fragment arrived
    head: bytes = b""  # the first fragment's headers, from the frame's first byte
    protocol: int = -1  # the protocol of the data, from the first fragment
    condemned: bool = False  # an overlap was seen: drop everything of this datagram until it expires


class IpFragments:
    """Datagrams in pieces, keyed by (source, destination, identification, ...), within caps."""

    def __init__(self, cap: int = 1024, max_bytes: int = 4 << 20, max_fragments: int = 256,
                 timeout: float = 30.0, on_evict: Callable[[], None] | None = None,
                 on_reject: Callable[[], None] | None = None):
        self.cap = cap
        self.max_bytes = max_bytes
        self.max_fragments = max_fragments
        self.timeout = timeout
        self.bytes = 0  # held in all datagrams, data and first-fragment headers
        self._datagrams: dict[Hashable, _Datagram] = {}
        self._on_evict = on_evict
        self._on_reject = on_reject

    def __len__(self) -> int:
        return len(self._datagrams)

    def add(self, key: Hashable, offset: int, data: bytes, more: bool, head: bytes, protocol: int,
            now: float) -> tuple[bytes, int, int] | None:
        """Take one fragment; when it completes its datagram, (whole, data offset, protocol).

        `head` is the frame up to the fragment's data (kept from the fragment at offset 0),
        `protocol` the next protocol it names (used from the fragment at offset 0, as RFC 8200
        says for IPv6)."""
        datagrams = self._datagrams
        datagram = datagrams.get(key)
        if datagram is None:
            datagram = datagrams[key] = _Datagram(now)
            if len(datagrams) > self.cap:
                self._evict_oldest()
        if datagram.condemned or (more and not data):
            return None
        end = offset + len(data)
        if end > MAX_DATAGRAM or len(datagram.pieces) >= self.max_fragments or (more and len(data) & 7):
            self._condemn(datagram)  # beyond what IP allows, or split finer than any MTU needs
            return None
        offsets = datagram.offsets
        if not more:
            last = offsets[-1] + len(datagram.pieces[-1]) if offsets else 0
            if (datagram.total >= 0 and datagram.total != end) or last > end:
                self._condemn(datagram)  # two different ends
                return None
            datagram.total = end
        elif datagram.total >= 0 and end > datagram.total:
            self._condemn(datagram)
            return None
        at = bisect_left(offsets, offset)
        if at < len(offsets) and offsets[at] == offset and datagram.pieces[at] == data:
            return None  # an exact duplicate (a retransmission)
        if (at > 0 and offsets[at - 1] + len(datagram.pieces[at - 1]) > offset) or (
                at < len(offsets) and offsets[at] < end):
            self._condemn(datagram)
            return None
        offsets.insert(at, offset)
        datagram.pieces.insert(at, data)
        datagram.held += len(data)
        added = len(data)
        if offset == 0:
            datagram.head, datagram.protocol = head, protocol
            added += len(head)
        self.bytes += added
        while self.bytes > self.max_bytes and datagrams:
            self._evict_oldest()
        if datagram.held != datagram.total or key not in datagrams:
            return None
        del datagrams[key]
        self.bytes -= datagram.held + len(datagram.head)
        return datagram.head + b"".join(datagram.pieces), len(datagram.head), datagram.protocol

    def expire(self, now: float) -> None:
        """Drop datagrams whose first fragment is older than the timeout (counted as evictions)."""
        cutoff = now - self.timeout
        datagrams = self._datagrams
        while datagrams:
            key = next(iter(datagrams))
            if datagrams[key].first_seen >= cutoff:
                break
            self._drop(key, counted=not datagrams[key].condemned)

    def _evict_oldest(self) -> None:
        self._drop(next(iter(self._datagrams)), counted=True)

    def _drop(self, key: Hashable, counted: bool) -> None:
        datagram = self._datagrams.pop(key)
        self.bytes -= datagram.held + len(datagram.head)
        if counted and self._on_evict is not None:
            self._on_evict()

    def _condemn(self, datagram: _Datagram) -> None:
        """Free the pieces but keep the key until it expires, so later fragments are dropped too."""
        self.bytes -= datagram.held + len(datagram.head)
        datagram.offsets, datagram.pieces, datagram.held, datagram.head = [], [], 0, b""
        datagram.condemned = True
        if self._on_reject is not None:
            self._on_reject()
