"""The kernel pre-filter, compiled and run by libpcap (through tcpdump) on one frame per row."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from monitor.capture.bpf import BPF_FILTER, capture_filter
from monitor.capture.packets import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW
from monitor.capture.tunnels import PORT_AYIYA, PORT_GRE_UDP, PORT_TEREDO

ETH = Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb")
ETHERTYPES = "ether proto 0x8847 or ether proto 0x8848 or ether proto 0x8864"
V4 = IP(src="10.0.0.1", dst="10.0.0.2")
V6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
DATA = Raw(b"\x16\x03\x01\x00\x05hello")

FRAMES = [
    ("ipv4-syn", ETH / V4 / TCP(flags="S"), True),
    ("ipv4-pure-ack", ETH / V4 / TCP(flags="A"), False),
    ("ipv4-fin-ack", ETH / V4 / TCP(flags="FA"), True),  # ends a flow's life
    ("ipv4-rst", ETH / V4 / TCP(flags="R"), True),
    ("ipv4-push-ack-no-data", ETH / V4 / TCP(flags="PA"), False),
    ("ipv4-data", ETH / V4 / TCP(flags="PA") / DATA, True),
    ("ipv4-options-data", ETH / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01" * 4)
     / TCP(flags="PA", options=[("NOP", None)] * 12) / DATA, True),
    ("ipv4-options-pure-ack", ETH / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01" * 4)
     / TCP(flags="A", options=[("NOP", None)] * 12), False),
    ("ipv4-udp", ETH / V4 / UDP(dport=443) / Raw(b"\x0d" + bytes(20)), True),
    ("ipv6-syn", ETH / V6 / TCP(flags="S"), True),
    ("ipv6-pure-ack", ETH / V6 / TCP(flags="A"), False),
    ("ipv6-fin-ack", ETH / V6 / TCP(flags="FA"), True),
    ("ipv6-rst-ack", ETH / V6 / TCP(flags="RA"), True),
    ("ipv6-urg-ack", ETH / V6 / TCP(flags="UA"), False),
    ("ipv6-data", ETH / V6 / TCP(flags="PA") / DATA, True),
    ("ipv6-udp", ETH / V6 / UDP(dport=53) / Raw(bytes(12)), True),
    ("ipv6-extension-header-ack", ETH / V6 / IPv6ExtHdrHopByHop() / TCP(flags="A"), True),
    ("vlan-pure-ack", ETH / Dot1Q(vlan=42) / V4 / TCP(flags="A"), True),
    ("gre-tunnel", ETH / IP(src="192.0.2.1", dst="192.0.2.2") / GRE() / V4 / TCP(flags="A"), True),
    ("ip-in-ip", ETH / IP(src="192.0.2.1", dst="192.0.2.2", proto=4) / V4 / TCP(flags="A"), True),
    ("ipv4-later-fragment", ETH / IP(src="10.0.0.1", dst="10.0.0.2", proto=6, frag=100) / Raw(bytes(40)),
     True),
    # tunnels: the inner segment is a pure ACK, which the filter would drop if it were not tunnelled
    ("vxlan", ETH / V4 / UDP(sport=50000, dport=4789) / VXLAN() / ETH / V4 / TCP(flags="A"), True),
    ("geneve", ETH / V4 / UDP(sport=50000, dport=6081) / GENEVE(proto=0x6558) / ETH / V4 / TCP(flags="A"),
     True),
    ("gtp-u", ETH / V4 / UDP(sport=2152, dport=2152) / GTP_U_Header() / V4 / TCP(flags="A"), True),
    ("teredo", ETH / V4 / UDP(sport=50000, dport=PORT_TEREDO) / V6 / TCP(flags="A"), True),
    ("ayiya", ETH / V4 / UDP(sport=50000, dport=PORT_AYIYA) / Raw(bytes.fromhex("00001129 00000000 00"))
     / V4 / TCP(flags="A"), True),
    ("gre-over-udp", ETH / V4 / UDP(sport=50000, dport=PORT_GRE_UDP) / GRE() / V4 / TCP(flags="A"), True),
    ("mpls-in-ip", ETH / IP(src="192.0.2.1", dst="192.0.2.2", proto=137) / MPLS(s=1) / V4 / TCP(flags="A"),
     True),
    ("gre-over-ipv6", ETH / IPv6(src="2001:db8::a", dst="2001:db8::b") / GRE() / V4 / TCP(flags="A"), True),
    ("mpls", ETH / MPLS(s=1) / V4 / TCP(flags="A"), True),
    ("mpls-in-vlan", ETH / Dot1Q(vlan=5) / MPLS(s=1) / V4 / TCP(flags="A"), True),
    ("pppoe", ETH / PPPoE() / PPP(proto=0x0021) / V4 / TCP(flags="A"), True),
    ("ipv4-first-fragment", ETH / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / TCP(flags="A")
     / Raw(bytes(16)), True),
    ("ipv6-fragment", ETH / V6 / IPv6ExtHdrFragment(offset=0, m=1) / TCP(flags="A") / Raw(bytes(16)), True),
    # IPsec ESP (protocol 50): no port, but it says a VPN is in use (bypass.py)
    ("ipsec-esp", ETH / V4 / ESP(spi=0x1234, seq=1, data=bytes(32)), True),
    ("ipsec-esp-ipv6", ETH / V6 / ESP(spi=0x1234, seq=1, data=bytes(32)), True),
    ("wireguard", ETH / V4 / UDP(sport=40000, dport=51820) / Raw(b"\x04" + bytes(47)), True),
    ("arp", ETH / ARP(), False),
    ("icmp", ETH / V4 / ICMP(), False),
]


def passed_by(folder, packets: list, expression: str) -> set[bytes]:
    """The frames libpcap's compiled `expression` passes, in one tcpdump run."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump not installed")
    source, filtered = folder / "in.pcap", folder / "out.pcap"
    wrpcap(str(source), packets)
    as_root = ["-Z", "root"] if os.geteuid() == 0 else []  # tcpdump drops privileges before writing
    subprocess.run(["tcpdump", *as_root, "-r", str(source), "-w", str(filtered), expression],
                   check=True, capture_output=True, timeout=60)
    return {bytes(p) for p in rdpcap(str(filtered))}


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> set[bytes]:
    """Every row's frame through the Ethernet filter: the frames it passed."""
    return passed_by(tmp_path_factory.mktemp("bpf"), [packet for _, packet, _ in FRAMES], capture_filter())


