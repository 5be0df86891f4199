"""Traffic that hides where it goes: which kind, from the packets' structure and the names in hellos.

The sensor asks two questions of this module. For a TLS or QUIC hello (or an
HTTP request) it has already read: does it hide its destination (`hello_kind`:
ECH, a resolver's name or DNS-over-TLS/QUIC by port or ALPN, a VPN service's
name, the random `www.<base32>.com` name Tor's clients send)? For a UDP
datagram, a TCP segment or an ESP packet that carries no name at all: is it a
VPN's own protocol (`udp_protocol`, `tcp_protocol`, `esp_packet`)? Each test
reads a few bytes at fixed offsets, so ordinary traffic costs one or two
comparisons, and needs no state: the sensor's `SeenFlows` makes it one
observation per flow, oriented the same way for either direction
(`sender_is_client`).

What is recognised, and why it cannot be ordinary traffic, is in
docs/capture.md ("Traffic that hides its destination"). The names come from
`monitor/data/bypass.yaml` (sources named there) and the config's `bypass:`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from monitor import datafiles
from monitor.capture.tls import ClientHelloInfo
from monitor.observation import normalise_hostname

Kind = Literal["encrypted-dns", "vpn", "tor", "ech"]
KINDS: Final = ("encrypted-dns", "vpn", "tor", "ech")
CATALOG_KINDS: Final = ("encrypted-dns", "vpn")  # the kinds a name can say

DOT_PORT: Final = 853  # RFC 7858 (TLS) and RFC 9250 (QUIC)
DOQ_PORTS: Final = frozenset({853, 784, 8853})  # RFC 9250, and the draft's ports still in use
DNS_ALPN: Final = ("dot", "doq")  # "doq", "doq-i00".."doq-i11" (drafts)
IKE_PORTS: Final = frozenset({500, 4500})  # RFC 7296 section 2, NAT-T RFC 3948
# A server's port of the protocols here: that side of a flow is the server, whichever sent.
SERVER_PORTS: Final = frozenset({443, 500, 4500, 1194, 51820, 5004, 5555, 992, 853, 784, 8853})
# WireGuard (whitepaper section 5.4): type, three reserved zero bytes; fixed sizes for the handshake.
_WG_SIZES: Final = {1: 148, 2: 92, 3: 64}
# OpenVPN (ssl_pkt.h): opcode << 3 | key id. A hard reset carries key id 0.
_OVPN_CLIENT_RESET: Final = frozenset({7 << 3, 10 << 3})  # P_CONTROL_HARD_RESET_CLIENT_V2, _V3
_OVPN_SERVER_RESET: Final = 8 << 3  # P_CONTROL_HARD_RESET_SERVER_V2
_TCP_RESETS: Final = _OVPN_CLIENT_RESET | {_OVPN_SERVER_RESET}
# Bytes between the session id and the ack array: none; tls-auth's HMAC (MD5, SHA-1, SHA-256,
# SHA-512) with its packet id and time (8 bytes); tls-crypt's packet id, time and tag (8 + 32).
_OVPN_AUTH: Final = (0, 16 + 8, 20 + 8, 32 + 8, 64 + 8)
# What an OpenVPN packet starts with, for the UDP dispatch: resets, and the server's reset.
FIRST_BYTES: Final = frozenset({1, 2, 3, 4, 7 << 3, 8 << 3, 10 << 3, 0, 0x49})
_IKE_EXCHANGES: Final = frozenset({2, 4, 5, 6, 32, 34, 35, 36, 37, 43})  # IKEv1 main..quick; IKEv2
_B32: Final = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_DIGITS: Final = frozenset("234567")
_VOWELS: Final = frozenset("aeiouy")


@dataclass(slots=True)
class BypassCatalog:
    """Domain suffix -> kind, matched label-wise like the platform catalog (longest suffix wins)."""

    kinds: dict[str, str] = field(default_factory=dict)

    def kind_of(self, hostname: str) -> str | None:
        """The kind a hostname's suffix is listed under, or None (one dict probe per label)."""
        if not hostname or not self.kinds:
            return None
        name = hostname
        while True:
            kind = self.kinds.get(name)
            if kind is not None:
                return kind
            dot = name.find(".")
            if dot < 0:
                return None
            name = name[dot + 1 :]

    def extended(self, names: dict[str, Iterable[str]]) -> BypassCatalog:
        """A copy with more names, by kind (the config's additions)."""
        kinds = dict(self.kinds)
        for kind, domains in names.items():
            for domain in domains:
                kinds[normalise_hostname(domain)] = kind
        return BypassCatalog(kinds)


