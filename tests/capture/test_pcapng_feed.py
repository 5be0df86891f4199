"""A pcapng file walked in place gives exactly the frames of `read_frames`, and fed through either
triage, exactly what feeding every frame to `Sensor.feed` gives."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import pytest

from monitor.capture import pcapng_feed, sources
from monitor.capture.pcap_feed import feed_file
from monitor.capture.pcapng_feed import feed_pcapng, read_pcapng
from monitor.capture.sensor import Sensor
from monitor.capture.sources import MAX_RECORD, ReadStats, open_capture, read_frames
from monitor.observation import Observation
from tests.capture.test_pcap_feed import CAPTURES, CASES, HELLO
from tests.capture.test_triage import IMPLEMENTATIONS
from tests.capture_helpers import tcp_frame, udp_frame

T0_US = 1_700_000_000_000_000


def block(kind: int, body: bytes, order: str = "<", total: int | None = None) -> bytes:
    body += bytes(-len(body) % 4)
    size = 12 + len(body) if total is None else total
    return struct.pack(order + "II", kind, size) + body + struct.pack(order + "I", size)


def shb(order: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def idb(linktype: int = 1, order: str = "<", tsresol: int | None = None) -> bytes:
    options = b"" if tsresol is None else struct.pack(order + "HHB3xHH", 9, 1, tsresol, 0, 0)
    return block(1, struct.pack(order + "HHI", linktype, 0, 65535) + options, order)


def epb(units: int, frame: bytes, iface: int = 0, order: str = "<", caplen: int | None = None) -> bytes:
    size = len(frame) if caplen is None else caplen
    return block(6, struct.pack(order + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, size, len(frame))
                 + frame, order)


def packets(frames: list[bytes], order: str = "<", step: int = 500_000) -> bytes:
    return b"".join(epb(T0_US + i * step, frame, order=order) for i, frame in enumerate(frames))


def walked(path: Path) -> tuple[list, ReadStats]:
    """The frames and stats of the in-place walk alone (no triage)."""
    frames: list = []
    stats = ReadStats()
    f, _magic = open_capture(path)
    try:
        read_pcapng(f, stats, lambda ts, lt, buf, fp, end: frames.append((ts, lt, bytes(buf[fp:end]))))
    finally:
        f.close()
    return frames, stats


def fed(path: Path, triage: type | None) -> tuple:
    """(observations, parse errors, packets, stats) of feeding every frame (triage None), or through it."""
    out: list[Observation] = []
    sensor, stats = Sensor(out.append), ReadStats()
    if triage is None:
        for ts, linktype, frame in read_frames(path, stats):
            sensor.feed(ts, linktype, frame)
    else:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pcapng_feed, "Triage", triage)
            f, _magic = open_capture(path)
            feed_pcapng(sensor, f, stats)
    sensor.close()
    return out, sensor.error_counts, sensor.packets, stats


def assert_same(path: Path, triage: type) -> tuple:
    """The walk gives `read_frames`' frames and stats, the triage `feed`'s output; the output."""
    stats = ReadStats()
    assert walked(path) == (list(read_frames(path, stats)), stats)
    every_frame = fed(path, None)
    assert fed(path, triage) == every_frame
    return every_frame


def as_pcapng(capture: Path, path: Path) -> Path:
    """Any capture written again as pcapng: one interface per link type, microsecond times."""
    interfaces: dict[int, int] = {}
    blocks = [shb()]
    for ts, linktype, frame in read_frames(capture):
        if linktype not in interfaces:
            interfaces[linktype] = len(interfaces)
            blocks.append(idb(linktype))
        blocks.append(epb(round(ts * 1e6), frame, interfaces[linktype]))
    path.write_bytes(b"".join(blocks))
    return path


@pytest.fixture(params=list(IMPLEMENTATIONS.values()), ids=list(IMPLEMENTATIONS))
def triage(request):
    return request.param


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_shared_captures_give_the_same_output(capture, triage, tmp_path):
    path = capture if capture.suffix == ".pcapng" else as_pcapng(capture, tmp_path / "c.pcapng")
    assert_same(path, triage)


@pytest.mark.parametrize("frames", CASES.values(), ids=CASES.keys())
def test_each_kind_of_packet_gives_the_same_output(frames, triage, tmp_path):
    path = tmp_path / "c.pcapng"
    path.write_bytes(shb() + idb() + packets(frames))
    assert_same(path, triage)


HELLO_FRAME = tcp_frame(HELLO)
DATA = tcp_frame(b"\x17\x03\x03" + bytes(40), seq=1000 + len(HELLO))
QUIET = udp_frame(b"\x41" + bytes(30))
# Each row: the file after its magic, and how many frames `read_frames` finds in it.
LAYOUTS = {
    "big-endian section": (shb(">") + idb(order=">") + packets([HELLO_FRAME, DATA, QUIET], ">"), 3),
    "a second section forgets the first's interfaces": (
        shb() + idb() + idb(101) + packets([HELLO_FRAME]) + shb() + idb() + epb(T0_US, DATA, iface=1)
        + epb(T0_US, QUIET), 2),
    "simple packet blocks": (shb() + idb() + block(3, struct.pack("<I", len(HELLO_FRAME)) + HELLO_FRAME)
                             + packets([DATA]), 2),
    "a time out of range is skipped": (shb() + idb() + epb(T0_US, HELLO_FRAME) + epb(1 << 62, DATA)
                                       + epb(T0_US + 1, QUIET), 2),
    "an unknown interface": (shb() + idb() + epb(T0_US, HELLO_FRAME, iface=3) + packets([DATA]), 1),
    "a capture length past its block": (shb() + idb() + epb(T0_US, HELLO_FRAME, caplen=9000), 1),
    "nanosecond times": (shb() + idb(tsresol=9) + epb(T0_US * 1000, HELLO_FRAME), 1),
    "a raw ip interface next to ethernet": (shb() + idb(101) + idb() + epb(T0_US, HELLO_FRAME[14:])
                                            + epb(T0_US, DATA, iface=1), 2),
    "an unknown block between packets": (shb() + idb() + packets([HELLO_FRAME]) + block(0xBAD, b"xyz")
                                         + packets([DATA]), 2),
    "an empty frame": (shb() + idb() + epb(T0_US, b"") + packets([HELLO_FRAME]), 2),
    "a packet block too short for its header": (shb() + idb() + block(6, bytes(16)) + packets([DATA]), 1),
    "packets before any interface": (shb() + packets([HELLO_FRAME]) + idb() + packets([DATA]), 1),
}


@pytest.mark.parametrize(("layout", "frames"), LAYOUTS.values(), ids=LAYOUTS.keys())
def test_each_layout_gives_the_same_frames_and_output(layout, frames, triage, tmp_path):
    path = tmp_path / "c.pcapng"
    path.write_bytes(layout)
    assert assert_same(path, triage)[3].frames == frames


GOOD = shb() + idb() + packets([HELLO_FRAME, DATA])
# Each row: the file, and whether `read_frames` says it is truncated (a damaged tail).
DAMAGED = {
    "cut in the last frame": (GOOD[:-10], True),
    "cut in the last block's length": (GOOD[:-2], True),
    "cut in a block header": (GOOD + block(6, bytes(40))[:5], True),
    "only the magic": (GOOD[:4], True),
    "cut in the section header": (GOOD[:10], True),
    "a block shorter than its header": (GOOD + struct.pack("<II", 6, 8) + bytes(8), True),
    "a block longer than any capture holds": (GOOD + struct.pack("<II", 6, MAX_RECORD + 4) + bytes(64), True),
    "a section header longer than the file": (GOOD + block(0x0A0D0D0A, struct.pack("<I", 0x1A2B3C4D), "<",
                                                           total=1 << 20), True),
    "a section header cut in its byte-order mark": (GOOD + struct.pack("<II", 0x0A0D0D0A, 4) + b"\x4d\x3c",
                                                    True),
    "a section header shorter than its fields at the end": (GOOD + struct.pack(">II", 0x0A0D0D0A, 4)
                                                            + b"\x1a\x2b", False),
    "a whole file": (GOOD, False),
}


@pytest.mark.parametrize(("data", "truncated"), DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_tail_is_counted_like_the_reader(data, truncated, triage, tmp_path):
    path = tmp_path / "c.pcapng"
    path.write_bytes(data)
    assert assert_same(path, triage)[3].truncated is truncated


@pytest.mark.parametrize("chunk", [64, 100, 4096], ids=["smaller than a block", "odd", "many blocks"])
def test_blocks_across_read_boundaries(chunk, triage, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CHUNK", chunk)
    split = [tcp_frame(flags="S", seq=999)] + [tcp_frame(HELLO[j : j + 90], seq=1000 + j)
                                               for j in range(0, len(HELLO), 90)]
    long_header = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + bytes(300))
    path = tmp_path / "c.pcapng"
    path.write_bytes(shb() + idb() + packets(split) + long_header + idb() + packets([DATA]))
    observations = assert_same(path, triage)[0]
    assert [o.hostname for o in observations] == ["www.facebook.com"]


def test_feed_file_reads_either_format_through_the_triage(tmp_path):
    pcapng = tmp_path / "c.pcapng"
    pcapng.write_bytes(shb() + idb() + packets([HELLO_FRAME, DATA]))
    out: list[Observation] = []
    sensor, stats = Sensor(out.append), ReadStats()
    feed_file(sensor, pcapng, stats)
    sensor.close()
    assert [o.hostname for o in out] == ["www.facebook.com"] and stats.frames == sensor.packets == 2


def test_a_set_stop_ends_the_reading_at_the_next_block(tmp_path):
    path = tmp_path / "c.pcapng"
    path.write_bytes(shb() + idb() + packets([HELLO_FRAME, DATA]))
    stop = threading.Event()
    stop.set()
    sensor, stats = Sensor(lambda obs: None), ReadStats()
    f, _magic = open_capture(path)
    feed_pcapng(sensor, f, stats, stop=stop)
    assert stats.frames == sensor.packets == 0 and f.closed
