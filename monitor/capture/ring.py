"""Live capture through a memory-mapped TPACKET_V3 receive ring (PACKET_RX_RING).

The kernel writes frames straight into blocks of a ring shared with this
process and hands over a whole block at a time (when it is full, or after
`retire_ms`): reading costs no system call and no copy into a new socket
buffer per packet, only one slice of the shared memory. `LiveInterface`
(`recvmsg` per packet) stays the fallback, and is chosen with `ring=False`.

Same contract as `LiveInterface` for `monitor.capture.live`: `fileno()` for
select, `statistics()` as (received, dropped) since opening, `close()`; and
`drain(reader, limit)` instead of `recv()`, handing over whole blocks, whose
frames the reader reads where they lie (`triage.Triage.block`: only the frames
that can matter are copied out and fed to the sensor, as `classify` does with a
file). The kernel BPF
pre-filter is attached before the socket is bound, so nothing unfiltered ever
reaches the ring. PACKET_STATISTICS of a V3 socket adds `tp_freeze_q_cnt`:
how often every block was full (the ring "froze" until one was handed back),
kept in `freezes`.
"""

from __future__ import annotations

import mmap
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from monitor.capture.packets import LINKTYPE_ETHERNET, LINKTYPE_RAW
from monitor.capture.triage import TP_STATUS_VLAN_VALID, Retag
from monitor.errors import UserError

SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_RX_RING: Final = 5
PACKET_STATISTICS: Final = 6
PACKET_VERSION: Final = 10
TPACKET_V3: Final = 2
PACKET_MR_PROMISC: Final = 1
ETH_P_ALL: Final = 0x0003
TP_STATUS_KERNEL: Final = 0
TP_STATUS_USER: Final = 1
TP_STATUS_VLAN_TPID_VALID: Final = 0x40
_ARPHRD_RAW_IP: Final = frozenset({0xFFFE, 519, 778})

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: block_status,
# num_pkts, offset_to_first_pkt (the rest, lengths and timestamps, is not needed)
_BLOCK = struct.Struct("<IIIII")
_STATS_V3 = struct.Struct("III")  # struct tpacket_stats_v3: tp_packets, tp_drops, tp_freeze_q_cnt



class BlockReader(Protocol):
    """What reads a block's frames where they lie (`triage.Triage`)."""

    def block(self, ring: mmap.mmap, at: int, count: int, linktype: int, retag: Retag) -> None: ...


class RingUnavailable(UserError):
    """This kernel or this process cannot have a ring here (no TPACKET_V3, no memory to map):
    `monitor.capture.live` then captures with `LiveInterface` instead."""


@dataclass(frozen=True, slots=True)
class RingSize:
    """The ring's geometry: `blocks` blocks of `block_bytes` each (a power-of-two multiple of the
    page size, larger than any frame), handed to user space when full or after `retire_ms`."""

    block_bytes: int = 1 << 20
    blocks: int = 64
    retire_ms: int = 20
    frame_bytes: int = 2048  # nominal (V3 packs frames of any length); the kernel checks the sum

    @classmethod
    def of_megabytes(cls, megabytes: int) -> RingSize:
        """A ring of about `megabytes` MiB in blocks of 1 MiB (at least 2 blocks)."""
        return cls(blocks=max(2, megabytes))

    def request(self) -> bytes:
        """struct tpacket_req3 for PACKET_RX_RING."""
        frames = self.block_bytes * self.blocks // self.frame_bytes
        return struct.pack("IIIIIII", self.block_bytes, self.blocks, self.frame_bytes, frames,
                           self.retire_ms, 0, 0)


def link_type_of(name: str) -> int:
    """The pcap link type of an interface, from its ARPHRD type in sysfs (Ethernet unless raw IP)."""
    try:
        hatype = int(Path(f"/sys/class/net/{name}/type").read_text())
    except (OSError, ValueError):
        return LINKTYPE_ETHERNET  # the bind below names the missing interface
    return LINKTYPE_RAW if hatype in _ARPHRD_RAW_IP else LINKTYPE_ETHERNET