def load_catalog(text: str) -> BypassCatalog:
    """The catalog from its YAML text: a list of domains under each of `CATALOG_KINDS`."""
    return catalog_of(datafiles.parse_yaml(text))


def catalog_of(data: Any) -> BypassCatalog:
    """The catalog from its parsed data (the YAML file's, or its compiled copy: monitor.datafiles)."""
    data = data or {}
    if not isinstance(data, dict) or set(data) - set(CATALOG_KINDS):
        raise ValueError(f"bypass catalog: top-level keys must be {', '.join(CATALOG_KINDS)}")
    kinds: dict[str, str] = {}
    for kind, domains in data.items():
        for domain in domains or ():
            name = normalise_hostname(str(domain))
            if name in kinds:
                raise ValueError(f"bypass catalog: {name} listed twice")
            kinds[name] = kind
    return BypassCatalog(kinds)


_default: BypassCatalog | None = None


def default_catalog() -> BypassCatalog:
    """monitor/data/bypass.yaml, read once."""
    global _default
    if _default is None:
        _default = catalog_of(datafiles.load("bypass"))
    return _default


# -- names ---------------------------------------------------------------------------------------


def tor_shaped(name: str) -> bool:
    """Tor's client SNI: "www." + 4..25 random base32 characters + ".com" (tortls.c,
    `crypto_random_hostname(4, 25, "www.", ".com")`; ".net" in its certificates). Real names of
    that shape hold words: the label must hold a digit, or run six consonants together."""
    if len(name) < 12 or not name.startswith("www.") or not name.endswith((".com", ".net")):
        return False
    label = name[4:-4]
    if len(label) > 25 or not _B32.issuperset(label):
        return False
    if not _DIGITS.isdisjoint(label):
        return True
    run = 0
    for ch in label:
        run = 0 if ch in _VOWELS else run + 1
        if run >= 6:
            return True
    return False


def hello_kind(info: ClientHelloInfo, transport: str, server_port: int,
               catalog: BypassCatalog) -> str | None:
    """What a TLS (tcp) or QUIC (udp) ClientHello hides, if anything."""
    if info.ech:
        return "ech"
    for protocol in info.alpn:
        if protocol.startswith(DNS_ALPN):
            return "encrypted-dns"
    if server_port == DOT_PORT if transport == "tcp" else server_port in DOQ_PORTS:
        return "encrypted-dns"
    name = info.server_name
    if name:
        kind = catalog.kind_of(name)
        if kind is not None:
            return kind
        if transport == "tcp" and tor_shaped(name):
            return "tor"
    return None


# -- protocols without a name --------------------------------------------------------------------


def udp_protocol(buf: bytes, start: int, end: int, sport: int, dport: int) -> str | None:
    """The VPN protocol a UDP payload `buf[start:end]` is, or None. Only looks further than the
    first byte when it is one these protocols begin with, or the ports are IKE's."""
    if (sport in IKE_PORTS or dport in IKE_PORTS) and (
            ike(buf, start, end) or (4500 in (sport, dport) and esp_in_udp(buf, start, end))):
        return "ipsec"
    first = buf[start]
    if first not in FIRST_BYTES:
        return None
    if first <= 4:
        if first == 0:
            return "softether" if softether_pack(buf, start, end) else None
        return "wireguard" if wireguard(buf, start, end) else None
    if first == 0x49:
        return "softether" if buf[start : start + 3] == b"IP=" and b",PORT=" in buf[start : end] else None
    return "openvpn" if openvpn_reset(buf, start, end) else None


def tcp_protocol(buf: bytes | bytearray, start: int, end: int) -> str | None:
    """OpenVPN over TCP: each packet has a 2-byte length before it; a connection opens with a reset."""
    if end - start < 16 or buf[start + 2] not in _TCP_RESETS:
        return None
    if (buf[start] << 8) | buf[start + 1] != end - start - 2:
        return None
    return "openvpn" if openvpn_reset(buf, start + 2, end) else None


def wireguard(buf: bytes, start: int, end: int) -> bool:
    """A WireGuard message: reserved bytes zero, the handshake's fixed sizes, or transport data
    (a nonzero receiver index, a counter, and a 16-byte tag after padding to 16)."""
    n = end - start
    if n < 32 or buf[start + 1] or buf[start + 2] or buf[start + 3]:
        return False
    kind = buf[start]
    if kind in _WG_SIZES:
        return n == _WG_SIZES[kind] and buf[start + 4 : start + 8] != b"\0\0\0\0"
    index = buf[start + 4 : start + 8]
    return n % 16 == 0 and index != b"\0\0\0\0" and buf[start + 14] == buf[start + 15] == 0  # counter < 2**48


