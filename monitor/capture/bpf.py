"""The kernel pre-filter for live capture: drop what can never carry a name or end a flow.

What it drops is what costs the most and says nothing: TCP segments with no
payload and none of SYN, FIN or RST (the pure ACKs that are half of all TCP
packets). SYN starts a stream; FIN and RST end a flow's life (its duration,
docs/capture.md) and the data segments of both directions extend it, so the
live sensor sees a flow's life from its data: a connection kept open only by
empty keep-alive ACKs ends, for it, at its last data segment. It keeps every
UDP datagram (gQUIC up to Q043 has no long header, so a "long headers only"
filter loses it) and every TCP segment with data (the second segment of a
ClientHello does not start with a handshake record). The
sensor then rejects the rest from bytes at about a microsecond a packet.

Classic BPF cannot follow IPv6 extension headers to the TCP header, so IPv6
packets whose next header is not TCP directly pass whole, as do VLAN-tagged
frames (the offsets differ; `vlan` in a filter shifts them only for what
follows it). Tunnels pass whole for the same reason: every UDP tunnel
already passes as UDP (VXLAN 4789, Geneve 6081, GTP-U 2152, Teredo 3544,
AYIYA 5072, GRE over UDP 4754), and GRE (IP protocol 47), MPLS in IP (137),
IP-in-IP, 6in4 and every IPv4 fragment are kept by protocol, as is IPsec ESP (50),
whose packets carry no port but say a VPN is in use (`bypass.py`; IPv6 ESP passes
with the other next headers); WireGuard, OpenVPN, IKE and NAT-T are UDP; on Ethernet
and Linux cooked links, MPLS and PPPoE session frames by EtherType (checked
with `ether proto`, which unlike `mpls` and `pppoes` does not shift the
offsets of the terms after it).
"""

from __future__ import annotations

from monitor.capture.packets import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2

# IPv4 TCP: payload length = IP total length - IP header - TCP header.
_TCP4_KEEP = (
    "(ip and tcp and ((tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst)) != 0"
    " or (ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2)) > 0))"
)
# IPv6 with TCP right after the fixed header: payload length - TCP header.
_TCP6_KEEP = (
    "(ip6 and ip6[6] = 6 and ((ip6[53] & 0x07) != 0"  # FIN 0x01, SYN 0x02, RST 0x04
    " or (ip6[4:2] - ((ip6[52] & 0xf0) >> 2)) > 0))"
)
# Anything IPv6 whose first next header is neither TCP nor UDP (extension headers, tunnels).
_IP6_OTHER = "(ip6 and ip6[6] != 6)"
# IPv4 tunnels (IP-in-IP, 6in4, GRE, MPLS in IP) and fragments (a later one, or a first one with
# more to come): their inner headers are not at fixed offsets. IPsec ESP (50): a VPN (bypass.py).
_IP4_OTHER = ("(ip and (ip proto 4 or ip proto 41 or ip proto 47 or ip proto 50 or ip proto 137"
              " or (ip[6:2] & 0x3fff) != 0))")
# MPLS (unicast, multicast) and PPPoE sessions, on the link types where `ether proto` is defined.
_ETHERTYPES = "ether proto 0x8847 or ether proto 0x8848 or ether proto 0x8864"
_ETHERTYPE_LINKS = frozenset({LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2})

BPF_FILTER = f"udp or {_TCP4_KEEP} or {_TCP6_KEEP} or {_IP6_OTHER} or {_IP4_OTHER}"


def capture_filter(linktype: int = LINKTYPE_ETHERNET, extra: str | None = None) -> str:
    """The pre-filter for a link type, optionally narrowed by an operator's own expression.

    `vlan` exists only on Ethernet (libpcap refuses it on cooked or raw-IP links). The operator's
    expression comes first: after `vlan` every offset is shifted by the tag, so `udp port 53`
    placed after it would read an untagged frame four bytes off (and pass tagged frames only).
    """
    expression = f"{BPF_FILTER} or {_ETHERTYPES}" if linktype in _ETHERTYPE_LINKS else BPF_FILTER
    if linktype == LINKTYPE_ETHERNET:
        expression += " or vlan"  # last: it shifts the offsets of whatever follows it
    return f"({extra}) and ({expression})" if extra else expression
