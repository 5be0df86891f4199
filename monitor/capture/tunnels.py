"""Tunnel headers: what a tunnel carries and where it starts.

Each function reads one tunnel header at `off` (bounded by `end`) and
returns a `Hop`: what follows (as `linktypes.AT_*`), the EtherType or IP
protocol, its offset, the tunnel's name for the observation's provenance
(`network.encapsulation`) and, for ERSPAN, the mirrored frame's VLAN. None
means "not this tunnel": a UDP datagram that merely uses a tunnel's port is
then read as plain UDP by the caller. Covered: GRE (RFC 2784/2890, PPTP's
enhanced GRE, Aruba's Wi-Fi controller tunnels, ERSPAN types I, II and III),
GRE and MPLS over UDP (RFC 8086, RFC 7510), VXLAN (RFC 7348) and VXLAN-GPE,
Geneve (RFC 8926), GTP-U (3GPP TS 29.281), Teredo (RFC 4380), AYIYA and MPLS
label stacks (RFC 3032), including Ethernet pseudowires.
"""

from __future__ import annotations

from typing import Final

from monitor.capture.linktypes import (
    AT_DOT11,
    AT_ETHERNET,
    AT_ETHERTYPE,
    AT_IP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_MPLS,
    ETHERTYPE_PPP,
    ETHERTYPE_TEB,
    ppp,
)

Hop = tuple[int, int, int, str, "int | None"]
"""(AT_*, EtherType or IP protocol, offset, tunnel name, VLAN carried by the tunnel header)."""

PORT_VXLAN: Final = 4789
PORT_VXLAN_LINUX: Final = 8472  # the Linux kernel's default before IANA assigned 4789
PORT_VXLAN_GPE: Final = 4790
PORT_GENEVE: Final = 6081
PORT_GTP_U: Final = 2152
PORT_TEREDO: Final = 3544
PORT_AYIYA: Final = 5072
PORT_GRE_UDP: Final = 4754
PORT_MPLS_UDP: Final = 6635
UDP_TUNNEL_PORTS: Final = frozenset({PORT_VXLAN, PORT_VXLAN_LINUX, PORT_VXLAN_GPE, PORT_GENEVE, PORT_GTP_U,
                                     PORT_TEREDO, PORT_AYIYA, PORT_GRE_UDP, PORT_MPLS_UDP})
"""A datagram to or from one of these ports is tried as a tunnel first."""

_ERSPAN_II: Final = 0x88BE  # also type I, told apart by the GRE sequence number
_ERSPAN_III: Final = 0x22EB
_MAX_LABELS: Final = 8  # deeper label stacks are not seen in access networks


def gre(buf: bytes, off: int, end: int, name: str = "gre") -> Hop | None:
    """A GRE header (version 0, or version 1 from PPTP) and whatever it carries."""
    if end - off < 4:
        return None
    f0, f1 = buf[off], buf[off + 1]
    proto = (buf[off + 2] << 8) | buf[off + 3]
    version = f1 & 0x07
    if version == 0:
        if f0 & 0x40:
            return None  # source routing (RFC 1701): obsolete, variable length
        off += 4 + 4 * (bool(f0 & 0x80) + bool(f0 & 0x20) + bool(f0 & 0x10))
    elif version == 1 and proto == ETHERTYPE_PPP:
        off += 8 + 4 * bool(f0 & 0x10) + 4 * bool(f1 & 0x80)
    else:
        return None
    if off > end:
        return None
    if proto == _ERSPAN_II:
        if not f0 & 0x10:
            return (AT_ETHERNET, 0, off, "erspan", None)  # type I: no ERSPAN header
        return _erspan(buf, off, end, header=8, version=1)
    if proto == _ERSPAN_III:
        return _erspan(buf, off, end, header=12, version=2)
    if proto == ETHERTYPE_TEB:
        return (AT_ETHERNET, 0, off, name, None)
    if proto == ETHERTYPE_PPP:
        layer = ppp(buf, off, end)
        return (layer[0], layer[1], layer[2], name, None) if layer is not None else None
    if 0x8200 <= proto <= 0x9000 and not proto & 0x0F:
        return (AT_DOT11, 0, off, name, None)  # Aruba access point to controller: 802.11 frames
    return (AT_ETHERTYPE, proto, off, name, None)


def _erspan(buf: bytes, off: int, end: int, header: int, version: int) -> Hop | None:
    if end - off < header or buf[off] >> 4 != version:
        return None
    vlan = ((buf[off] & 0x0F) << 8) | buf[off + 1]
    if version == 2 and buf[off + 11] & 0x01:
        header += 8  # type III platform-specific subheader
    return (AT_ETHERNET, 0, off + header, "erspan", vlan or None)


