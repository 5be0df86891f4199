"""Where the first network header starts, for each pcap link type the sensor reads.

`packets.decode` asks `first_layer(linktype, buf)` once per frame that is not
plain Ethernet; the answer says what comes next (an Ethernet frame, an
EtherType, an IP protocol or an 802.11 frame) and at which offset, so the
same decapsulation loop serves every link type. Also here: the parts of a
link layer that tunnels carry too (PPP headers, LLC/SNAP, 802.11 data
frames). All functions take a buffer, an offset and an end, and return
None for anything they do not recognise: a frame is never trusted to be
what its link type says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

# pcap link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_PPP: Final = 9
LINKTYPE_RAW_OPENBSD: Final = 12
LINKTYPE_RAW_BSD: Final = 14
LINKTYPE_PPP_HDLC: Final = 50
LINKTYPE_PPP_ETHER: Final = 51  # a PPPoE header first, no Ethernet header
LINKTYPE_ATM_RFC1483: Final = 100  # LLC/SNAP first
LINKTYPE_RAW: Final = 101
LINKTYPE_C_HDLC: Final = 104
LINKTYPE_IEEE802_11: Final = 105
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IEEE802_11_RADIOTAP: Final = 127
LINKTYPE_PPP_PPPD: Final = 166  # a direction byte, then PPP
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_NFLOG: Final = 239
LINKTYPE_LINUX_SLL2: Final = 276

# What comes at the offset a function returns.
AT_ETHERNET: Final = 0  # an Ethernet header (value unused)
AT_ETHERTYPE: Final = 1  # the payload of the EtherType in value
AT_IP: Final = 2  # the header of IP protocol value (4: IPv4, 41: IPv6)
AT_DOT11: Final = 3  # an 802.11 frame (value unused)

Layer = tuple[int, int, int]
"""(AT_*, value, offset)."""

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
ETHERTYPE_MPLS: Final = 0x8847
ETHERTYPE_MPLS_MULTICAST: Final = 0x8848
ETHERTYPE_PPPOE_SESSION: Final = 0x8864
ETHERTYPE_PPP: Final = 0x880B  # PPP inside GRE (PPTP)
ETHERTYPE_TEB: Final = 0x6558  # transparent Ethernet bridging: an Ethernet frame follows

# PPP protocol numbers of what the sensor reads, as EtherTypes.
PPP_PROTOCOLS: Final = {0x0021: ETHERTYPE_IPV4, 0x0057: ETHERTYPE_IPV6,
                        0x0281: ETHERTYPE_MPLS, 0x0283: ETHERTYPE_MPLS_MULTICAST}
_SNAP: Final = b"\xaa\xaa\x03"
_NFULA_PAYLOAD: Final = 9
_AF_INET: Final = 2
_AF_INET6: Final = 10


def ip_by_version(buf: bytes, off: int, end: int) -> Layer | None:
    """Raw IP with no type field: the version nibble decides."""
    if end <= off:
        return None
    version = buf[off] >> 4
    if version == 4:
        return (AT_IP, 4, off)
    if version == 6:
        return (AT_IP, 41, off)
    return None


def ppp(buf: bytes, off: int, end: int) -> Layer | None:
    """A PPP header (RFC 1661), with or without the HDLC address and control bytes (RFC 1662)."""
    if end - off >= 2 and buf[off] == 0xFF and buf[off + 1] == 0x03:
        off += 2
    if end - off < 1:
        return None
    if buf[off] & 1:  # protocol field compression: one byte
        protocol, off = buf[off], off + 1
    elif end - off >= 2:
        protocol, off = (buf[off] << 8) | buf[off + 1], off + 2
    else:
        return None
    etype = PPP_PROTOCOLS.get(protocol)
    return (AT_ETHERTYPE, etype, off) if etype is not None else None


def pppoe_session(buf: bytes, off: int, end: int) -> Layer | None:
    """A PPPoE session header (RFC 2516: version/type 0x11, code 0) and its PPP protocol."""
    if end - off < 8 or buf[off] != 0x11 or buf[off + 1] != 0:
        return None
    return ppp(buf, off + 6, end)


def llc_snap(buf: bytes, off: int, end: int) -> Layer | None:
    """An 802.2 LLC header with a SNAP extension: the EtherType is in its last two bytes."""
    if end - off < 8 or buf[off : off + 3] != _SNAP:
        return None
    return (AT_ETHERTYPE, (buf[off + 6] << 8) | buf[off + 7], off + 8)


def dot11(buf: bytes, off: int, end: int) -> Layer | None:
    """An unprotected 802.11 data frame carrying LLC/SNAP (protected frames cannot be read)."""
    if end - off < 24:
        return None
    fc0, fc1 = buf[off], buf[off + 1]
    subtype = fc0 >> 4
    if (fc0 >> 2) & 3 != 2 or subtype & 0x4 or fc1 & 0x40:
        return None  # not data, a data frame with no body, or encrypted
    length = 24
    if fc1 & 0x03 == 0x03:
        length += 6  # a fourth address between access points (WDS, mesh)
    if subtype & 0x8:  # QoS data
        if end - off < length + 2 or buf[off + length] & 0x80:
            return None  # an A-MSDU holds several frames, each with its own header
        length += 2
        if fc1 & 0x80:
            length += 4  # HT control
    return llc_snap(buf, off + length, end)


def radiotap(buf: bytes, off: int, end: int) -> Layer | None:
    """A radiotap header (version 0; its length is little-endian) in front of an 802.11 frame."""
    if end - off < 8 or buf[off] != 0:
        return None
    length = buf[off + 2] | (buf[off + 3] << 8)
    if length < 8:
        return None
    return (AT_DOT11, 0, off + length)


def nflog(buf: bytes, off: int, end: int) -> Layer | None:
    """NFLOG (nftables `log group`): a family, then TLVs in the writer's byte order; type 9 is the packet."""
    if end - off < 4 or buf[off] not in (_AF_INET, _AF_INET6):
        return None
    pos = off + 4
    big_endian = end - pos >= 2 and buf[pos] == 0 and buf[pos + 1] != 0  # lengths are small: LE has 0 second
    while end - pos >= 4:
        if big_endian:
            length, kind = (buf[pos] << 8) | buf[pos + 1], ((buf[pos + 2] << 8) | buf[pos + 3]) & 0x3FFF
        else:
            length, kind = buf[pos] | (buf[pos + 1] << 8), (buf[pos + 2] | (buf[pos + 3] << 8)) & 0x3FFF
        if length < 4 or length > end - pos:
            return None
        if kind == _NFULA_PAYLOAD:
            return (AT_IP, 4 if buf[off] == _AF_INET else 41, pos + 4)
        pos += (length + 3) & ~3
    return None