def with_vlan_tag(frame: bytes, status: int, tci: int, tpid: int) -> bytes:
    """The frame with the 802.1Q tag the kernel took off put back (the sensor reads VLAN ids)."""
    if not (status & TP_STATUS_VLAN_VALID or tci):
        return frame
    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
    return frame[:12] + tpid.to_bytes(2, "big") + tci.to_bytes(2, "big") + frame[12:]


class RingInterface:
    """One interface captured through a TPACKET_V3 ring, with the kernel BPF pre-filter."""

    def __init__(self, name: str, bpf_filter: str | Callable[[int], str | None] | None,
                 promisc: bool = True, size: RingSize | None = None):
        self.name = name
        self.size = size or RingSize()
        self.linktype = link_type_of(name)
        self.received = 0
        self.dropped = 0
        self.freezes = 0
        self._block = 0
        self._map: mmap.mmap | None = None
        expression = bpf_filter(self.linktype) if callable(bpf_filter) else bpf_filter
        # protocol 0: the socket receives nothing until it is bound, after the filter is in place
        self.socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self._setup(expression, promisc)
        except BaseException:
            self.close()
            raise

    def _setup(self, expression: str | None, promisc: bool) -> None:
        sock, name = self.socket, self.name
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        except OSError as exc:
            raise RingUnavailable(f"cannot capture on {name}: no TPACKET_V3 ring ({exc.strerror})") from None
        if expression:
            from scapy.arch.linux import attach_filter

            try:
                attach_filter(sock, expression, name)
            except Exception as exc:  # scapy raises its own exception types here
                raise UserError(f"cannot set the capture filter on {name}: {exc}") from None
        size = self.size
        try:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, size.request())
            self._map = mmap.mmap(sock.fileno(), size.block_bytes * size.blocks,
                                  mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise RingUnavailable(f"cannot capture on {name}: cannot map a receive ring of "
                            f"{size.blocks} x {size.block_bytes} bytes ({exc.strerror or exc})") from None
        try:
            sock.bind((name, ETH_P_ALL))
            if promisc:
                mreq = struct.pack("iHH8s", socket.if_nametoindex(name), PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except OSError as exc:
            raise UserError(f"cannot capture on {name}: {exc.strerror or exc}") from None
        sock.setblocking(False)

    def fileno(self) -> int:
        return self.socket.fileno()

    def drain(self, reader: BlockReader, limit: int) -> int:
        """Hand every block the kernel has handed over to `reader`, whole blocks at a time, until none
        is ready or `limit` frames were handed; the number handed. An error on the socket (the link
        went down or away: ENETDOWN) is raised as OSError once nothing is left to read."""
        ring = self._map
        if ring is None:
            raise OSError(9, "ring closed")
        size = self.size.block_bytes
        blocks = self.size.blocks
        linktype = self.linktype
        unpack_block = _BLOCK.unpack_from
        read_block = reader.block
        fed = 0
        while fed < limit:
            base = self._block * size
            _version, _priv, status, count, offset = unpack_block(ring, base)
            if not status & TP_STATUS_USER:
                break
            read_block(ring, base + offset, count, linktype, with_vlan_tag)
            fed += count
            ring[base + 8:base + 12] = b"\0\0\0\0"  # block_status = TP_STATUS_KERNEL: hand it back
            self._block = (self._block + 1) % blocks
        if not fed:
            error = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, f"{self.name}: {_strerror(error)}")
        return fed

    def statistics(self) -> tuple[int, int]:
        """Packets received and dropped by the kernel since opening (the kernel resets on read)."""
        try:
            raw = self.socket.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS_V3.size)
            packets, drops, freezes = _STATS_V3.unpack(raw)
        except (OSError, struct.error):
            return self.received, self.dropped
        self.received += packets
        self.dropped += drops
        self.freezes += freezes
        return self.received, self.dropped

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self.socket.close()


def _strerror(code: int) -> str:
    import os

    return os.strerror(code)