def mpls(buf: bytes, off: int, end: int) -> tuple[int, int, int] | None:
    """An MPLS label stack; after the bottom label, IPv4, IPv6 or an Ethernet pseudowire."""
    for _ in range(_MAX_LABELS):
        if end - off < 5:
            return None
        bottom = buf[off + 2] & 0x01
        off += 4
        if bottom:
            break
    else:
        return None
    first = buf[off] >> 4
    if first == 4:
        return (AT_IP, 4, off)
    if first == 6:
        return (AT_IP, 41, off)
    if first == 0:
        return (AT_ETHERNET, 0, off + 4)  # pseudowire control word (RFC 4385), then Ethernet
    return (AT_ETHERNET, 0, off)


def udp_tunnel(buf: bytes, off: int, end: int, sport: int, dport: int) -> Hop | None:
    """The tunnel a UDP payload at `off` carries, judged by port and checked against the header."""
    size = end - off
    if dport in (PORT_VXLAN, PORT_VXLAN_LINUX):
        if size >= 8 + 14 and buf[off] & 0x08 and not buf[off + 7]:
            return (AT_ETHERNET, 0, off + 8, "vxlan", None)
        return None
    if dport == PORT_GENEVE:
        if size < 8 or buf[off] >> 6:
            return None
        proto = (buf[off + 2] << 8) | buf[off + 3]
        start = off + 8 + ((buf[off] & 0x3F) << 2)
        if proto == ETHERTYPE_TEB:
            return (AT_ETHERNET, 0, start, "geneve", None)
        return (AT_ETHERTYPE, proto, start, "geneve", None)
    if dport == PORT_GRE_UDP:
        return gre(buf, off, end, "gre-udp")
    if dport == PORT_MPLS_UDP:
        return (AT_ETHERTYPE, ETHERTYPE_MPLS, off, "mpls-udp", None)
    if dport == PORT_VXLAN_GPE:
        return _vxlan_gpe(buf, off, end)
    if sport == PORT_GTP_U or dport == PORT_GTP_U:
        return _gtp_u(buf, off, end)
    if sport == PORT_TEREDO or dport == PORT_TEREDO:
        return _teredo(buf, off, end)
    if sport == PORT_AYIYA or dport == PORT_AYIYA:
        return _ayiya(buf, off, end)
    return None


def _vxlan_gpe(buf: bytes, off: int, end: int) -> Hop | None:
    if end - off < 8 or not buf[off] & 0x04:  # the P bit says a next-protocol field is there
        return None
    nxt = buf[off + 3]
    if nxt == 1:
        return (AT_ETHERTYPE, ETHERTYPE_IPV4, off + 8, "vxlan-gpe", None)
    if nxt == 2:
        return (AT_ETHERTYPE, ETHERTYPE_IPV6, off + 8, "vxlan-gpe", None)
    if nxt == 3:
        return (AT_ETHERNET, 0, off + 8, "vxlan-gpe", None)
    return None


def _gtp_u(buf: bytes, off: int, end: int) -> Hop | None:
    """A GTPv1-U G-PDU: user IP packets between a mobile network's nodes (and home 5G routers)."""
    if end - off < 8 or buf[off] >> 5 != 1 or not buf[off] & 0x10 or buf[off + 1] != 0xFF:
        return None
    pos = off + 8
    if buf[off] & 0x07:  # sequence number, N-PDU number and next-extension type follow
        if end - pos < 4:
            return None
        kind, pos = buf[pos + 3], pos + 4
        while kind:  # each extension header: length in 4-byte words, ..., the next type last
            if end - pos < 4 or not buf[pos]:
                return None
            length = buf[pos] << 2
            if end - pos < length:
                return None
            kind, pos = buf[pos + length - 1], pos + length
    if end <= pos:
        return None
    first = buf[pos] >> 4
    if first == 4:
        return (AT_IP, 4, pos, "gtp-u", None)
    if first == 6:
        return (AT_IP, 41, pos, "gtp-u", None)
    return None


def _teredo(buf: bytes, off: int, end: int) -> Hop | None:
    """IPv6 in UDP behind a NAT, after optional authentication and origin-indication headers."""
    pos = off
    if end - pos >= 4 and buf[pos] == 0 and buf[pos + 1] == 1:
        pos += 4 + buf[pos + 2] + buf[pos + 3] + 9  # id, auth value, nonce, confirmation byte
    if end - pos >= 8 and buf[pos] == 0 and buf[pos + 1] == 0:
        pos += 8  # origin indication
    if end - pos < 40 or buf[pos] >> 4 != 6:
        return None
    if pos + 40 + ((buf[pos + 4] << 8) | buf[pos + 5]) != end:
        return None  # an IPv6 header must fill the datagram exactly: otherwise not Teredo
    return (AT_IP, 41, pos, "teredo", None)


def _ayiya(buf: bytes, off: int, end: int) -> Hop | None:
    """Anything In Anything (SixXS tunnels): a forward operation carrying IPv4 or IPv6."""
    if end - off < 8:
        return None
    header = 8 + (1 << (buf[off] >> 4)) + ((buf[off + 1] >> 4) << 2)
    opcode, nxt = buf[off + 2] & 0x0F, buf[off + 3]
    if opcode != 1 or nxt not in (4, 41) or end - off < header:
        return None
    return (AT_IP, nxt, off + header, "ayiya", None)
