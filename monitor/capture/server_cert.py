"""A server's certificate, read when the client's hello named no server: whom it says it is.

Psiphon omits the name from its TLS hello on purpose (psiphon-tunnel-core,
psiphon/dialParameters.go: an empty `MeekSNIServerName` "indicates to
disable/omit SNI" for fronted meek; unfronted meek HTTPS and TLS-OSSH send none
unless a random one is drawn), and its obfuscated SSH looks random. What is
left in clear, up to TLS 1.2, is the certificate the server answers with:
with no name asked for, a CDN hands out the default one for that address,
which for Psiphon's fronts names Psiphon's own domain (`psiphon3.net`).

So the sensor notes which TCP hellos had no name (`NamelessHellos`, bounded)
and, for those flows only, reads the names of the leaf certificate in the
server's first segment (ServerHello, Certificate) and looks them up in the
bypass catalog. A hello that names its server is judged by that name alone:
a shared certificate that happens to list a catalog domain never marks it.
TLS 1.3 encrypts the certificate: nothing is read there.
"""

from __future__ import annotations

from typing import Final

from monitor.capture.bypass import BypassCatalog

CONTENT_HANDSHAKE: Final = 0x16
HANDSHAKE_SERVER_HELLO: Final = 0x02
HANDSHAKE_CERTIFICATE: Final = 0x0B
SAN_OID: Final = b"\x06\x03\x55\x1d\x11"  # id-ce-subjectAltName, 2.5.29.17 (RFC 5280 4.2.1.6)
DNS_NAME_TAG: Final = 0x82  # GeneralName dNSName [2] IMPLICIT IA5String
MAX_NAMES: Final = 100
MAX_PENDING: Final = 4096  # nameless hellos awaiting their server's answer, then forgotten


def certificate_names(data: bytes | bytearray) -> list[str]:
    """The dNSNames of the leaf certificate in a server's first TLS segment: ServerHello, then
    Certificate (TLS 1.2 and earlier). Empty when the leaf does not end within `data`."""
    handshake = bytearray()
    pos, n = 0, len(data)
    while pos + 5 <= n and data[pos] == CONTENT_HANDSHAKE:
        length = (data[pos + 3] << 8) | data[pos + 4]
        handshake += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
    if len(handshake) < 4 or handshake[0] != HANDSHAKE_SERVER_HELLO:
        return []
    at = 4 + int.from_bytes(handshake[1:4])
    if at + 10 > len(handshake) or handshake[at] != HANDSHAKE_CERTIFICATE:
        return []
    leaf_start = at + 10  # message header (4), certificate list length (3), leaf length (3)
    leaf_end = leaf_start + int.from_bytes(handshake[at + 7 : at + 10])
    if leaf_end > len(handshake):
        return []
    return san_dns_names(bytes(handshake[leaf_start:leaf_end]))


def san_dns_names(cert: bytes) -> list[str]:
    """The dNSName entries of a DER certificate's subjectAltName extension, lower case."""
    at = cert.find(SAN_OID)
    if at < 0:
        return []
    at += len(SAN_OID)
    if cert[at : at + 2] == b"\x01\x01":  # critical BOOLEAN
        at += 3
    if cert[at : at + 1] != b"\x04":  # extnValue OCTET STRING
        return []
    _, at = _der_length(cert, at + 1)
    if cert[at : at + 1] != b"\x30":  # GeneralNames SEQUENCE
        return []
    length, at = _der_length(cert, at + 1)
    end = min(at + length, len(cert))
    names: list[str] = []
    while at + 2 <= end and len(names) < MAX_NAMES:
        tag = cert[at]
        length, start = _der_length(cert, at + 1)
        at = start + length
        if at > end:
            break
        if tag == DNS_NAME_TAG:
            names.append(cert[start:at].decode("ascii", "replace").lower())
    return names


def _der_length(buf: bytes, at: int) -> tuple[int, int]:
    """A DER length at `at`: (length, where the value starts); a bad one reads as running past the end."""
    if at >= len(buf):
        return len(buf), len(buf)
    first = buf[at]
    if first < 0x80:
        return first, at + 1
    size = first & 0x7F
    if not 1 <= size <= 3:
        return len(buf), len(buf)
    return int.from_bytes(buf[at + 1 : at + 1 + size]), at + 1 + size


def certificate_kind(data: bytes | bytearray, catalog: BypassCatalog) -> str | None:
    """The catalog kind of the first leaf name listed (a wildcard counts for its domain)."""
    for name in certificate_names(data):
        kind = catalog.kind_of(name.removeprefix("*."))
        if kind is not None:
            return kind
    return None


class NamelessHellos:
    """TCP flows whose ClientHello named no server, keyed (client, cport, server, sport), until
    the server's first segment; at most `MAX_PENDING`, then the oldest half is forgotten."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        # read by the frame triage too: a server's first segment on one of these goes to `feed`
        self.waiting: dict[tuple, None] = {}

    def __len__(self) -> int:
        return len(self.waiting)

    def note(self, d: tuple) -> None:
        """A nameless hello, `d` the sensor's decoded packet (src, dst, sport, dport at 1-4)."""
        if len(self.waiting) >= MAX_PENDING:
            for key in list(self.waiting)[: MAX_PENDING // 2]:
                del self.waiting[key]
        self.waiting[(d[1], d[3], d[2], d[4])] = None

    def server_kind(self, d: tuple, data: bytes | bytearray, catalog: BypassCatalog) -> str | None:
        """For a server's first segment `data`: the kind its certificate names, if the client's
        hello on this flow had no name; each flow is read once."""
        key = (d[2], d[4], d[1], d[3])
        if key not in self.waiting:
            return None
        del self.waiting[key]
        return certificate_kind(data, catalog)
