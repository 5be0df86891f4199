"""A classic pcap fed in place gives exactly what feeding every frame to `Sensor.feed` gives."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from monitor.capture import sources
from monitor.capture.pcap_feed import feed_pcap
from monitor.capture.sensor import Sensor
from monitor.capture.sources import ReadStats, open_capture, read_frames
from monitor.observation import Observation
from tests import pcapgen
from tests.capture.test_server_cert import server_flight
from tests.capture_helpers import CLIENT4, SERVER4, client_hello, tcp_frame, tls_records, udp_frame

SHARED = Path(__file__).resolve().parents[3] / "shared" / "pcaps"
CAPTURES = sorted(p for p in [*SHARED.glob("*.pcap*"), *SHARED.glob("bypass/*.pcap*")])
T0 = 1_700_000_000.0


def write_pcap(path: Path, frames: list[tuple[float, bytes]], linktype: int = 1, order: str = "<") -> Path:
    with open(path, "wb") as out:
        out.write(struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for ts, frame in frames:
            seconds = int(ts)
            micros = round((ts - seconds) * 1e6)
            out.write(struct.pack(order + "IIII", seconds, micros, len(frame), len(frame)))
            out.write(frame)
    return path


def both_ways(path: Path) -> tuple[tuple, tuple]:
    """(observations, parse errors, packets, frames, truncated) fed frame by frame, then in place."""
    results = []
    for in_place in (False, True):
        out: list[Observation] = []
        sensor, stats = Sensor(out.append), ReadStats()
        if in_place:
            f, magic = open_capture(path)
            feed_pcap(sensor, f, magic, stats)
        else:
            for ts, linktype, frame in read_frames(path, stats):
                sensor.feed(ts, linktype, frame)
        sensor.close()
        results.append((out, sensor.error_counts, sensor.packets, stats.frames, stats.truncated))
    return results[0], results[1]


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_shared_captures_give_the_same_observations(capture, tmp_path):
    frames = list(read_frames(capture))
    linktype = frames[0][1]
    same_link = [(ts, frame) for ts, lt, frame in frames if lt == linktype]
    path = write_pcap(tmp_path / "c.pcap", same_link, linktype)
    frame_by_frame, in_place = both_ways(path)
    assert in_place == frame_by_frame


@pytest.mark.skipif(not (SHARED / "bypass" / "psiphon3.pcap").exists(), reason="shared captures not present")
def test_the_psiphon_capture_with_an_ethernet_header_is_marked_in_place(tmp_path):
    """psiphon3.pcap is raw IP (fed frame by frame); with an Ethernet header, as a live interface
    gives it, the triage reads it in place and must still hand over the server's certificate."""
    frames = [(ts, bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(frame)))
              for ts, _lt, frame in read_frames(SHARED / "bypass" / "psiphon3.pcap")]
    frame_by_frame, in_place = both_ways(write_pcap(tmp_path / "c.pcap", frames))
    assert in_place == frame_by_frame
    assert [o.obscured_by for o in in_place[0] if o.obscured_by] == ["vpn"]


