"""Where frames come from: pcap and pcapng files, and live interfaces.

Files are read with `struct` straight from a buffered file (scapy's raw
readers cost a Python object per record; this costs one slice). Live capture
uses scapy's `L2ListenSocket` (a Linux packet socket with the kernel BPF
filter attached) and reads raw frames with `recv_raw`, never dissecting them;
kernel drops come from the socket's PACKET_STATISTICS.
"""

from __future__ import annotations

import io
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, cast

from monitor.capture.packets import LINKTYPE_ETHERNET, LINKTYPE_RAW
from monitor.errors import UserError

PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB: Final = b"\x0a\x0d\x0d\x0a"
MAX_RECORD: Final = 1 << 24
CHUNK: Final = 4 << 20
# A pcapng timestamp is a 64-bit count of units as small or large as its interface says: a
# damaged or hostile file can put a frame in the year 586524. Frames outside what a classic
# pcap can hold (1970 to 2106) are counted in ReadStats.bad_timestamps and skipped, never
# handed on to fail in whatever formats the time.
MAX_TIMESTAMP: Final = float(1 << 32)

# (timestamp seconds, link type, frame bytes)
Frame = tuple[float, int, bytes]


class CaptureFormatError(UserError):
    """A file that is not a pcap/pcapng capture at all (a truncated tail is not an error)."""


@dataclass(slots=True)
class ReadStats:
    """What reading a file found beyond the frames: a damaged or truncated tail."""

    frames: int = 0
    truncated: bool = False
    bad_timestamps: int = 0  # frames skipped because their time is before 1970 or after 2106


