"""Link, network and transport headers decoded straight from bytes, through any tunnels.

This is the hot path: every captured packet goes through `decode`, so the
common frames (untagged Ethernet, IPv4 or IPv6, TCP or UDP) take a fast path
that touches only the bytes it needs and returns a plain tuple. scapy would
take 100 to 200 s for a million packets; this takes about one. Everything
else walks the headers in one bounded loop: the link types of
`linktypes.py`; 802.1Q/802.1ad tags, PPPoE, MPLS, LLC/SNAP; IPv4 (options),
IPv6 (extension headers); IP-in-IP, 6in4, 4in6, 6in6; the tunnels of
`tunnels.py` (GRE, ERSPAN, VXLAN, Geneve, GTP-U, Teredo, AYIYA, GRE and
MPLS over UDP); TCP and UDP. The addresses, ports and MAC are the innermost
ones (the tunnelled client's), and the tunnels passed are named for the
observation's provenance. Behind a tunnel the outer frame's MAC and VLAN
belong to the tunnel's endpoints, not the client: only the inner frame's (or
ERSPAN's record of the mirrored port's VLAN) are reported. PPPoE and MPLS
are link layers of the client's own link and keep them. At most `MAX_TUNNELS` tunnels and `_MAX_HEADERS`
headers are followed, so a hostile nesting costs a bounded amount of work and
is reported as `PROTO_TOO_DEEP`. IP fragments are not reassembled here
(that needs state: `fragments.py`); they come back as `PROTO_FRAGMENT`.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

from monitor.capture.linktypes import (
    AT_ETHERNET,
    AT_ETHERTYPE,
    AT_IP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_MPLS,
    ETHERTYPE_MPLS_MULTICAST,
    ETHERTYPE_PPP,
    ETHERTYPE_PPPOE_SESSION,
    ETHERTYPE_TEB,
    dot11,
    first_layer,
    llc_snap,
    ppp,
    pppoe_session,
)
from monitor.capture.linktypes import LINKTYPE_ETHERNET as LINKTYPE_ETHERNET
from monitor.capture.linktypes import LINKTYPE_IPV4 as LINKTYPE_IPV4
from monitor.capture.linktypes import LINKTYPE_IPV6 as LINKTYPE_IPV6
from monitor.capture.linktypes import LINKTYPE_LINUX_SLL as LINKTYPE_LINUX_SLL
from monitor.capture.linktypes import LINKTYPE_LINUX_SLL2 as LINKTYPE_LINUX_SLL2
from monitor.capture.linktypes import LINKTYPE_LOOP as LINKTYPE_LOOP
from monitor.capture.linktypes import LINKTYPE_NULL as LINKTYPE_NULL
from monitor.capture.linktypes import LINKTYPE_RAW as LINKTYPE_RAW
from monitor.capture.tunnels import UDP_TUNNEL_PORTS, gre, mpls, udp_tunnel

VLAN_ETHERTYPES: Final = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})

PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
PROTO_ESP: Final = 50  # IPsec ESP: no ports; returned with ports 0 and its payload (bypass.py)
PROTO_FRAGMENT: Final = -1  # see Decoded
PROTO_TOO_DEEP: Final = -2  # more tunnels or headers than the caps allow: counted, never read
# IPv6 headers that come before the transport: hop-by-hop, routing, fragment, AH,
# destination options, mobility, HIP, shim6.
_IPV6_NOT_L4: Final = frozenset({0, 43, 44, 51, 60, 135, 139, 140})
# One struct call per header on the hot path instead of a dozen byte indexings.
_IPV4 = struct.Struct("!BxHxxHxB2x4s4s").unpack_from  # version/ihl, total length, fragment, proto, addrs
_IPV6 = struct.Struct("!B3xHBx16s16s").unpack_from  # version, payload length, next header, addrs
_TCP = struct.Struct("!HHI4xBB").unpack_from  # ports, sequence number, data offset, flags
_UDP = struct.Struct("!HHH").unpack_from  # ports, length
MAX_TUNNELS: Final = 6  # tunnels (and PPPoE, MPLS stacks) inside one another
_MAX_HEADERS: Final = 40  # every header, tag and tunnel counts one: the walk's hard bound
_UDP_TUNNELS: Final = UDP_TUNNEL_PORTS

TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_ACK: Final = 0x10

# What `decode` returns: (transport, src, dst, sport, dport, payload_start,
# payload_end, tcp_seq, tcp_flags, vlan, l2_start, encapsulation). Addresses
# are 4 or 16 raw bytes; the payload is buf[payload_start:payload_end],
# sliced only by the caller that needs it. l2_start is the offset of the
# innermost Ethernet header (for MAC addresses) or -1. encapsulation names
# the tunnels passed, outermost first ("gre,vxlan"), or is None.
# An IP fragment comes back as (PROTO_FRAGMENT, src, dst, identification,
# fragment_offset, data_start, data_end, next_protocol, more_fragments, vlan,
# l2_start, encapsulation): the data is buf[data_start:data_end].
Decoded = tuple[int, bytes, bytes, int, int, int, int, int, int, "int | None", int, "str | None"]
_TOO_DEEP: Final[Decoded] = (PROTO_TOO_DEEP, b"", b"", 0, 0, 0, 0, 0, 0, None, -1, None)


def decode(linktype: int, buf: bytes) -> Decoded | None:
    """The innermost 5-tuple and L4 payload bounds of one frame, a fragment, or None when no TCP/UDP."""
    n = len(buf)
    if linktype == LINKTYPE_ETHERNET and n >= 54 and buf[12] == 0x08 and buf[13] == 0 and buf[14] == 0x45:
        # Fast path for the common case: untagged Ethernet, IPv4 without options, no fragment.
        _b0, total, frag, proto, src, dst = _IPV4(buf, 14)
        if not frag & 0x3FFF:  # DF alone is fine; MF or a fragment offset take the general path
            end = 14 + total if 20 <= total < n - 14 else n
            if proto == PROTO_TCP:
                sport, dport, seq, doff, flags = _TCP(buf, 34)
                doff = (doff >> 4) << 2
                if doff >= 20 and end - 34 >= doff:
                    return (PROTO_TCP, src, dst, sport, dport, 34 + doff, end, seq, flags, None, 0, None)
                return None
            if proto == PROTO_UDP and end >= 42:
                sport, dport, ulen = _UDP(buf, 34)
                if sport not in _UDP_TUNNELS and dport not in _UDP_TUNNELS:
                    if 8 <= ulen < end - 34:
                        end = 34 + ulen
                    return (PROTO_UDP, src, dst, sport, dport, 42, end, 0, 0, None, 0, None)
    elif linktype == LINKTYPE_ETHERNET and n >= 74 and buf[12] == 0x86 and buf[13] == 0xDD:
        # Fast path: untagged Ethernet, IPv6 with TCP or UDP right after the fixed header.
        b0, plen, proto, src, dst = _IPV6(buf, 14)
        if b0 >> 4 == 6 and proto in (PROTO_TCP, PROTO_UDP):
            end = 54 + plen if 0 < plen < n - 54 else n
            if proto == PROTO_TCP:
                sport, dport, seq, doff, flags = _TCP(buf, 54)
                doff = (doff >> 4) << 2
                if doff >= 20 and end - 54 >= doff:
                    return (PROTO_TCP, src, dst, sport, dport, 54 + doff, end, seq, flags, None, 0, None)
                return None
            if end >= 62:
                sport, dport, ulen = _UDP(buf, 54)
                if sport not in _UDP_TUNNELS and dport not in _UDP_TUNNELS:
                    if 8 <= ulen < end - 54:
                        end = 54 + ulen
                    return (PROTO_UDP, src, dst, sport, dport, 62, end, 0, 0, None, 0, None)
    layer = first_layer(linktype, buf)
    if layer is None:
        return None
    return _walk(buf, layer[0], layer[1], layer[2], n, b"", b"", None, -1, None, 0)


def resume(buf: bytes, protocol: int, off: int, src: bytes, dst: bytes, vlan: int | None, l2: int,
           encapsulation: str | None) -> Decoded | None:
    """Decode a reassembled IP datagram from its payload (protocol `protocol` at `off`) on."""
    tunnels = encapsulation.count(",") + 1 if encapsulation else 0
    return _walk(buf, AT_IP, protocol, off, len(buf), src, dst, vlan, l2, encapsulation, tunnels)


def _joined(encapsulation: str | None, name: str) -> str:
    return name if encapsulation is None else f"{encapsulation},{name}"


def _walk(buf: bytes, at: int, value: int, off: int, end: int, src: bytes, dst: bytes, vlan: int | None,
          l2: int, encap: str | None, tunnels: int) -> Decoded | None:
    """Follow headers from `off` (what is there: `at` and `value`) to TCP or UDP, within the caps."""
    for _ in range(_MAX_HEADERS):
        if at == AT_IP:
            if value == PROTO_TCP:
                if end - off < 20:
                    return None
                sport, dport, seq, doff, flags = _TCP(buf, off)
                doff = (doff >> 4) << 2
                if doff < 20 or end - off < doff:
                    return None
                return (PROTO_TCP, src, dst, sport, dport, off + doff, end, seq, flags, vlan, l2, encap)
            if value == PROTO_UDP:
                if end - off < 8:
                    return None
                sport, dport, ulen = _UDP(buf, off)
                if 8 <= ulen < end - off:
                    end = off + ulen
                if sport in _UDP_TUNNELS or dport in _UDP_TUNNELS:
                    hop = udp_tunnel(buf, off + 8, end, sport, dport)
                    if hop is not None:  # else plain UDP on a tunnel's port
                        if tunnels >= MAX_TUNNELS:
                            return _TOO_DEEP
                        inner = _walk(buf, hop[0], hop[1], hop[2], end, src, dst, hop[4], -1,
                                      _joined(encap, hop[3]), tunnels + 1)
                        if inner is not None:
                            return inner
                return (PROTO_UDP, src, dst, sport, dport, off + 8, end, 0, 0, vlan, l2, encap)
            if value == 4:  # IPv4 header (also IP-in-IP)
                if end - off < 20:
                    return None
                b0, total, frag, value, src, dst = _IPV4(buf, off)
                ihl = (b0 & 0x0F) << 2
                if b0 >> 4 != 4 or ihl < 20 or end - off < ihl:
                    return None
                if ihl <= total < end - off:
                    end = off + total  # drop Ethernet padding
                if frag & 0x3FFF:  # more fragments, or a fragment offset
                    ident = (buf[off + 4] << 8) | buf[off + 5]
                    return (PROTO_FRAGMENT, src, dst, ident, (frag & 0x1FFF) << 3, off + ihl, end, value,
                            frag & 0x2000, vlan, l2, encap)
                off += ihl
            elif value == 41:  # IPv6 header (also 6in4)
                if end - off < 40:
                    return None
                b0, plen, value, src, dst = _IPV6(buf, off)
                if b0 >> 4 != 6:
                    return None
                if 0 < plen < end - off - 40:
                    end = off + 40 + plen
                off += 40
            elif value in _IPV6_NOT_L4:
                if end - off < 8:
                    return None
                if value == 44:  # fragment header
                    fragment = (buf[off + 2] << 8) | buf[off + 3]
                    if fragment & 0xFFF9:  # an offset or more fragments: not an atomic fragment
                        ident = int.from_bytes(buf[off + 4 : off + 8])
                        return (PROTO_FRAGMENT, src, dst, ident, fragment & 0xFFF8, off + 8, end, buf[off],
                                fragment & 1, vlan, l2, encap)
                    value, off = buf[off], off + 8
                elif value == 51:  # authentication header
                    value, off = buf[off], off + ((buf[off + 1] + 2) << 2)
                else:
                    value, off = buf[off], off + ((buf[off + 1] + 1) << 3)
                continue
            elif value == 47:
                hop = gre(buf, off, end)
                if hop is None:
                    return None
                at, value, off, vlan, l2 = hop[0], hop[1], hop[2], hop[4], -1
                encap, tunnels = _joined(encap, hop[3]), tunnels + 1
                if tunnels > MAX_TUNNELS:
                    return _TOO_DEEP
                continue
            elif value == PROTO_ESP:
                return (PROTO_ESP, src, dst, 0, 0, off, end, 0, 0, vlan, l2, encap)
            elif value == 137:  # MPLS in IP (RFC 4023): a tunnel; the outer MAC and VLAN are not the client's
                at, value, vlan, l2 = AT_ETHERTYPE, ETHERTYPE_MPLS, None, -1
                continue
            else:
                return None
            if value == 4 or value == 41:  # an IP header right after an IP header
                vlan, l2 = None, -1
                encap, tunnels = _joined(encap, "ip-in-ip"), tunnels + 1
                if tunnels > MAX_TUNNELS:
                    return _TOO_DEEP
        elif at == AT_ETHERTYPE:
            if value == ETHERTYPE_IPV4:
                at, value = AT_IP, 4
            elif value == ETHERTYPE_IPV6:
                at, value = AT_IP, 41
            elif value in VLAN_ETHERTYPES:
                if end - off < 4:
                    return None
                if vlan is None:
                    vlan = ((buf[off] << 8) | buf[off + 1]) & 0x0FFF
                value = (buf[off + 2] << 8) | buf[off + 3]
                off += 4
            else:
                if value == ETHERTYPE_PPPOE_SESSION:
                    layer, name = pppoe_session(buf, off, end), "pppoe"
                elif value in (ETHERTYPE_MPLS, ETHERTYPE_MPLS_MULTICAST):
                    layer, name = mpls(buf, off, end), "mpls"
                elif value == ETHERTYPE_TEB:
                    layer, name = (AT_ETHERNET, 0, off), ""
                elif value == ETHERTYPE_PPP:
                    layer, name = ppp(buf, off, end), ""
                else:
                    return None
                if layer is None:
                    return None
                at, value, off = layer
                if name:
                    encap, tunnels = _joined(encap, name), tunnels + 1
                    if tunnels > MAX_TUNNELS:
                        return _TOO_DEEP
        elif at == AT_ETHERNET:
            if end - off < 14:
                return None
            l2 = off
            at, value, off = AT_ETHERTYPE, (buf[off + 12] << 8) | buf[off + 13], off + 14
            if value < 0x0600:  # an 802.3 length: LLC/SNAP says the type
                layer = llc_snap(buf, off, end)
                if layer is None:
                    return None
                value, off = layer[1], layer[2]
        else:  # AT_DOT11
            layer = dot11(buf, off, end)
            if layer is None:
                return None
            l2 = -1  # 802.11 addresses are not in Ethernet's order: no MAC from this frame
            at, value, off = layer
    return _TOO_DEEP


def packed_ip_text(addr: bytes) -> str:
    """Printable form of a 4- or 16-byte address (only when an observation is built)."""
    if len(addr) == 4:
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"
    return socket.inet_ntop(socket.AF_INET6, addr)


def mac_text(mac: bytes) -> str:
    return mac.hex(":")
