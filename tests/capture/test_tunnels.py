"""Tunnels: each one built with scapy around a real DNS query, ClientHello or HTTP request, fed to the
sensor, which must report the inner name with the inner endpoints and name the tunnel."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scapy.contrib.erspan import ERSPAN_I, ERSPAN_II, ERSPAN_III
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.contrib.mpls import MPLS
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.dot11 import Dot11
from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE_PPTP, LLC, SNAP, Dot1Q, Ether
from scapy.layers.ppp import PPP
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw

from monitor.capture.counters import PlainCounters
from monitor.capture.linktypes import AT_DOT11, AT_ETHERNET, AT_ETHERTYPE
from monitor.capture.packets import LINKTYPE_ETHERNET, MAX_TUNNELS, PROTO_TOO_DEEP, PROTO_UDP, decode
from monitor.capture.sensor import Sensor
from monitor.capture.tunnels import UDP_TUNNEL_PORTS, gre, mpls, udp_tunnel
from tests.capture_helpers import client_hello, observe, tls_records

CLIENT, SERVER = "10.9.8.7", "10.0.0.53"
CLIENT6, SERVER6 = "2001:db8:1::7", "2001:db8:2::53"
INNER_MAC, OUTER_MAC = "02:00:00:00:00:07", "00:11:22:33:44:55"
OUTER_ETH = Ether(src=OUTER_MAC, dst="66:77:88:99:aa:bb")
OUTER = OUTER_ETH / IP(src="192.0.2.1", dst="192.0.2.2")
OUTER6 = OUTER_ETH / IPv6(src="2001:db8:ffff::1", dst="2001:db8:ffff::2")
INNER_ETH = Ether(src=INNER_MAC, dst="02:00:00:00:00:01")


def dns_query(name: str, v6: bool = False) -> Packet:
    ip = IPv6(src=CLIENT6, dst=SERVER6) if v6 else IP(src=CLIENT, dst=SERVER)
    return ip / UDP(sport=5555, dport=53) / DNS(rd=1, qd=DNSQR(qname=name))


def ayiya(next_header: int) -> Raw:
    # identity length 2^0 = 1 byte, no signature, opcode 1 (forward), epoch, identity byte
    return Raw(bytes([0x00, 0x00, 0x01, next_header]) + bytes(4) + b"\x00")


def teredo_origin() -> Raw:
    return Raw(bytes.fromhex("0000 f227 3fff00fe"))  # origin indication: obfuscated port and address


# (id, wrap the inner IP packet, encapsulation, VLAN, client MAC)
TUNNELS: list[tuple[str, Callable[[Packet], Packet], str, int | None, str | None]] = [
    ("gre", lambda p: OUTER / GRE() / p, "gre", None, None),
    (
        "gre with checksum, key and sequence",
        lambda p: (
            OUTER / GRE(chksum_present=1, key_present=1, key=7, seqnum_present=1, sequence_number=9) / p
        ),
        "gre",
        None,
        None,
    ),
    ("gre over ipv6", lambda p: OUTER6 / GRE() / p, "gre", None, None),
    (
        "gre ethernet bridging (nvgre)",
        lambda p: OUTER / GRE(proto=0x6558, key_present=1) / INNER_ETH / p,
        "gre",
        None,
        INNER_MAC,
    ),
    (
        "gre pptp ppp",
        lambda p: OUTER / GRE_PPTP(seqnum_present=1) / PPP(proto=0x0057 if IPv6 in p else 0x0021) / p,
        "gre",
        None,
        None,
    ),
    (
        "gre aruba 802.11",
        lambda p: OUTER / GRE(proto=0x8200) / Dot11(type=2, subtype=0, FCfield=1) / LLC() / SNAP() / p,
        "gre",
        None,
        None,
    ),
    (
        "erspan type i",
        lambda p: OUTER / GRE(proto=0x88BE) / ERSPAN_I() / INNER_ETH / p,
        "erspan",
        None,
        INNER_MAC,
    ),
    (
        "erspan type ii",
        lambda p: OUTER / GRE(seqnum_present=1) / ERSPAN_II(vlan=120, session_id=3) / INNER_ETH / p,
        "erspan",
        120,
        INNER_MAC,
    ),
    (
        "erspan type iii",
        lambda p: (
            OUTER / GRE(seqnum_present=1) / ERSPAN_III(vlan=0, session_id=3) / INNER_ETH / Dot1Q(vlan=130) / p
        ),
        "erspan",
        130,
        INNER_MAC,
    ),
    (
        "erspan type iii with platform subheader",
        lambda p: OUTER / GRE(seqnum_present=1) / ERSPAN_III(vlan=140, o=1) / Raw(bytes(8)) / INNER_ETH / p,
        "erspan",
        140,
        INNER_MAC,
    ),
    ("gre over udp", lambda p: OUTER / UDP(sport=40000, dport=4754) / GRE() / p, "gre-udp", None, None),
    (
        "vxlan",
        lambda p: (
            OUTER_ETH
            / Dot1Q(vlan=999)
            / IP(src="192.0.2.1", dst="192.0.2.2")
            / UDP(sport=40000, dport=4789)
            / VXLAN(vni=42)
            / INNER_ETH
            / p
        ),
        "vxlan",
        None,
        INNER_MAC,
    ),
    (
        "vxlan inner vlan",
        lambda p: OUTER / UDP(sport=40000, dport=4789) / VXLAN(vni=42) / INNER_ETH / Dot1Q(vlan=150) / p,
        "vxlan",
        150,
        INNER_MAC,
    ),
    (
        "vxlan linux port 8472",
        lambda p: OUTER / UDP(sport=40000, dport=8472) / VXLAN(vni=1) / INNER_ETH / p,
        "vxlan",
        None,
        INNER_MAC,
    ),
    (
        "geneve with options",
        lambda p: (
            OUTER
            / UDP(sport=40000, dport=6081)
            / GENEVE(proto=0x6558, optionlen=2)
            / Raw(bytes(8))
            / INNER_ETH
            / p
        ),
        "geneve",
        None,
        INNER_MAC,
    ),
    (
        "geneve carrying ip",
        lambda p: OUTER / UDP(sport=40000, dport=6081) / GENEVE(proto=0x86DD if IPv6 in p else 0x0800) / p,
        "geneve",
        None,
        None,
    ),
    ("mpls", lambda p: OUTER_ETH / MPLS(label=16, s=1) / p, "mpls", None, OUTER_MAC),
    (
        "mpls label stack in a vlan",
        lambda p: OUTER_ETH / Dot1Q(vlan=160) / MPLS(label=16, s=0) / MPLS(label=17, s=1) / p,
        "mpls",
        160,
        OUTER_MAC,
    ),
    ("mpls in gre", lambda p: OUTER / GRE(proto=0x8847) / MPLS(s=1) / p, "gre,mpls", None, None),
    (
        "mpls in ip",
        lambda p: OUTER_ETH / IP(src="192.0.2.1", dst="192.0.2.2", proto=137) / MPLS(s=1) / p,
        "mpls",
        None,
        None,
    ),
    (
        "ethernet over mpls with control word",
        lambda p: OUTER_ETH / MPLS(s=1) / Raw(bytes(4)) / INNER_ETH / p,
        "mpls",
        None,
        INNER_MAC,
    ),
    (
        "mpls over udp",
        lambda p: OUTER / UDP(sport=40000, dport=6635) / MPLS(s=1) / p,
        "mpls-udp,mpls",
        None,
        None,
    ),
    ("gtp-u", lambda p: OUTER / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=5) / p, "gtp-u", None, None),
    (
        "gtp-u with a 5g extension header",
        lambda p: (
            OUTER
            / UDP(sport=2152, dport=2152)
            / GTP_U_Header(teid=5, E=1, next_ex=0x85)
            / GTPPDUSessionContainer(type=1, QFI=9)
            / p
        ),
        "gtp-u",
        None,
        None,
    ),
    (
        "ayiya",
        lambda p: OUTER / UDP(sport=40000, dport=5072) / ayiya(41 if IPv6 in p else 4) / p,
        "ayiya",
        None,
        None,
    ),
    ("ip-in-ip", lambda p: OUTER / p, "ip-in-ip", None, None),
    (
        "vxlan inside gre",
        lambda p: (
            OUTER
            / GRE()
            / IP(src="198.51.100.1", dst="198.51.100.2")
            / UDP(sport=1, dport=4789)
            / VXLAN()
            / INNER_ETH
            / p
        ),
        "gre,vxlan",
        None,
        INNER_MAC,
    ),
]
V6_ONLY = [
    ("teredo", lambda p: OUTER / UDP(sport=3544, dport=40000) / p, "teredo", None, None),
    (
        "teredo with origin indication",
        lambda p: OUTER / UDP(sport=3544, dport=40000) / teredo_origin() / p,
        "teredo",
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("wrap", "encapsulation", "vlan", "mac"), [row[1:] for row in TUNNELS], ids=[row[0] for row in TUNNELS]
)
def test_dns_inside_a_tunnel_is_read_with_the_inner_endpoints(wrap, encapsulation, vlan, mac):
    seen = observe([bytes(wrap(dns_query("inner.example.org")))])
    assert [(o.hostname, o.client_ip, o.client_port, o.server_ip, o.server_port) for o in seen] == [
        ("inner.example.org", CLIENT, 5555, SERVER, 53)
    ]
    assert (seen[0].encapsulation, seen[0].vlan, seen[0].client_mac) == (encapsulation, vlan, mac)


@pytest.mark.parametrize(
    "wrap",
    [row[1] for row in TUNNELS + V6_ONLY if "ip-in-ip" not in row[0] and "mpls" not in row[0]],
    ids=[row[0] for row in TUNNELS + V6_ONLY if "ip-in-ip" not in row[0] and "mpls" not in row[0]],
)
def test_ipv6_dns_inside_a_tunnel(wrap):
    seen = observe([bytes(wrap(dns_query("six.example.org", v6=True)))])
    assert [(o.hostname, o.client_ip, o.server_ip) for o in seen] == [("six.example.org", CLIENT6, SERVER6)]


@pytest.mark.parametrize(
    ("wrap", "payload", "protocol", "name"),
    [
        (
            lambda p: OUTER / UDP(sport=40000, dport=4789) / VXLAN() / INNER_ETH / p,
            tls_records(client_hello("classroom.example.com")),
            "tls",
            "classroom.example.com",
        ),
        (
            lambda p: OUTER / GRE(seqnum_present=1) / ERSPAN_II(vlan=5) / INNER_ETH / p,
            b"PROPFIND /dav/ HTTP/1.1\r\nHost: files.example.net\r\nDepth: 1\r\n\r\n",
            "http",
            "files.example.net",
        ),
        (
            lambda p: OUTER / UDP(sport=2152, dport=2152) / GTP_U_Header() / p,
            tls_records(client_hello("mobile.example.com")),
            "tls",
            "mobile.example.com",
        ),
    ],
    ids=["tls in vxlan", "webdav http in erspan", "tls in gtp-u"],
)
def test_tls_and_http_inside_a_tunnel(wrap, payload, protocol, name):
    frame = bytes(wrap(IP(src=CLIENT, dst=SERVER) / TCP(sport=50000, dport=443, flags="PA") / Raw(payload)))
    seen = observe([frame])
    assert [(o.protocol, o.hostname, o.client_ip, o.server_ip) for o in seen] == [
        (protocol, name, CLIENT, SERVER)
    ]


# IPv4 (protocol 47, no total length to trim by) and a GRE header carrying IPv4: one level of nesting.
GRE_LEVEL = bytes.fromhex("45000000 00000000 402f0000 c0000201 c0000202" + "00000800")


def nested_gre(depth: int) -> bytes:
    return bytes(Ether(type=0x0800)) + GRE_LEVEL * depth + bytes(dns_query("deep.example.org"))


@pytest.mark.parametrize(
    ("depth", "read"),
    [(MAX_TUNNELS, True), (MAX_TUNNELS + 1, False), (5000, False)],
    ids=["within the cap", "one past the cap", "hostile nesting"],
)
def test_nesting_is_followed_only_to_the_cap_and_the_rest_is_counted(depth, read):
    counters = PlainCounters()
    sensor = Sensor(lambda o: None, counters=counters)
    seen = observe([nested_gre(depth)], sensor=sensor)
    assert bool(seen) is read
    assert counters.counts[("parse_errors", "tunnel")] == (0 if read else 1)


def test_hostile_nesting_stops_at_the_header_cap():
    d = decode(LINKTYPE_ETHERNET, nested_gre(2500))
    assert d is not None and d[0] == PROTO_TOO_DEEP


@pytest.mark.parametrize(
    ("sport", "dport", "payload"),
    [
        (
            4789,
            53,
            bytes(DNS(rd=1, qd=DNSQR(qname="plain.example.org"))),
        ),  # a client's port happens to be 4789
        (5555, 53, bytes(DNS(rd=1, qd=DNSQR(qname="plain.example.org")))),
        (3544, 53, bytes(DNS(rd=1, qd=DNSQR(qname="plain.example.org")))),
        (2152, 53, bytes(DNS(rd=1, qd=DNSQR(qname="plain.example.org")))),
    ],
    ids=["vxlan port", "no tunnel port", "teredo port", "gtp-u port"],
)
def test_plain_udp_on_a_tunnel_port_is_still_plain_udp(sport, dport, payload):
    frame = bytes(
        Ether(dst="66:77:88:99:aa:bb")
        / IP(src=CLIENT, dst=SERVER)
        / UDP(sport=sport, dport=dport)
        / Raw(payload)
    )
    assert [o.hostname for o in observe([frame])] == ["plain.example.org"]


@pytest.mark.parametrize(
    ("header", "sport", "dport"),
    [
        ("00000000 00000100", 1, 4789),  # VXLAN without the I flag
        ("40006558 00000100", 1, 6081),  # Geneve version 1
        ("30010004 00000001", 2152, 2152),  # GTP-U echo request, not a G-PDU
        ("0e00", 1, 3544),  # Teredo too short for IPv6
        ("00001229 00000000 00", 1, 5072),  # AYIYA opcode 2 (echo request)
        ("08000000", 1, 4790),  # VXLAN-GPE without a next protocol
    ],
    ids=[
        "vxlan-no-i-flag",
        "geneve-version",
        "gtp-not-g-pdu",
        "teredo-short",
        "ayiya-not-forward",
        "gpe-no-p",
    ],
)
def test_a_header_that_is_not_the_tunnel_is_refused(header, sport, dport):
    buf = bytes.fromhex(header) + bytes(60)
    assert udp_tunnel(buf, 0, len(buf), sport, dport) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("40000800" + "00" * 8, None),  # routing present (RFC 1701)
        ("00020800" + "00" * 8, None),  # version 2
        ("0001880b" + "00" * 4, None),  # PPTP header cut short
        ("0000" + "0800", (AT_ETHERTYPE, 0x0800, 4)),
        ("b000" + "0800" + "00" * 12, (AT_ETHERTYPE, 0x0800, 16)),  # checksum, key and sequence words
        ("3081" + "880b" + "00" * 12 + "0021", (AT_ETHERTYPE, 0x0800, 18)),  # PPTP: key, sequence, ack, PPP
        ("0000" + "8210", (AT_DOT11, 0, 4)),  # Aruba
        ("1000" + "88be" + "00000009" + "10780000" + "00000000", (AT_ETHERNET, 0, 16)),  # ERSPAN II, seq 9
    ],
    ids=[
        "routing",
        "version-2",
        "pptp-short",
        "plain",
        "checksum-key-sequence",
        "pptp",
        "aruba",
        "erspan-ii",
    ],
)
def test_gre_header_table(header, expected):
    buf = bytes.fromhex(header)
    hop = gre(buf, 0, len(buf))
    assert (hop[:3] if hop is not None else None) == expected


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("00010140 45", (2, 4, 4)),  # one label, IPv4 after it
        ("00010040 00010140 60", (2, 41, 8)),  # two labels, IPv6
        ("00010140 00000000 66", (0, 0, 8)),  # control word, then Ethernet
        ("00010040" * 9 + "45", None),  # no bottom of stack within the cap
        ("00010140", None),  # nothing after the label
    ],
    ids=["ipv4", "ipv6", "pseudowire", "too-deep", "empty"],
)
def test_mpls_label_stack_table(stack, expected):
    buf = bytes.fromhex(stack)
    assert mpls(buf, 0, len(buf)) == expected


def test_every_tunnel_port_is_udp_and_kept_by_the_fast_path():
    frame = bytes(OUTER / UDP(sport=1, dport=4789) / VXLAN() / INNER_ETH / dns_query("x.example"))
    d = decode(LINKTYPE_ETHERNET, frame)
    assert d is not None and d[0] == PROTO_UDP and d[11] == "vxlan"
    assert {4789, 6081, 2152, 3544, 5072, 4754} <= UDP_TUNNEL_PORTS