def ether(ip, l4, payload: bytes = b"") -> bytes:
    return bytes(Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb") / ip / l4 / Raw(payload))


HELLO = tls_records(client_hello("www.facebook.com"))
SERVER_HELLO = b"\x16\x03\x03\x00\x30\x02" + bytes(0x2F)
DNS_QUERY = pcapgen.dns_query_frame(CLIENT4, SERVER4, 5353, "a.example")[42:]  # the DNS message alone
NAMELESS_HELLO = tls_records(client_hello(None))
PSIPHON_FLIGHT = server_flight(["sni.cloudflaressl.com", "psiphon3.net"])  # ServerHello, Certificate
PADDED = ether(IP(src=CLIENT4, dst=SERVER4), TCP(sport=50000, dport=443, flags="PA")) + bytes(6)
# Each row: frames in time order (1 ms apart), and what the row is about.
CASES = {
    "syn then a hello split in two": [tcp_frame(flags="S", seq=999), tcp_frame(HELLO[:40]),
                                      tcp_frame(HELLO[40:], seq=1040)],
    "syn then a hello's halves out of order": [tcp_frame(flags="S", seq=999), tcp_frame(HELLO[40:], seq=1040),
                                               tcp_frame(HELLO[:40])],
    "hello without a syn, then data and a fin": [tcp_frame(HELLO), tcp_frame(b"\x17\x03\x03" + bytes(40),
                                                                              seq=1000 + len(HELLO)),
                                                 tcp_frame(flags="FA", seq=2000)],
    "a flow ended by a rst after a second of data": [tcp_frame(HELLO)] + [tcp_frame(b"\x17" * 30)] * 3
                                                    + [tcp_frame(flags="R")],
    "a server hello is not an error": [tcp_frame(SERVER_HELLO, reverse=True)],
    "a syn-ack does not open a stream": [tcp_frame(flags="SA", reverse=True), tcp_frame(HELLO)],
    "a syn with data (fast open)": [tcp_frame(HELLO, flags="S", seq=999)],
    "a fin with the hello in it": [tcp_frame(HELLO, flags="FA")],
    "http with a method outside the list": [tcp_frame(b"BREW /pot HTTP/1.1\r\nHost: coffee.example\r\n\r\n",
                                                      dport=80)],
    "http method split before its space": [tcp_frame(flags="S", seq=999, dport=80),
                                           tcp_frame(b"GE", dport=80),
                                           tcp_frame(b"T / HTTP/1.1\r\nHost: a.example\r\n\r\n", seq=1002,
                                                     dport=80)],
    "a binary segment is never http": [tcp_frame(b"\x00\x01binary" * 4, dport=80)],
    "dns over tcp": [tcp_frame(len(DNS_QUERY).to_bytes(2, "big") + DNS_QUERY, dport=53)],
    "a frame padded past the ip length": [tcp_frame(HELLO), PADDED],
    "openvpn over tcp": [tcp_frame(b"\x00\x0e\x38" + bytes(13), dport=1194)],
    "dns over udp": [pcapgen.dns_query_frame(CLIENT4, SERVER4, 5353, "www.instagram.com")],
    "wireguard's first byte": [udp_frame(b"\x01\x00\x00\x00" + bytes(144), dport=51820)],
    "a udp payload starting with 0x00 0x07": [udp_frame(b"\x00\x07" + bytes(40), sport=443, dport=50000)],
    "a short quic header": [udp_frame(b"\x41" + bytes(40)), udp_frame(b"\x40" + bytes(40))],
    "a legacy gquic header": [udp_frame(b"\x09" + bytes(8) + b"Q043" + bytes(30))],
    "a tiny udp payload": [udp_frame(b"\x80\x01")],
    "ipv6 tcp and udp": [tcp_frame(HELLO, v6=True), tcp_frame(b"\x17" * 20, v6=True),
                         udp_frame(b"\x41" + bytes(30), v6=True)],
    "a vlan tag": [bytes(Ether() / Dot1Q(vlan=7) / IP(src=CLIENT4, dst=SERVER4) / TCP(flags="PA")
                         / Raw(HELLO))],
    "ip options": [bytes(Ether() / IP(src=CLIENT4, dst=SERVER4, options=b"\x01\x01\x01\x00") / TCP(flags="PA")
                         / Raw(HELLO))],
    "a fragment": [bytes(Ether() / IP(src=CLIENT4, dst=SERVER4, flags="MF", id=9) / UDP(dport=53)
                         / bytes(20))],
    "vxlan": [bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4789, dport=4789) / VXLAN(vni=5)
                    / Ether() / IP(src=CLIENT4, dst=SERVER4) / TCP(flags="PA") / Raw(HELLO))],
    "a truncated tcp header": [tcp_frame(HELLO)[:60]],
    "a one-byte payload of 0x16 ending the frame": [tcp_frame(b"\x16")],
    "arp": [bytes(Ether(type=0x0806) / bytes(46))],
    "a server's certificate after a hello with no name": [tcp_frame(NAMELESS_HELLO),
                                                          tcp_frame(PSIPHON_FLIGHT, reverse=True)],
    "the same over ipv6": [tcp_frame(NAMELESS_HELLO, v6=True),
                           tcp_frame(PSIPHON_FLIGHT, reverse=True, v6=True)],
    "a server's certificate after a hello with a name": [tcp_frame(HELLO),
                                                         tcp_frame(PSIPHON_FLIGHT, reverse=True)],
}


