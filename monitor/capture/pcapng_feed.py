"""A pcapng file fed to a `Sensor` from 4 MB blocks, each packet block read in place.

`sources.read_frames` costs two reads and three slices per packet block;
here each block of the file is read into one reused buffer, its packet
blocks walked where they lie and each frame handed to the frame triage
(`triage.py`), which copies only the frames `Sensor.feed` must read. The
same frames, the same `ReadStats` (truncation, times out of range) and the
same output as feeding every frame: `tests/capture/test_pcapng_feed.py`.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import BinaryIO, Final

from monitor.capture.sensor import Sensor
from monitor.capture.sources import MAX_RECORD, MAX_TIMESTAMP, PCAPNG_SHB, ReadBuffer, ReadStats, _if_tsresol
from monitor.capture.triage import Triage

# (timestamp, link type, buffer, frame start, frame end): the frame is buffer[start:end]
FrameSink = Callable[[float, int, bytearray, int, int], None]
# (buffer, start, end, big-endian, interfaces) -> (where the run of packet blocks ends, frames read)
PacketBlocks = Callable[[bytearray, int, int, bool, list[tuple[int, float]]], tuple[int, int]]
LITTLE_ENDIAN_BOM: Final = b"\x4d\x3c\x2b\x1a"
SECTION_HEADER: Final = 0x0A0D0D0A
INTERFACE: Final = 1
SIMPLE_PACKET: Final = 3
ENHANCED_PACKET: Final = 6


def feed_pcapng(sensor: Sensor, f: BinaryIO, stats: ReadStats,
                progress: Callable[[int], None] | None = None,
                stop: threading.Event | None = None) -> None:
    """Feed every frame of the pcapng `f` (its 4-byte magic already read) to `sensor` through the
    triage; closes `f`. `stop`, when set, ends the reading at the next 4 MB block."""
    try:
        triage = Triage(sensor)
        read_pcapng(f, stats, triage.frame, progress, stop, triage.packet_blocks)
    finally:
        f.close()


def read_pcapng(f: BinaryIO, stats: ReadStats, frame: FrameSink,
                progress: Callable[[int], None] | None = None,
                stop: threading.Event | None = None, packet_blocks: PacketBlocks | None = None) -> None:
    """Hand each frame of the pcapng `f` (its magic already read) to `frame`, in file order: the
    frames `sources.read_frames` gives, with the same `stats`. `packet_blocks` (the triage's), when
    given, reads each run of plain enhanced packet blocks instead, in one call."""
    reader = ReadBuffer(f, PCAPNG_SHB)  # the magic already read: the first block is parsed like any other
    walk = _Walk(stats, frame, packet_blocks)
    pos, eof = 0, False  # blocks from `pos` on are still to read
    try:
        while True:
            pos = walk.blocks(reader.buf, pos, reader.n, eof)
            if pos < 0 or eof or (stop is not None and stop.is_set()):
                return
            got, pos = reader.refill(pos), 0
            if walk.skip:  # the rest of a section header longer than the buffer: passed over
                passed = min(walk.skip, reader.n)
                walk.skip -= passed
                reader.drop_front(passed)
            eof = not got
            if eof and walk.skip:
                stats.truncated = True
                return
            if progress is not None:
                progress(stats.frames)
    finally:
        reader.release()


class _Walk:
    """The state that lasts across reads: the section's byte order and interfaces."""

    def __init__(self, stats: ReadStats, frame: FrameSink, packet_blocks: PacketBlocks | None):
        self.stats = stats
        self.frame = frame
        self.packet_blocks = packet_blocks
        self.order = "<"
        self.interfaces: list[tuple[int, float]] = []  # (link type, seconds per timestamp unit)
        self.skip = 0  # bytes of a section header still to pass over in the next reads

    def blocks(self, buf: bytearray, pos: int, n: int, eof: bool) -> int:
        """Every whole block of buf[pos:n]; where the first block not read starts, or -1 when the file
        ends here (damaged or truncated, said in `stats`). With `eof`, buf[n:] will never come."""
        stats, frame, packet_blocks = self.stats, self.frame, self.packet_blocks
        head = struct.Struct(self.order + "II").unpack_from
        interfaces = self.interfaces
        while True:
            if packet_blocks is not None and interfaces:
                pos, frames = packet_blocks(buf, pos, n, self.order == ">", interfaces)
                stats.frames += frames
            avail = n - pos
            if avail < 8:
                if eof:
                    stats.truncated = avail > 0
                    return -1
                return pos
            block_type, total = head(buf, pos)
            if block_type == SECTION_HEADER:  # the same in either byte order
                if avail < 12 and not eof:
                    return pos
                self.order = "<" if buf[pos + 8 : min(pos + 12, n)] == LITTLE_ENDIAN_BOM else ">"
                head = struct.Struct(self.order + "II").unpack_from
                total = struct.unpack_from(self.order + "I", buf, pos + 4)[0]
                self.interfaces = interfaces = []
                span = max(12, total)
                if span <= avail:
                    pos += span
                    continue
                if not eof:  # its body is never read: pass over it, however long
                    self.skip = span - avail
                    return n
                if avail - 8 < total - 8:
                    stats.truncated = True
                    return -1
                return n  # a section header shorter than 12 bytes at the very end
            if total < 12 or total > MAX_RECORD:
                stats.truncated = True
                return -1
            if total > avail:
                if eof:
                    stats.truncated = True
                    return -1
                return pos
            body, stop = pos + 8, pos + total - 4  # the block's body, without its trailing length
            if block_type == ENHANCED_PACKET and stop - body >= 20:
                iface, high, low, caplen = struct.unpack_from(self.order + "IIII", buf, body)
                if iface < len(interfaces):
                    linktype, tick = interfaces[iface]
                    ts = ((high << 32) | low) * tick
                    if 0.0 <= ts < MAX_TIMESTAMP:
                        stats.frames += 1
                        frame(ts, linktype, buf, body + 20, min(body + 20 + caplen, stop))
                    else:
                        stats.bad_timestamps += 1
            elif block_type == INTERFACE and stop - body >= 8:
                linktype = struct.unpack_from(self.order + "H", buf, body)[0]
                interfaces.append((linktype, _if_tsresol(bytes(buf[body + 8 : stop]), self.order)))
            elif block_type == SIMPLE_PACKET and stop - body >= 4 and interfaces:
                stats.frames += 1
                frame(0.0, interfaces[0][0], buf, body + 4, stop)
            pos += total
