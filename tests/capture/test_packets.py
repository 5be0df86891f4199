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
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PROTO_FRAGMENT,
    PROTO_TCP,
    PROTO_UDP,
    decode,
    mac_text,
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
    ("ipv6 atomic fragment", LINKTYPE_ETHERNET, ETH / V6 / IPv6ExtHdrFragment(offset=0, m=0) / UDP_L4,
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


def test_truncated_transport_means_none():
    assert decode(LINKTYPE_ETHERNET, bytes(ETH / V4 / Raw(b"\x00" * 4))) is None


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (ETH / IP(src="10.0.0.1", dst="10.0.0.2", id=77, frag=10, proto=17) / Raw(b"x" * 40),
         ("10.0.0.1", 77, 80, 17, False, 34, 74)),
        (ETH / IP(src="10.0.0.1", dst="10.0.0.2", id=78, flags="MF") / UDP_L4,
         ("10.0.0.1", 78, 0, 17, True, 34, 55)),
        (ETH / V6 / IPv6ExtHdrFragment(offset=5, nh=17, id=0x12345678) / Raw(b"x" * 40),
         ("2001:db8::1", 0x12345678, 40, 17, False, 62, 102)),
        (ETH / V6 / IPv6ExtHdrFragment(offset=0, m=1, nh=17, id=9) / UDP_L4,
         ("2001:db8::1", 9, 0, 17, True, 62, 83)),
    ],
    ids=["ipv4 later fragment", "ipv4 first fragment", "ipv6 later fragment", "ipv6 first fragment"],
)
def test_a_fragment_is_reported_for_reassembly(packet, expected):
    d = decode(LINKTYPE_ETHERNET, bytes(packet))
    assert d is not None and d[0] == PROTO_FRAGMENT
    assert (packed_ip_text(d[1]), d[3], d[4], d[7], bool(d[8]), d[5], d[6]) == expected


@pytest.mark.parametrize("cut", range(0, 70, 3))
def test_truncated_frames_never_raise(cut):
    frame = bytes(ETH / Dot1Q(vlan=3) / V6 / IPv6ExtHdrHopByHop() / TCP_L4)[:cut]
    decode(LINKTYPE_ETHERNET, frame)


# IP(src="10.0.0.1", dst="10.0.0.2", id=1) / UDP(sport=40000, dport=53) / b"hi", generated once with scapy
IPV4_UDP = "4500001e00010000401166cc0a0000010a000002 9c400035000ae6f8 6869"


@pytest.mark.parametrize(
    ("linktype", "frame", "expected"),
    [
        (LINKTYPE_RAW, IPV4_UDP, (PROTO_UDP, "10.0.0.1", "10.0.0.2", 40000, 53, 28, 30)),
        # BSD loopback, family 2 in host byte order (little-endian writer)
        (LINKTYPE_NULL, "02000000" + IPV4_UDP, (PROTO_UDP, "10.0.0.1", "10.0.0.2", 40000, 53, 32, 34)),
        # the same family written big-endian: the IP version nibble decides, not the family field
        (LINKTYPE_LOOP, "00000002" + IPV4_UDP, (PROTO_UDP, "10.0.0.1", "10.0.0.2", 40000, 53, 32, 34)),
        # Ethernet / PPPoE session 1 / PPP protocol 0x0021 (IPv4)
        (LINKTYPE_ETHERNET, "66778899aabb001122334455 8864 1100 0001 0020 0021" + IPV4_UDP,
         (PROTO_UDP, "10.0.0.1", "10.0.0.2", 40000, 53, 50, 52)),
        # Linux cooked v2: protocol 0x0800 first, then 18 bytes of interface and address
        (LINKTYPE_LINUX_SLL2, "0800 0000 00000002 0001 04 06 001122334455 0000" + IPV4_UDP,
         (PROTO_UDP, "10.0.0.1", "10.0.0.2", 40000, 53, 48, 50)),
        # UDP length 10 in a frame padded with 4 zero bytes: the padding is not payload
        (LINKTYPE_RAW, IPV4_UDP + "00000000", (PROTO_UDP, "10.0.0.1", "10.0.0.2", 40000, 53, 28, 30)),
    ],
    ids=["raw-ip", "bsd-null", "loop-big-endian", "pppoe", "linux-sll2", "udp-length-bounds-payload"],
)
def test_decode_literal_frames(linktype, frame, expected):
    d = decode(linktype, bytes.fromhex(frame))
    assert d is not None
    assert (d[0], packed_ip_text(d[1]), packed_ip_text(d[2]), d[3], d[4], d[5], d[6]) == expected


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (LINKTYPE_ETHERNET, "66778899aabb001122334455 0806" + "00" * 28),  # ARP
        (LINKTYPE_ETHERNET, "66778899aabb001122334455 8864 1100 0001 0020 c021" + "00" * 20),  # PPP LCP
        (LINKTYPE_NULL, "0200"),  # shorter than the family field
        (LINKTYPE_RAW, "5500001e"),  # IP version 5
        (LINKTYPE_RAW, "4600001e00010000401166cc0a0000010a000002"),  # IHL says options that are not there
        (147, IPV4_UDP),  # a user-defined link type the sensor does not read
    ],
    ids=["arp", "ppp-control", "null-too-short", "ip-version-5", "ihl-past-end", "unknown-linktype"],
)
def test_decode_literal_frames_without_transport(linktype, frame):
    assert decode(linktype, bytes.fromhex(frame)) is None


@pytest.mark.parametrize(
    ("raw", "text"),
    [("0a000001", "10.0.0.1"), ("ffffffff", "255.255.255.255"),
     ("20010db8" + "00" * 11 + "01", "2001:db8::1"), ("00" * 10 + "ffff" + "0a000001", "::ffff:10.0.0.1")],
    ids=["ipv4", "ipv4-broadcast", "ipv6", "ipv4-mapped"],
)
def test_ip_text(raw, text):
    assert packed_ip_text(bytes.fromhex(raw)) == text


def test_mac_text():
    assert mac_text(bytes.fromhex("3C22FB123456")) == "3c:22:fb:12:34:56"
