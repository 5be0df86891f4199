"""pcap and pcapng reading: link types, time resolution, byte order."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, wrpcap

from monitor.capture.sources import ReadStats, read_frames
from monitor.errors import UserError

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