def open_capture(path: str | Path) -> tuple[BinaryIO, bytes]:
    """Open a capture and return it with its first four bytes; a clear one-line error otherwise."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - the reader owns and closes it
    except OSError as exc:
        raise UserError(f"{path}: cannot open: {exc.strerror or exc}") from None
    magic = f.read(4)
    if magic not in PCAP_MAGICS and magic != PCAPNG_SHB:
        f.close()
        raise CaptureFormatError(f"{path}: not a pcap or pcapng capture")
    return f, magic


def read_frames(path: str | Path, stats: ReadStats | None = None) -> Iterator[Frame]:
    """Every frame of a pcap or pcapng file, in file order (the file closes when the iterator ends)."""
    stats = stats if stats is not None else ReadStats()
    f, magic = open_capture(path)
    # The readers own the file and close it when they end (one generator, no `yield from` layer).
    return _pcapng(f, stats) if magic == PCAPNG_SHB else _pcap(f, magic, stats)


def pcap_header(f: BinaryIO, magic: bytes, stats: ReadStats) -> tuple[str, float, int] | None:
    """A classic pcap's byte order, timestamp unit and link type, read after its magic; None (and
    `stats.truncated`) when the file ends inside its header."""
    order, tick = PCAP_MAGICS[magic]
    header = f.read(20)
    if len(header) < 20:
        stats.truncated = True
        return None
    return order, tick, struct.unpack(order + "HHiIII", header)[5] & 0x0FFFFFFF


class ReadBuffer:
    """A capture file read in blocks of `CHUNK` bytes into one reused buffer (no new pages per
    block), for the readers that walk records in place: `buf[:n]` holds data."""

    def __init__(self, f: BinaryIO, start: bytes = b""):
        self.f = cast(io.BufferedReader, f)  # open() in "rb" mode
        self.buf = bytearray(CHUNK)
        self.buf[: len(start)] = start
        self.view = memoryview(self.buf)
        self.n = len(start)

    def refill(self, pos: int) -> int:
        """Keep what is unread (from `pos` on) at the front and read on after it; the bytes read,
        0 at the end of the file. A record that fills the whole buffer (at most `MAX_RECORD`)
        grows it."""
        rest = self.n - pos
        view = self.view
        if pos:
            view[:rest] = view[pos : self.n]
        elif rest == len(self.buf):
            view.release()
            self.buf += bytes(len(self.buf))
            self.view = view = memoryview(self.buf)
        got = self.f.readinto(view[rest:]) or 0
        self.n = rest + got
        return got

    def drop_front(self, count: int) -> None:
        """Pass over the first `count` bytes held (at most `n`)."""
        self.view[: self.n - count] = self.view[count : self.n]
        self.n -= count

    def release(self) -> None:
        self.view.release()


def _pcap(f: BinaryIO, magic: bytes, stats: ReadStats) -> Iterator[Frame]:
    """Records parsed from 4 MB reads: one struct call and one slice per packet, no read call."""
    try:
        opened = pcap_header(f, magic, stats)
        if opened is None:
            return
        order, tick, linktype = opened
        unpack = struct.Struct(order + "IIII").unpack_from
        buf = b""
        pos = 0
        frames = 0
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            buf = buf[pos:] + chunk
            pos = 0
            n = len(buf)
            while pos + 16 <= n:
                sec, frac, caplen, _orig = unpack(buf, pos)
                if caplen > MAX_RECORD:
                    stats.truncated = True
                    stats.frames = frames
                    return
                end = pos + 16 + caplen
                if end > n:
                    break
                frames += 1
                yield sec + frac * tick, linktype, buf[pos + 16 : end]
                pos = end
        stats.frames = frames
        stats.truncated = pos < len(buf)
    finally:
        f.close()


def _pcapng(f: BinaryIO, stats: ReadStats) -> Iterator[Frame]:
    try:
        yield from _pcapng_blocks(f, stats)  # block parsing costs far more than this extra layer
    finally:
        f.close()


def _pcapng_blocks(f: BinaryIO, stats: ReadStats) -> Iterator[Frame]:
    order = "<"
    interfaces: list[tuple[int, float]] = []  # (link type, seconds per timestamp unit)
    block_type = 0x0A0D0D0A
    first = True
    while True:
        if first:
            head = b"\x0a\x0d\x0d\x0a" + f.read(4)
            first = False
        else:
            head = f.read(8)
        if len(head) < 8:
            stats.truncated = bool(head)
            return
        if head[:4] == PCAPNG_SHB:
            bom = f.read(4)
            order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            block_type = 0x0A0D0D0A
            total = struct.unpack(order + "I", head[4:])[0]
            body = bom + f.read(max(0, total - 12))
            interfaces = []
        else:
            block_type, total = struct.unpack(order + "II", head)
            if total < 12 or total > MAX_RECORD:
                stats.truncated = True
                return
            body = f.read(total - 8)
        if len(body) < total - 8:
            stats.truncated = True
            return
        body = body[:-4]  # trailing total length
        if block_type == 1 and len(body) >= 8:  # interface description
            linktype = struct.unpack_from(order + "H", body, 0)[0]
            interfaces.append((linktype, _if_tsresol(body[8:], order)))
        elif block_type == 6 and len(body) >= 20:  # enhanced packet
            iface, high, low, caplen, _orig = struct.unpack_from(order + "IIIII", body, 0)
            if iface >= len(interfaces):
                continue
            linktype, tick = interfaces[iface]
            ts = ((high << 32) | low) * tick
            if not 0.0 <= ts < MAX_TIMESTAMP:
                stats.bad_timestamps += 1
                continue
            stats.frames += 1
            yield ts, linktype, body[20 : 20 + caplen]
        elif block_type == 3 and len(body) >= 4 and interfaces:  # simple packet
            stats.frames += 1
            yield 0.0, interfaces[0][0], body[4:]


def _if_tsresol(options: bytes, order: str) -> float:
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = options[pos + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
        pos += 4 + ((length + 3) & ~3)
    return 1e-6


# -- live capture ------------------------------------------------------------------------------

SOL_PACKET: Final = 263
PACKET_STATISTICS: Final = 6
_SO_RCVBUFFORCE: Final = 33
_SO_TIMESTAMPNS: Final = 35
_PACKET_AUXDATA: Final = 8
_TP_STATUS_VLAN_VALID: Final = 0x10
_TP_STATUS_VLAN_TPID_VALID: Final = 0x40
_AUXDATA = struct.Struct("IIIHHHH").unpack_from  # struct tpacket_auxdata
_TIMESPEC = struct.Struct("qq").unpack_from
_SNAPLEN: Final = 65535
_ANCILLARY_SPACE: Final = 256
_ARPHRD_RAW_IP: Final = frozenset({0xFFFE, 519, 778})  # none, tun, rawip, ipgre


class LiveInterface:
    """One interface opened with scapy's L2ListenSocket and the kernel BPF pre-filter.

    The socket is opened first and the filter attached after, because the
    filter depends on the link type (`vlan` is Ethernet only).
    """

    def __init__(self, name: str, bpf_filter: str | Callable[[int], str | None] | None, promisc: bool = True,
                 receive_buffer: int = 64 << 20):
        import scapy.arch  # noqa: F401 - sets conf.L2listen for this platform
        from scapy.config import conf

        # scapy warns that it cannot guess a dissector for some links: we never dissect.
        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

        self.name = name
        try:
            self.socket = conf.L2listen(iface=name, promisc=promisc)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot capture on {name}: {exc}") from None
        # scapy asks for a 64 KB receive buffer; a burst at line rate needs far more before the
        # kernel starts dropping. SO_RCVBUFFORCE (root) goes past net.core.rmem_max.
        for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
            try:
                self.socket.ins.setsockopt(socket.SOL_SOCKET, option, receive_buffer)
                break
            except OSError:
                continue
        hatype = self.socket.ins.getsockname()[3]
        self.linktype = LINKTYPE_RAW if hatype in _ARPHRD_RAW_IP else LINKTYPE_ETHERNET
        # A filter is an expression, or a function of the link type (`bpf.capture_filter`'s `vlan`
        # is Ethernet only); an expression written for Ethernet is rewritten for another link.
        if callable(bpf_filter):
            expression = bpf_filter(self.linktype)
        elif bpf_filter and self.linktype != LINKTYPE_ETHERNET and bpf_filter.endswith(" or vlan"):
            expression = bpf_filter.removesuffix(" or vlan")
        else:
            expression = bpf_filter
        if expression:
            from scapy.arch.linux import attach_filter

            try:
                attach_filter(self.socket.ins, expression, name)
            except Exception as exc:  # scapy raises its own exception types here
                self.socket.close()
                raise UserError(f"cannot set the capture filter on {name}: {exc}") from None
        self.socket.ins.setblocking(False)
        self._recvmsg = self.socket.ins.recvmsg
        self.received = 0
        self.dropped = 0

    def fileno(self) -> int:
        return self.socket.ins.fileno()

    def recv(self) -> Frame:
        """One frame, read straight off the non-blocking packet socket (BlockingIOError when none).

        scapy's own recv_raw costs a ctypes copy per packet for the auxiliary data; this parses
        it with struct: the VLAN tag the kernel stripped goes back in, the kernel's timestamp is
        kept.
        """
        data, ancdata, _flags, _addr = self._recvmsg(_SNAPLEN, _ANCILLARY_SPACE)
        ts = 0.0
        for level, kind, cdata in ancdata:
            if level == SOL_PACKET and kind == _PACKET_AUXDATA and len(cdata) >= 20:
                status, _len, _snap, _mac, _net, tci, tpid = _AUXDATA(cdata)
                if (status & _TP_STATUS_VLAN_VALID or tci) and self.linktype == LINKTYPE_ETHERNET:
                    tpid = tpid if status & _TP_STATUS_VLAN_TPID_VALID else 0x8100
                    data = data[:12] + tpid.to_bytes(2, "big") + tci.to_bytes(2, "big") + data[12:]
            elif level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(cdata) == 16:
                sec, nsec = _TIMESPEC(cdata)
                ts = sec + nsec * 1e-9
        return ts or time.time(), self.linktype, data

    def statistics(self) -> tuple[int, int]:
        """Packets received and dropped by the kernel since opening (the kernel resets on read)."""
        try:
            raw = self.socket.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
            packets, drops = struct.unpack("II", raw)
            self.received += packets
            self.dropped += drops
        except OSError:
            pass
        return self.received, self.dropped

    def close(self) -> None:
        self.socket.close()


def live_frames(interfaces: list[LiveInterface], stop: threading.Event,
                on_idle: Callable[[], None] | None = None,
                poll_seconds: float = 0.5) -> Iterator[tuple[LiveInterface, Frame]]:
    """Frames from several interfaces at once, until `stop` is set.

    One select per burst, not per packet: a ready socket is drained until it would block.
    """
    by_fd = {i.fileno(): i for i in interfaces}
    while not stop.is_set():
        try:
            ready, _, _ = select.select(list(by_fd), [], [], poll_seconds)
        except InterruptedError:
            continue
        if on_idle is not None:
            on_idle()
        for fd in ready:
            iface = by_fd[fd]
            recv = iface.recv
            for _ in range(4096):  # then look at the other interfaces and the stop flag again
                try:
                    frame = recv()
                except (BlockingIOError, InterruptedError):
                    break
                yield iface, frame
