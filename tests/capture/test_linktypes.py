"""Link types: a DNS query behind each link layer the sensor reads, built with scapy (or as literal
bytes where scapy has no layer), must come out as the same observation."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.dot11 import Dot11, Dot11QoS, RadioTap
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import LLC, SNAP, CookedLinux, Dot3, Ether
from scapy.layers.ppp import HDLC, PPP, PPPoE

from monitor.capture.linktypes import (
    AT_DOT11,
    AT_ETHERTYPE,
    AT_IP,
    LINKTYPE_ATM_RFC1483,
    LINKTYPE_C_HDLC,
    LINKTYPE_ETHERNET,
    LINKTYPE_IEEE802_11,
    LINKTYPE_IEEE802_11_RADIOTAP,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NFLOG,
    LINKTYPE_PPP,
    LINKTYPE_PPP_ETHER,
    LINKTYPE_PPP_HDLC,
    LINKTYPE_PPP_PPPD,
    dot11,
    first_layer,
    nflog,
    ppp,
)
from tests.capture_helpers import observe

CLIENT, SERVER = "10.9.8.7", "10.0.0.53"
QUERY = IP(src=CLIENT, dst=SERVER) / UDP(sport=5555, dport=53) / DNS(rd=1, qd=DNSQR(qname="link.example.org"))
QUERY6 = (
    IPv6(src="2001:db8::7", dst="2001:db8::53")
    / UDP(sport=5555, dport=53)
    / DNS(rd=1, qd=DNSQR(qname="link.example.org"))
)
SNAP_IP = LLC() / SNAP()


def nflog_frame(payload: bytes, family: int = 2, big_endian: bool = False) -> bytes:
    """NFLOG: family, version 0, group 5; a prefix TLV (type 10), then the packet TLV (type 9)."""
    order = "big" if big_endian else "little"

    def tlv(kind: int, value: bytes) -> bytes:
        body = (4 + len(value)).to_bytes(2, order) + kind.to_bytes(2, order) + value
        return body + bytes(-len(body) % 4)

    return bytes([family, 0]) + (5).to_bytes(2, "big") + tlv(10, b"ssid-guest\x00") + tlv(9, payload)


FRAMES = [
    ("ppp", LINKTYPE_PPP, bytes(PPP(proto=0x0021) / QUERY)),
    ("ppp with hdlc framing", LINKTYPE_PPP_HDLC, bytes(HDLC() / PPP(proto=0x0021) / QUERY)),
    ("ppp compressed protocol field", LINKTYPE_PPP, b"\x21" + bytes(QUERY)),
    ("ppp ipv6", LINKTYPE_PPP, bytes(PPP(proto=0x0057) / QUERY6)),
    ("pppd with direction byte", LINKTYPE_PPP_PPPD, b"\x01\xff\x03\x00\x21" + bytes(QUERY)),
    ("pppoe on ethernet", LINKTYPE_ETHERNET, bytes(Ether() / PPPoE(sessionid=9) / PPP(proto=0x0021) / QUERY)),
    ("pppoe without ethernet", LINKTYPE_PPP_ETHER, bytes(PPPoE(sessionid=9) / PPP(proto=0x0021) / QUERY)),
    (
        "linux cooked v2",
        LINKTYPE_LINUX_SLL2,
        bytes.fromhex("0800 0000 00000002 0001 04 06 001122334455 0000") + bytes(QUERY),
    ),
    ("linux cooked 802.2 llc", LINKTYPE_LINUX_SLL, bytes(CookedLinux(proto=0x0004) / SNAP_IP / QUERY)),
    ("nflog", LINKTYPE_NFLOG, nflog_frame(bytes(QUERY))),
    ("nflog big-endian writer", LINKTYPE_NFLOG, nflog_frame(bytes(QUERY), big_endian=True)),
    ("nflog ipv6", LINKTYPE_NFLOG, nflog_frame(bytes(QUERY6), family=10)),
    (
        "802.11 radiotap to-ds",
        LINKTYPE_IEEE802_11_RADIOTAP,
        bytes(RadioTap() / Dot11(type=2, subtype=0, FCfield=1) / SNAP_IP / QUERY),
    ),
    (
        "802.11 radiotap qos data",
        LINKTYPE_IEEE802_11_RADIOTAP,
        bytes(RadioTap() / Dot11(type=2, subtype=8, FCfield=2) / Dot11QoS() / SNAP_IP / QUERY),
    ),
    (
        "802.11 four addresses",
        LINKTYPE_IEEE802_11,
        bytes(Dot11(type=2, subtype=0, FCfield=3, addr4="02:00:00:00:00:04") / SNAP_IP / QUERY),
    ),
    ("802.3 llc/snap", LINKTYPE_ETHERNET, bytes(Dot3() / SNAP_IP / QUERY)),
    ("atm llc/snap", LINKTYPE_ATM_RFC1483, bytes(SNAP_IP / QUERY)),
    ("cisco hdlc", LINKTYPE_C_HDLC, b"\x0f\x00\x08\x00" + bytes(QUERY)),
]


@pytest.mark.parametrize(("linktype", "frame"), [row[1:] for row in FRAMES], ids=[row[0] for row in FRAMES])
def test_dns_behind_each_link_type(linktype, frame):
    seen = observe([frame], linktype=linktype)
    assert [(o.hostname, o.client_port, o.server_port) for o in seen] == [("link.example.org", 5555, 53)]
    assert seen[0].client_ip in (CLIENT, "2001:db8::7")


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (LINKTYPE_IEEE802_11, bytes(Dot11(type=2, subtype=0, FCfield=0x41) / SNAP_IP / QUERY)),  # protected
        (LINKTYPE_IEEE802_11, bytes(Dot11(type=0, subtype=8) / SNAP_IP / QUERY)),  # a beacon
        (LINKTYPE_IEEE802_11, bytes(Dot11(type=2, subtype=4, FCfield=1))),  # null data
        (LINKTYPE_IEEE802_11_RADIOTAP, b"\x01\x00\x08\x00" + bytes(4)),  # radiotap version 1
        (LINKTYPE_NFLOG, nflog_frame(bytes(QUERY))[:20]),  # cut before the packet TLV
        (LINKTYPE_NFLOG, b"\x07\x00\x00\x05" + nflog_frame(bytes(QUERY))[4:]),  # family 7
        (LINKTYPE_PPP, bytes(PPP(proto=0xC021) / b"\x01\x01\x00\x04")),  # LCP
        (LINKTYPE_ETHERNET, bytes(Dot3() / LLC(dsap=0x42, ssap=0x42) / bytes(40))),  # spanning tree
    ],
    ids=[
        "802.11-protected",
        "802.11-beacon",
        "802.11-null-data",
        "radiotap-version",
        "nflog-cut",
        "nflog-family",
        "ppp-lcp",
        "802.3-stp",
    ],
)
def test_link_layers_without_a_readable_packet(linktype, frame):
    assert observe([frame], linktype=linktype) == []


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("0021 45", (AT_ETHERTYPE, 0x0800, 2)),
        ("ff03 0057 60", (AT_ETHERTYPE, 0x86DD, 4)),
        ("21 45", (AT_ETHERTYPE, 0x0800, 1)),
        ("0281 00", (AT_ETHERTYPE, 0x8847, 2)),
        ("c021 01", None),
        ("ff03", None),
    ],
    ids=["ipv4", "hdlc-ipv6", "compressed", "mpls", "lcp", "no-protocol"],
)
def test_ppp_header_table(frame, expected):
    buf = bytes.fromhex(frame)
    assert ppp(buf, 0, len(buf)) == expected


def test_nflog_finds_the_packet_tlv_after_padding():
    frame = nflog_frame(bytes(QUERY))
    layer = nflog(frame, 0, len(frame))
    assert layer is not None and layer[0] == AT_IP and frame[layer[2] :].startswith(bytes(QUERY))


@pytest.mark.parametrize(
    ("fc", "header"),
    [(0x0801, 24), (0x8802, 26), (0x8803, 32), (0x8882, 30)],
    ids=["data", "qos-data", "qos-four-addresses", "qos-ht-control"],
)
def test_dot11_header_lengths(fc, header):
    frame = fc.to_bytes(2, "big") + bytes(header - 2) + bytes(SNAP_IP / QUERY)
    assert dot11(frame, 0, len(frame)) == (AT_ETHERTYPE, 0x0800, header + 8)


def test_unknown_link_type_is_not_read():
    assert first_layer(147, bytes(QUERY)) is None
    assert first_layer(LINKTYPE_IEEE802_11, b"")[0] == AT_DOT11  # the frame decides later