def openvpn_reset(buf: bytes | bytearray, start: int, end: int) -> bool:
    """An OpenVPN hard reset: its length is fixed by the ack array and the auth mode.

    Client: opcode, session id (8), auth, ack count 0, message packet id 0 (an OpenVPN 2.6
    client may add its 6-byte early-negotiation TLV). Server: the same with an ack array of n
    packet ids and the client's session id. tls-crypt encrypts the tail, so there the packet id in
    clear right after the session id is checked instead (it starts at 1)."""
    n = end - start
    first = buf[start]
    for auth in _OVPN_AUTH:
        if auth == 40 and buf[start + 9 : start + 13] == b"\0\0\0\1" and (
                (first in _OVPN_CLIENT_RESET and n in (54, 60)) or (first == _OVPN_SERVER_RESET and n >= 66)):
            return True
        if first in _OVPN_CLIENT_RESET:
            for tail in (0, 6):
                if n == 9 + auth + 5 + tail and buf[start + 9 + auth : start + 14 + auth] == b"\0\0\0\0\0":
                    return True
        elif first == _OVPN_SERVER_RESET:
            at = start + 9 + auth
            if at < end:
                acks = buf[at]
                if 1 <= acks <= 8 and n == 9 + auth + 1 + 4 * acks + 8 + 4:
                    return True
    return False


def ike(buf: bytes, start: int, end: int) -> bool:
    """An IKE message (RFC 7296 section 3.1, IKEv1 RFC 2408), after NAT-T's four zero bytes on 4500:
    an initiator SPI, version 1.0 or 2.0, a known exchange, and a length that is the datagram's."""
    if buf[start : start + 4] == b"\0\0\0\0":
        start += 4
    if end - start < 28 or buf[start : start + 8] == b"\0\0\0\0\0\0\0\0":
        return False
    if buf[start + 17] not in (0x10, 0x20) or buf[start + 18] not in _IKE_EXCHANGES:
        return False
    return int.from_bytes(buf[start + 24 : start + 28]) == end - start


def esp_in_udp(buf: bytes, start: int, end: int) -> bool:
    """ESP in UDP on 4500 (RFC 3948): an SPI of 256 or more, a sequence number from 1, a payload."""
    return end - start >= 24 and esp_header(buf, start)


def esp_header(buf: bytes, start: int) -> bool:
    spi = int.from_bytes(buf[start : start + 4])
    return spi >= 256 and int.from_bytes(buf[start + 4 : start + 8]) >= 1


def esp_packet(buf: bytes, start: int, end: int) -> bool:
    """IP protocol 50 (RFC 4303): SPI, sequence number, then at least an IV or a tag."""
    return end - start >= 16 and esp_header(buf, start)


def softether_pack(buf: bytes, start: int, end: int) -> bool:
    """SoftEther's UDP "Pack": element count, then the first element's name (its length counts a
    terminating byte that is not sent) in lower case, and a value type from 0 to 4."""
    if end - start < 20 or buf[start : start + 2] != b"\0\0":
        return False
    count = int.from_bytes(buf[start : start + 4])
    size = int.from_bytes(buf[start + 4 : start + 8])
    if not 1 <= count <= 64 or not 2 <= size <= 64 or start + 8 + size + 3 > end:
        return False
    name = buf[start + 8 : start + 7 + size]
    if not name.replace(b"_", b"").isalnum() or not name.islower():
        return False
    return int.from_bytes(buf[start + 7 + size : start + 11 + size]) <= 4


def sender_is_client(src: bytes, sport: int, dst: bytes, dport: int) -> bool:
    """Which end of a name-less flow is the client, the same for either direction: the end not on
    a server port; else the private address; else the higher port; else the lower address."""
    if (dport in SERVER_PORTS) != (sport in SERVER_PORTS):
        return dport in SERVER_PORTS
    if _private(src) != _private(dst):
        return _private(src)
    if sport != dport:
        return sport > dport
    return src < dst


def _private(addr: bytes) -> bool:
    """RFC 1918, CGNAT, loopback and link-local IPv4; unique-local and link-local IPv6."""
    if len(addr) == 4:
        a, b = addr[0], addr[1]
        return (a == 10 or a == 127 or (a == 172 and 16 <= b < 32) or (a == 192 and b == 168)
                or (a == 100 and 64 <= b < 128) or (a == 169 and b == 254))
    return addr[0] & 0xFE == 0xFC or (addr[0] == 0xFE and addr[1] & 0xC0 == 0x80)