@pytest.mark.parametrize("frames", CASES.values(), ids=CASES.keys())
def test_each_kind_of_packet_gives_the_same_observations(frames, tmp_path):
    path = write_pcap(tmp_path / "c.pcap", [(T0 + i * 0.5, frame) for i, frame in enumerate(frames)])
    frame_by_frame, in_place = both_ways(path)
    assert in_place == frame_by_frame


def test_a_quiet_packet_moves_its_flows_last_packet(tmp_path):
    frames = [tcp_frame(HELLO), tcp_frame(b"\x17" * 30, reverse=True)]
    path = write_pcap(tmp_path / "c.pcap", [(T0, frames[0]), (T0 + 7.0, frames[1])])
    frame_by_frame, in_place = both_ways(path)
    assert in_place == frame_by_frame and [o.timestamp for o in in_place[0]] == [T0, T0 + 7.0]


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_either_byte_order(order, tmp_path):
    path = write_pcap(tmp_path / "c.pcap", [(T0, tcp_frame(HELLO))], order=order)
    frame_by_frame, in_place = both_ways(path)
    assert in_place == frame_by_frame and in_place[0][0].hostname == "www.facebook.com"


@pytest.mark.parametrize("cut", [1, 5, 20], ids=["in the frame", "the frame's end", "in the record header"])
def test_a_truncated_tail_is_counted_like_the_reader(cut, tmp_path):
    path = write_pcap(tmp_path / "c.pcap", [(T0, tcp_frame(HELLO)), (T0 + 1, tcp_frame(b"x" * 10))])
    path.write_bytes(path.read_bytes()[:-cut])
    frame_by_frame, in_place = both_ways(path)
    assert in_place == frame_by_frame and in_place[4] is True


def test_a_record_longer_than_its_cap_ends_the_file(tmp_path):
    path = write_pcap(tmp_path / "c.pcap", [(T0, tcp_frame(HELLO))])
    path.write_bytes(path.read_bytes() + struct.pack("<IIII", 1, 0, (1 << 24) + 1, 0) + bytes(64))
    frame_by_frame, in_place = both_ways(path)
    assert in_place == frame_by_frame and in_place[3:] == (1, True)


@pytest.mark.parametrize("block", [64, 100, 4096], ids=["smaller than a frame", "odd", "many frames"])
def test_records_across_block_boundaries(block, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "CHUNK", block)
    frames = [tcp_frame(flags="S", seq=999)] + [tcp_frame(part, seq=1000 + i * 90)
                                                 for i, part in enumerate(HELLO[j : j + 90]
                                                                          for j in range(0, len(HELLO), 90))]
    path = write_pcap(tmp_path / "c.pcap", [(T0 + i, frame) for i, frame in enumerate(frames)])
    frame_by_frame, in_place = both_ways(path)
    assert in_place == frame_by_frame and in_place[0][0].hostname == "www.facebook.com"


def test_other_link_types_go_through_feed(tmp_path):
    raw = bytes(IP(src=CLIENT4, dst=SERVER4) / TCP(flags="PA") / Raw(HELLO))
    path = write_pcap(tmp_path / "c.pcap", [(T0, raw)], linktype=101)
    frame_by_frame, in_place = both_ways(path)
    assert in_place == frame_by_frame and in_place[0][0].hostname == "www.facebook.com"


def test_ipv6_udp_next_to_a_tcp_handshake(tmp_path):
    frames = [bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5000, dport=6000)
                    / Raw(b"\x41" * 30)), tcp_frame(HELLO, v6=True)]
    path = write_pcap(tmp_path / "c.pcap", [(T0 + i, f) for i, f in enumerate(frames)])
    frame_by_frame, in_place = both_ways(path)
    assert in_place == frame_by_frame and len(in_place[0]) == 1
