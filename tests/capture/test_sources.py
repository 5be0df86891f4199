"""pcap and pcapng reading: link types, time resolution, byte order."""

from __future__ import annotations

import io
import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, wrpcap

from monitor.capture.sources import ReadStats, pcap_header, read_frames
from monitor.errors import UserError
from tests.pcapgen import dns_query_frame, write_pcapng

PACKETS = [Ether() / IP() / UDP() / (b"x" * i) for i in range(1, 4)]
for i, p in enumerate(PACKETS):
    p.time = 1_700_000_000.25 + i


def test_pcap_round_trip(tmp_path):
    path = tmp_path / "a.pcap"
    wrpcap(str(path), PACKETS)
    frames = list(read_frames(path))
    assert [f[2] for f in frames] == [bytes(p) for p in PACKETS]
    assert {f[1] for f in frames} == {1}
    assert frames[0][0] == pytest.approx(1_700_000_000.25)


def test_pcap_nanosecond_big_endian(tmp_path):
    path = tmp_path / "b.pcap"
    wrpcap(str(path), PACKETS, nano=True, endianness=">")
    frames = list(read_frames(path))
    assert [f[2] for f in frames] == [bytes(p) for p in PACKETS]
    assert frames[1][0] == pytest.approx(1_700_000_001.25)


def test_pcapng_round_trip(tmp_path):
    path = tmp_path / "c.pcapng"
    with PcapNgWriter(str(path)) as writer:
        for p in PACKETS:
            writer.write(p)
    stats = ReadStats()
    frames = list(read_frames(path, stats))
    assert [f[2] for f in frames] == [bytes(p) for p in PACKETS]
    assert frames[2][0] == pytest.approx(1_700_000_002.25)
    assert stats.frames == 3 and not stats.truncated


def test_truncated_tail_is_reported_not_raised(tmp_path):
    path = tmp_path / "d.pcap"
    wrpcap(str(path), PACKETS)
    path.write_bytes(path.read_bytes()[:-5])
    stats = ReadStats()
    assert len(list(read_frames(path, stats))) == 2
    assert stats.truncated


def test_not_a_capture(tmp_path):
    path = tmp_path / "e.pcap"
    path.write_text("hello")
    with pytest.raises(UserError, match="not a pcap"):
        list(read_frames(path))


DNS_FRAME = dns_query_frame("10.0.0.5", "10.0.0.1", 40000, "www.tiktok.com")
NOW_US = 1_700_000_000_000_000  # 2023-11-14 in microseconds


@pytest.mark.parametrize(
    ("tsresol", "units", "seconds"),
    [
        (None, NOW_US, 1_700_000_000.0),  # microseconds, the default
        (9, NOW_US * 1000, 1_700_000_000.0),  # nanoseconds
        (0x80 | 10, 1_700_000_000 << 10, 1_700_000_000.0),  # 2^-10 s
        (0x80, 1_700_000_000, 1_700_000_000.0),  # 2^-0: whole seconds
        (0x80, NOW_US, None),  # whole seconds, but microsecond values: year 53 million
        (None, 0xFFFF_FFFF_FFFF_FFFF, None),  # all ones: year 586524
        (0, 0xFFFF_FFFF_FFFF_FFFF, None),  # 10^0: whole seconds, all ones
        (None, (1 << 32) * 1_000_000, None),  # 2106-02-07: past what a pcap can hold
        (None, 0, 0.0),  # 1970 is a time
    ],
    ids=["microseconds", "nanoseconds", "binary-fraction", "whole-seconds", "resolution-0x80",
         "all-ones", "all-ones-seconds", "year-2106", "epoch"],
)
def test_pcapng_timestamp_in_range_or_counted_and_skipped(tmp_path, tsresol, units, seconds):
    path = tmp_path / "t.pcapng"
    write_pcapng(path, [(units, DNS_FRAME)], tsresol=tsresol)
    stats = ReadStats()
    frames = list(read_frames(path, stats))
    if seconds is None:
        assert (frames, stats.frames, stats.bad_timestamps) == ([], 0, 1)
    else:
        assert [(f[0], f[2]) for f in frames] == [(pytest.approx(seconds), DNS_FRAME)]
        assert (stats.frames, stats.bad_timestamps) == (1, 0)


