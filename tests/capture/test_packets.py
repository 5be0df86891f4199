"""Header decode from bytes: every link type and tunnel the sensor claims, built with scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether
from scapy.packet import Raw

from monitor.capture.packets import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    PROTO_TCP,
    PROTO_UDP,
    decode,
    packed_ip_text,
)

PAYLOAD = b"hello, sensor"
ETH = Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb")
TCP_L4 = TCP(sport=40000, dport=443, seq=12345, flags="PA") / Raw(PAYLOAD)
UDP_L4 = UDP(sport=40000, dport=53) / Raw(PAYLOAD)
V4 = IP(src="10.0.0.1", dst="10.0.0.2")
V6 = IPv6(src="2001:db8::1", dst="2001:db8::2")

CASES = [
    ("ethernet ipv4 tcp", LINKTYPE_ETHERNET, ETH / V4 / TCP_L4, PROTO_TCP, "10.0.0.1", None),
    ("ethernet ipv4 udp", LINKTYPE_ETHERNET, ETH / V4 / UDP_L4, PROTO_UDP, "10.0.0.1", None),
    ("ipv4 options", LINKTYPE_ETHERNET,
     ETH / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01" * 4) / TCP_L4,
     PROTO_TCP, "10.0.0.1", None),
    ("ethernet ipv6 tcp", LINKTYPE_ETHERNET, ETH / V6 / TCP_L4, PROTO_TCP, "2001:db8::1", None),
    ("ipv6 extension headers", LINKTYPE_ETHERNET,
     ETH / V6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP_L4,
     PROTO_UDP, "2001:db8::1", None),
    ("ipv6 first fragment", LINKTYPE_ETHERNET, ETH / V6 / IPv6ExtHdrFragment(offset=0, m=1) / UDP_L4,
     PROTO_UDP, "2001:db8::1", None),
    ("802.1q", LINKTYPE_ETHERNET, ETH / Dot1Q(vlan=42) / V4 / TCP_L4, PROTO_TCP, "10.0.0.1", 42),
    ("q-in-q", LINKTYPE_ETHERNET, Ether(type=0x88A8) / Dot1Q(vlan=7) / Dot1Q(vlan=42) / V6 / UDP_L4,
     PROTO_UDP, "2001:db8::1", 7),
    ("6in4", LINKTYPE_ETHERNET, ETH / IP(src="192.0.2.1", dst="192.0.2.2", proto=41) / V6 / TCP_L4,
     PROTO_TCP, "2001:db8::1", None),
    ("ip-in-ip", LINKTYPE_ETHERNET, ETH / IP(src="192.0.2.1", dst="192.0.2.2", proto=4) / V4 / UDP_L4,
     PROTO_UDP, "10.0.0.1", None),
    ("4in6", LINKTYPE_ETHERNET, ETH / IPv6(src="2001:db8::a", dst="2001:db8::b", nh=4) / V4 / TCP_L4,
     PROTO_TCP, "10.0.0.1", None),
    ("gre", LINKTYPE_ETHERNET, ETH / IP(src="192.0.2.1", dst="192.0.2.2") / GRE() / V4 / TCP_L4,
     PROTO_TCP, "10.0.0.1", None),
    ("linux cooked", LINKTYPE_LINUX_SLL, CookedLinux(proto=0x0800) / V4 / TCP_L4,
     PROTO_TCP, "10.0.0.1", None),
    ("raw ipv6", LINKTYPE_RAW, V6 / UDP_L4, PROTO_UDP, "2001:db8::1", None),
    ("raw ipv4 link type 228", LINKTYPE_IPV4, V4 / TCP_L4, PROTO_TCP, "10.0.0.1", None),
]


@pytest.mark.parametrize(("linktype", "packet", "proto", "src", "vlan"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decode_finds_transport_and_payload(linktype, packet, proto, src, vlan):
    frame = bytes(packet)
    d = decode(linktype, frame)
    assert d is not None
    assert d[0] == proto
    assert packed_ip_text(d[1]) == src
    assert (d[3], d[4]) == ((40000, 443) if proto == PROTO_TCP else (40000, 53))
    assert frame[d[5] : d[6]] == PAYLOAD
    assert d[9] == vlan
    if proto == PROTO_TCP:
        assert d[7] == 12345


def test_ethernet_padding_is_not_payload():
    frame = bytes(ETH / V4 / TCP(flags="A")) + b"\x00" * 6
    d = decode(LINKTYPE_ETHERNET, frame)
    assert d is not None and d[5] == d[6]


@pytest.mark.parametrize("packet", [
    ETH / IP(src="10.0.0.1", dst="10.0.0.2", frag=10, proto=17) / Raw(b"x" * 40),
    ETH / V6 / IPv6ExtHdrFragment(offset=5, nh=17) / Raw(b"x" * 40),
    ETH / V4 / Raw(b"\x00" * 4),
], ids=["ipv4 later fragment", "ipv6 later fragment", "truncated transport"])
def test_no_transport_header_means_none(packet):
    assert decode(LINKTYPE_ETHERNET, bytes(packet)) is None


@pytest.mark.parametrize("cut", range(0, 70, 3))
def test_truncated_frames_never_raise(cut):
    frame = bytes(ETH / Dot1Q(vlan=3) / V6 / IPv6ExtHdrHopByHop() / TCP_L4)[:cut]
    decode(LINKTYPE_ETHERNET, frame)