def _cooked(buf: bytes, off: int, end: int) -> Layer | None:
    if end - off < 16:
        return None
    etype = (buf[off + 14] << 8) | buf[off + 15]
    if etype == 0x0004:  # ETH_P_802_2: an LLC header follows
        return llc_snap(buf, off + 16, end)
    return (AT_ETHERTYPE, etype, off + 16)


def _cooked2(buf: bytes, off: int, end: int) -> Layer | None:
    if end - off < 20:
        return None
    etype = (buf[off] << 8) | buf[off + 1]
    if etype == 0x0004:
        return llc_snap(buf, off + 20, end)
    return (AT_ETHERTYPE, etype, off + 20)


def _loopback(buf: bytes, off: int, end: int) -> Layer | None:
    # the family field's byte order depends on the writer: look at the IP version instead
    return ip_by_version(buf, off + 4, end)


def _cisco_hdlc(buf: bytes, off: int, end: int) -> Layer | None:
    if end - off < 4:
        return None
    return (AT_ETHERTYPE, (buf[off + 2] << 8) | buf[off + 3], off + 4)


_FIRST_LAYER: Final[dict[int, Callable[[bytes, int, int], Layer | None]]] = {
    LINKTYPE_ETHERNET: lambda buf, off, end: (AT_ETHERNET, 0, off),
    LINKTYPE_LINUX_SLL: _cooked,
    LINKTYPE_LINUX_SLL2: _cooked2,
    LINKTYPE_RAW: ip_by_version,
    LINKTYPE_RAW_OPENBSD: ip_by_version,
    LINKTYPE_RAW_BSD: ip_by_version,
    LINKTYPE_IPV4: lambda buf, off, end: (AT_IP, 4, off),
    LINKTYPE_IPV6: lambda buf, off, end: (AT_IP, 41, off),
    LINKTYPE_NULL: _loopback,
    LINKTYPE_LOOP: _loopback,
    LINKTYPE_PPP: ppp,
    LINKTYPE_PPP_HDLC: ppp,
    LINKTYPE_PPP_PPPD: lambda buf, off, end: ppp(buf, off + 1, end),
    LINKTYPE_PPP_ETHER: pppoe_session,
    LINKTYPE_C_HDLC: _cisco_hdlc,
    LINKTYPE_ATM_RFC1483: llc_snap,
    LINKTYPE_IEEE802_11: lambda buf, off, end: (AT_DOT11, 0, off),
    LINKTYPE_IEEE802_11_RADIOTAP: radiotap,
    LINKTYPE_NFLOG: nflog,
}
SUPPORTED_LINKTYPES: Final = frozenset(_FIRST_LAYER)


def first_layer(linktype: int, buf: bytes) -> Layer | None:
    """What the link layer of `linktype` carries and where, or None for a link type or frame not read."""
    parse = _FIRST_LAYER.get(linktype)
    return parse(buf, 0, len(buf)) if parse is not None else None