@pytest.mark.integration
@pytest.mark.parametrize(("packet", "passes"), [row[1:] for row in FRAMES], ids=[row[0] for row in FRAMES])
def test_prefilter_keeps_what_can_carry_a_name(kept, packet, passes):
    assert (bytes(packet) in kept) is passes


NARROWED = [  # `sense --filter "udp port 53"`: the operator's expression, untagged and tagged
    ("dns", ETH / V4 / UDP(sport=40000, dport=53) / Raw(bytes(12)), True),
    ("dns-in-vlan", ETH / Dot1Q(vlan=5) / V4 / UDP(sport=40000, dport=53) / Raw(bytes(12)), False),
    ("quic", ETH / V4 / UDP(sport=40000, dport=443) / Raw(b"\xc0" + bytes(40)), False),
    ("tls", ETH / V4 / TCP(sport=40000, dport=443, flags="PA") / Raw(b"\x16\x03\x01" + bytes(40)), False),
]


@pytest.mark.integration
def test_an_operator_filter_narrows_untagged_frames_as_written(tmp_path):
    """The operator's expression is read at untagged offsets (before the pre-filter's `vlan`)."""
    packets = [packet for _, packet, _ in NARROWED]
    got = passed_by(tmp_path, packets, capture_filter(LINKTYPE_ETHERNET, "udp port 53"))
    assert {name for name, packet, _ in NARROWED if bytes(packet) in got} == {
        name for name, _, passes in NARROWED if passes}


@pytest.mark.parametrize(
    ("linktype", "extra", "expected"),
    [
        (LINKTYPE_ETHERNET, None, f"{BPF_FILTER} or {ETHERTYPES} or vlan"),
        (LINKTYPE_LINUX_SLL, None, f"{BPF_FILTER} or {ETHERTYPES}"),  # libpcap refuses `vlan` on cooked links
        (LINKTYPE_RAW, None, BPF_FILTER),  # and `ether proto` on raw IP
        (LINKTYPE_ETHERNET, "net 10.0.0.0/8", f"(net 10.0.0.0/8) and ({BPF_FILTER} or {ETHERTYPES} or vlan)"),
        (LINKTYPE_RAW, "not port 22", f"(not port 22) and ({BPF_FILTER})"),
    ],
    ids=["ethernet", "cooked", "raw-ip", "ethernet-narrowed", "raw-narrowed"],
)
def test_capture_filter_text(linktype, extra, expected):
    assert capture_filter(linktype, extra) == expected