def test_a_frame_with_a_bad_time_does_not_stop_the_file(tmp_path):
    path = tmp_path / "mixed.pcapng"
    write_pcapng(path, [(NOW_US, DNS_FRAME), (0xFFFF_FFFF_FFFF_FFFF, DNS_FRAME), (NOW_US + 1, DNS_FRAME)])
    stats = ReadStats()
    assert len(list(read_frames(path, stats))) == 2
    assert (stats.frames, stats.bad_timestamps, stats.truncated) == (2, 1, False)


@pytest.mark.integration
def test_daemon_reads_the_file_after_one_with_bad_times(tmp_path, write_config, example_data):
    """`run --pcap bad --pcap dns.pcap`: the second file is read (it used to stop at the first)."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from tests.conftest import REPO, SHARED

    good = SHARED / "pcaps" / "dns.pcap"
    if not good.exists():
        pytest.skip("needs ../shared/pcaps")
    bad = tmp_path / "a-bad.pcapng"
    write_pcapng(bad, [(NOW_US, DNS_FRAME)], tsresol=0x80)
    example_data["store"]["path"] = str(tmp_path / "store.db")
    config = write_config(example_data)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config), "--no-proxy",
         "--metrics-listen", f"127.0.0.1:{port}", "--pcap", str(bad), "--pcap", str(good)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    read = 0.0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not read:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                metrics = ""
            read = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                       if line.startswith('social_monitor_packets_total{interface="file:dns.pcap"}'))
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        finally:
            if process.poll() is None:
                process.kill()
    assert read > 0


@pytest.mark.parametrize(("magic", "header", "expected"), [
    (b"\xd4\xc3\xb2\xa1", struct.pack("<HHiIII", 2, 4, 0, 0, 65535, 1), ("<", 1e-6, 1)),
    (b"\xa1\xb2\xc3\xd4", struct.pack(">HHiIII", 2, 4, 0, 0, 65535, 113), (">", 1e-6, 113)),
    (b"\x4d\x3c\xb2\xa1", struct.pack("<HHiIII", 2, 4, 0, 0, 65535, 0x1000_0001), ("<", 1e-9, 1)),  # FCS bits
    (b"\xd4\xc3\xb2\xa1", b"\x02\x00\x04\x00", None),  # the file ends inside its header
])
def test_pcap_header(magic, header, expected):
    stats = ReadStats()
    assert pcap_header(io.BytesIO(header), magic, stats) == expected
    assert stats.truncated is (expected is None)


# ReadBuffer: (file bytes, buffer size, the `pos` of each refill) -> what buf[:n] holds after each
READ_BUFFER = [
    ("first-read", b"abcdefgh", 4, [0], [b"abcd"]),
    ("tail-kept", b"abcdefgh", 4, [0, 3], [b"abcd", b"defg"]),
    ("all-read-then-end", b"abcdef", 4, [0, 4, 2], [b"abcd", b"ef", b""]),
    ("grows-when-one-record-fills-it", b"abcdefghij", 4, [0, 0], [b"abcd", b"abcdefgh"]),
    ("empty-file", b"", 4, [0], [b""]),
]


@pytest.mark.parametrize(("data", "size", "positions", "held"), [r[1:] for r in READ_BUFFER],
                         ids=[r[0] for r in READ_BUFFER])
def test_read_buffer_keeps_the_unread_tail(monkeypatch, data, size, positions, held):
    import io

    from monitor.capture import sources

    monkeypatch.setattr(sources, "CHUNK", size)
    reader = sources.ReadBuffer(io.BytesIO(data))
    got = []
    for pos in positions:
        reader.refill(pos)
        got.append(bytes(reader.buf[: reader.n]))
    reader.release()
    assert got == held


def test_read_buffer_starts_with_bytes_already_read_and_drops_from_the_front():
    import io

    from monitor.capture.sources import ReadBuffer

    reader = ReadBuffer(io.BytesIO(b"6789"), b"12345")
    assert bytes(reader.buf[: reader.n]) == b"12345"
    assert reader.refill(0) == 4 and bytes(reader.buf[: reader.n]) == b"123456789"
    reader.drop_front(3)
    assert bytes(reader.buf[: reader.n]) == b"456789"
    reader.release()
