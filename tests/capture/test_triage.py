"""The frame triage: which frames reach `Sensor.feed`, and that skipping the others changes nothing.

Each implementation (this module's Python, and the compiled twin when it is built) is given frames
in each kind of buffer the callers hand over (bytes, a bytearray block with the frame at an offset,
an mmap like the ring) and must give exactly what feeding every frame gives."""

from __future__ import annotations

import importlib
import mmap
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from monitor.capture import triage
from monitor.capture.packets import LINKTYPE_ETHERNET, LINKTYPE_RAW
from monitor.capture.ring import with_vlan_tag
from monitor.capture.sensor import Sensor
from monitor.capture.sources import MAX_RECORD, read_frames
from monitor.capture.triage import TP_STATUS_VLAN_VALID, TPACKET3_HDR, PureTriage
from tests import pcapgen
from tests.capture.test_pcap_feed import CAPTURES, CASES, HELLO, NAMELESS_HELLO, PSIPHON_FLIGHT
from tests.capture_helpers import CLIENT4, SERVER4, tcp_frame, udp_frame

T0 = 1_700_000_000.0


def _compiled() -> type | None:
    try:
        return importlib.import_module("monitor.capture._triage").Triage
    except ImportError:
        return None


COMPILED = _compiled()
IMPLEMENTATIONS = {"pure": PureTriage, **({"compiled": COMPILED} if COMPILED is not None else {})}


def in_bytes(frame: bytes) -> tuple[object, int]:
    return frame, 0


def in_block(frame: bytes) -> tuple[object, int]:
    return bytearray(b"\xee" * 100 + frame + b"\xee" * 40), 100  # bytes around it are never read as it


def in_mmap(frame: bytes) -> tuple[object, int]:
    m = mmap.mmap(-1, 4096 * (1 + len(frame) // 4096 + 1))
    m[64:64 + len(frame)] = frame
    return m, 64


BUFFERS = {"bytes": in_bytes, "a block at an offset": in_block, "an mmap": in_mmap}


def both_ways(implementation: type, frames: list[bytes], place=in_bytes, linktype: int = LINKTYPE_ETHERNET):
    """(observations, errors, packets) of `feed` given every frame, then of the triage; and the frames
    the triage handed to `feed`."""
    results, handed = [], []
    for triaged in (False, True):
        out: list = []
        sensor = Sensor(out.append)
        if triaged:
            feed = sensor.feed
            sensor.feed = lambda ts, lt, frame, feed=feed: (handed.append(frame), feed(ts, lt, frame))[1]
            t = implementation(sensor)
        for i, frame in enumerate(frames):
            ts = T0 + i * 0.5
            if triaged:
                buf, at = place(frame)
                t.frame(ts, linktype, buf, at, at + len(frame))
            else:
                sensor.feed(ts, linktype, frame)
        sensor.close()
        results.append((out, sensor.error_counts, sensor.packets))
    return results[0], results[1], handed


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
@pytest.mark.parametrize("place", BUFFERS.values(), ids=BUFFERS.keys())
@pytest.mark.parametrize("frames", CASES.values(), ids=CASES.keys())
def test_the_triage_gives_what_feeding_every_frame_gives(implementation, place, frames):
    every, triaged, _handed = both_ways(implementation, frames, place)
    assert triaged == every


APP_DATA = b"\x17\x03\x03\x00\x20" + bytes(32)
# Each row: frames (the last one is the one asked about), and whether that one goes to `feed`.
FED = {
    "a client hello": ([tcp_frame(HELLO)], True),
    "tls application data": ([tcp_frame(APP_DATA)], False),
    "a bare ack": ([tcp_frame(flags="A")], False),
    "a bare syn (opens a stream in place)": ([tcp_frame(flags="S")], False),
    "a bare fin (ends the flow in place)": ([tcp_frame(flags="FA")], False),
    "a segment of a held stream": ([tcp_frame(flags="S", seq=999), tcp_frame(b"\x17" * 30)], True),
    "a server hello": ([tcp_frame(b"\x16\x03\x03\x00\x30\x02" + bytes(0x2F), reverse=True)], False),
    "a server hello after a hello with no name (its certificate)": (
        [tcp_frame(NAMELESS_HELLO), tcp_frame(PSIPHON_FLIGHT, reverse=True)], True),
    "a server hello after a hello with a name": (
        [tcp_frame(HELLO), tcp_frame(PSIPHON_FLIGHT, reverse=True)], False),
    "a server hello after a nameless hello on another flow": (
        [tcp_frame(NAMELESS_HELLO, sport=50001), tcp_frame(PSIPHON_FLIGHT, reverse=True)], False),
    "an http request line": ([tcp_frame(b"GET / HTTP/1.1\r\n", dport=80)], True),
    "a payload starting with a letter but no method": ([tcp_frame(b"Hello,there,no,space" * 2)], False),
    "dns over udp": ([pcapgen.dns_query_frame(CLIENT4, SERVER4, 5353, "a.example")], True),
    "a quic long header": ([udp_frame(b"\xc3\x00\x00\x00\x01" + bytes(40))], True),
    "a quic short header": ([udp_frame(b"\x41" + bytes(40))], False),
    "a tiny udp payload in a padded frame": ([udp_frame(b"\x41\x00") + bytes(20)], False),
    "ip options": ([bytes(Ether() / IP(src=CLIENT4, dst=SERVER4, options=b"\x01\x01\x01\x00")
                          / TCP(flags="A") / Raw(APP_DATA))], True),
    "a short frame": ([bytes(Ether(type=0x0800) / bytes(30))], True),
}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
@pytest.mark.parametrize(("frames", "fed"), FED.values(), ids=FED.keys())
def test_which_frames_go_to_feed(implementation, frames, fed):
    every, triaged, handed = both_ways(implementation, frames)
    assert (frames[-1] in handed) is fed
    assert triaged == every


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_other_link_types_all_go_to_feed(implementation):
    raw = [tcp_frame(APP_DATA)[14:], tcp_frame(HELLO)[14:]]
    every, triaged, handed = both_ways(implementation, raw, linktype=LINKTYPE_RAW)
    assert handed == raw and triaged == every


def pcap_block(frames: list[bytes], order: str = "<", lead: bytes = b"") -> bytearray:
    block = bytearray(lead)
    for i, frame in enumerate(frames):
        block += struct.pack(order + "IIII", int(T0) + i, 250_000, len(frame), len(frame)) + frame
    return block


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
@pytest.mark.parametrize(("cut", "expected"), [(0, "all"), (1, "all but the last"), (20, "all but the last")],
                         ids=["whole", "cut in the last frame", "cut in the last header"])
def test_records_stops_before_a_cut_record(implementation, cut, expected):
    frames = [tcp_frame(HELLO), tcp_frame(APP_DATA), tcp_frame(flags="FA")]
    block = pcap_block(frames, lead=b"junk")
    n = len(block) - cut
    sensor = Sensor(lambda obs: None)
    pos = implementation(sensor).records(block, 4, n, False, 1e-6, LINKTYPE_ETHERNET)
    last_start = len(block) - 16 - len(frames[-1])
    assert (pos, sensor.packets) == ((len(block), 3) if expected == "all" else (last_start, 2))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_records_reads_either_byte_order_and_its_timestamps(implementation, order):
    seen = []
    sensor = Sensor(lambda obs: None)
    sensor.feed = lambda ts, lt, frame: seen.append((ts, lt, len(frame)))
    block = pcap_block([tcp_frame(HELLO)], order)
    end = implementation(sensor).records(block, 0, len(block), order == ">", 1e-6, LINKTYPE_ETHERNET)
    assert end == len(block)
    assert seen == [(T0 + 0.25, LINKTYPE_ETHERNET, len(tcp_frame(HELLO)))]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
def test_records_refuses_a_record_longer_than_any_capture(implementation):
    block = bytearray(struct.pack("<IIII", 1, 0, MAX_RECORD + 1, 60)) + bytes(60)
    assert implementation(Sensor(lambda obs: None)).records(block, 0, len(block), False, 1e-6, 1) == -1


def test_a_built_twin_is_the_one_in_use():
    """A compiled twin built here (by `pip install -e .`) that does not import (stale, another Python)
    would leave the Python one in use unseen: it must be the one in use."""
    built = sorted(Path(triage.__file__).parent.glob("_triage*.so"))
    if not built or os.environ.get("SOCIAL_MONITOR_PURE_TRIAGE") == "1":
        pytest.skip("no compiled triage built here (no C compiler or Cython when installed), or turned off")
    assert COMPILED is not None and triage.COMPILED


def test_which_triage_is_in_use_is_said():
    """`Triage` is the compiled twin when it is built (and not turned off), else the Python one."""
    assert triage.COMPILED is (triage.Triage is not PureTriage)
    if triage.COMPILED:
        assert COMPILED is triage.Triage
    print(f"triage in use: {'compiled' if triage.COMPILED else 'pure Python'}")


def kernel_block(frames: list[tuple[bytes, int]]) -> tuple[mmap.mmap, int]:
    """(frame, VLAN id or 0) laid out as a TPACKET_V3 block holds them: each tpacket3_hdr, the frame at
    its tp_mac, the next header 16-byte aligned; the VLAN tag taken off, as the kernel does."""
    m = mmap.mmap(-1, 1 << 20)
    at = first = 48  # after struct tpacket_block_desc
    for i, (frame, vlan) in enumerate(frames):
        mac = 82  # TPACKET_ALIGN(sizeof tpacket3_hdr) + sockaddr_ll, then the frame
        next_offset = 0 if i == len(frames) - 1 else (mac + len(frame) + 15) & ~15
        status = 1 | (TP_STATUS_VLAN_VALID if vlan else 0)
        TPACKET3_HDR.pack_into(m, at, next_offset, int(T0) + i, 500_000_000, len(frame), len(frame), status,
                               mac, mac + 14, 0, vlan, 0x8100 if vlan else 0)
        m[at + mac:at + mac + len(frame)] = frame
        at += next_offset
    return m, first


RING_FRAMES = {
    "a handshake and its data": [(tcp_frame(flags="S", seq=999), 0), (tcp_frame(HELLO), 0),
                                 (tcp_frame(APP_DATA, reverse=True), 0), (tcp_frame(flags="FA"), 0)],
    "a frame whose vlan tag the kernel took off": [(tcp_frame(HELLO), 7), (tcp_frame(APP_DATA), 7)],
    "quic and dns": [(udp_frame(b"\x41" + bytes(40)), 0),
                     (pcapgen.dns_query_frame(CLIENT4, SERVER4, 5353, "a.example"), 0)],
}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
@pytest.mark.parametrize("frames", RING_FRAMES.values(), ids=RING_FRAMES.keys())
def test_a_ring_block_gives_what_feeding_every_frame_gives(implementation, frames):
    ring, first = kernel_block(frames)
    results = []
    for triaged in (False, True):
        out: list = []
        sensor = Sensor(out.append)
        if triaged:
            implementation(sensor).block(ring, first, len(frames), LINKTYPE_ETHERNET, with_vlan_tag)
        else:
            for i, (frame, vlan) in enumerate(frames):
                tagged = frame[:12] + b"\x81\x00" + vlan.to_bytes(2, "big") + frame[12:] if vlan else frame
                sensor.feed(T0 + i + 0.5, LINKTYPE_ETHERNET, tagged)
        sensor.close()
        results.append((out, sensor.error_counts, sensor.packets))
    assert results[1] == results[0]
    assert results[0][0]  # names found: the comparison is not between two empty lists


TEMPLATES = {
    "tcp with a hello": tcp_frame(HELLO)[:120], "tcp data": tcp_frame(APP_DATA),
    "a bare ack": tcp_frame(flags="A"),
    "udp quic": udp_frame(b"\xc3\x00\x00\x00\x01" + bytes(40)), "ipv6 tcp": tcp_frame(APP_DATA, v6=True),
    "ipv6 udp": udp_frame(b"\x41" + bytes(30), v6=True),
}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
@pytest.mark.parametrize("template", TEMPLATES.values(), ids=TEMPLATES.keys())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_frames_give_what_feeding_them_gives(implementation, template, data):
    """Any byte of a real header changed, the frame cut anywhere: the same as `feed`, in bytes that end
    where the frame ends (nothing past it may be read)."""
    frame = bytearray(template)
    for _ in range(data.draw(st.integers(0, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    frame = bytes(frame[:data.draw(st.integers(1, len(frame)))])
    every, triaged, _handed = both_ways(implementation, [tcp_frame(flags="S", seq=999), frame], in_bytes)
    assert triaged == every


@pytest.mark.integration
@pytest.mark.skipif(COMPILED is None, reason="no compiled triage built here")
def test_the_twin_imported_before_triage_is_still_the_one_in_use():
    """triage.py imports the twin at its end: a process importing the twin first must get it too."""
    probe = ("import monitor.capture._triage as twin\nfrom monitor.capture import triage\n"
             "print(triage.COMPILED and triage.Triage is twin.Triage)")
    env = {k: v for k, v in os.environ.items() if k != "SOCIAL_MONITOR_PURE_TRIAGE"}
    env["PYTHONPATH"] = str(Path(triage.__file__).resolve().parents[2])
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.stdout.strip() == "True", result.stderr


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS.values(), ids=IMPLEMENTATIONS.keys())
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_shared_captures_through_each_triage_give_what_feed_gives(implementation, capture):
    """Each shared capture's frames (those of its first link type) as one block of pcap records."""
    frames = list(read_frames(capture))
    linktype = frames[0][1]
    records = []  # (seconds, microseconds, frame): the times as a pcap of microseconds holds them
    for ts, lt, frame in frames:
        if lt == linktype:
            seconds = int(ts)
            records.append((seconds, min(round((ts - seconds) * 1e6), 999_999), frame))
    block = bytearray()
    for seconds, micros, frame in records:
        block += struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame
    results = []
    for triaged in (False, True):
        out: list = []
        sensor = Sensor(out.append)
        if triaged:
            assert implementation(sensor).records(block, 0, len(block), False, 1e-6, linktype) == len(block)
        else:
            for seconds, micros, frame in records:
                sensor.feed(seconds + micros * 1e-6, linktype, frame)
        sensor.close()
        results.append((out, sensor.error_counts, sensor.packets))
    assert results[1] == results[0]
    assert results[0][2] == len(records)
