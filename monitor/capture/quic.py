"""QUIC Initial packets: decrypt the client's Initials and read the ClientHello's server name.

IETF QUIC (RFC 9000/9001 v1, RFC 9369 v2, drafts 23 to 32) protects Initial
packets with keys derived from the client's first Destination Connection ID
and a public, version-specific salt, so any observer can decrypt them. We
derive those keys (HKDF-SHA256, a few HMACs), use aioquic's AEAD and header
protection (its C extension: importing aioquic's TLS and connection modules
would cost `classify` 0.1 s of start-up), and reassemble the CRYPTO stream
across packets and datagrams (out of order, coalesced, several Initials in
one datagram) until the ClientHello is complete.

Google QUIC up to Q046 sends its CHLO handshake message in clear text: Q043
and older with the legacy public header (no long-header bit), Q046 with a
long header. The CHLO is a tag/value map; the server name is the `SNI` tag.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from aioquic._crypto import AEAD, HeaderProtection

from monitor.capture.tls import ClientHelloInfo, TLSParseError, parse_client_hello

VERSION_1: Final = 0x00000001
MAX_CRYPTO_CHUNKS: Final = 256  # CRYPTO frames held per connection (Chrome scatters a hello in dozens)
# A client's Initial datagram is padded to at least 1200 bytes (RFC 9000 section 14.1).
MIN_CLIENT_INITIAL: Final = 1200
VERSION_2: Final = 0x6B3343CF

_SALT_V1 = binascii.unhexlify("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SALT_V2 = binascii.unhexlify("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_SALT_DRAFT_29 = binascii.unhexlify("afbfec289993d24c9e9786f19c6111e04390a899")
_SALT_DRAFT_23 = binascii.unhexlify("c3eef712c72ebb5a11a7d2432bb46365bef9f502")
_SALT_DRAFT_22 = binascii.unhexlify("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a")
# Google QUIC with IETF-style protected Initials (Chromium's quic_crypto_utils salts).
_SALT_Q050 = binascii.unhexlify("504574efd066fe2f9d945cfcdbd3a7f0d3b56b45")
_SALT_T050 = binascii.unhexlify("7ff579e5acd072915580304c43a2367c60488310")
_SALT_T051 = binascii.unhexlify("7a4edef4e7ccee5fa4506c19124fc8ccda6e033d")
VERSION_Q050: Final = 0x51303530
VERSION_T050: Final = 0x54303530
VERSION_T051: Final = 0x54303531


def initial_salt(version: int) -> bytes | None:
    """The Initial salt for a version we can decrypt, else None."""
    if version == VERSION_1:
        return _SALT_V1
    if version == VERSION_2:
        return _SALT_V2
    if 0xFF00001D <= version <= 0xFF000020:  # drafts 29 to 32
        return _SALT_DRAFT_29
    if 0xFF000017 <= version <= 0xFF00001C or version in (0xFACEB002, 0xFACEB00E):  # drafts 23-28, mvfst
        return _SALT_DRAFT_23
    if 0xFF000000 < version <= 0xFF000016 or version == 0xFACEB001:  # older drafts, mvfst draft-22
        return _SALT_DRAFT_22
    if version == VERSION_Q050:
        return _SALT_Q050
    if version == VERSION_T050:
        return _SALT_T050
    if version == VERSION_T051:
        return _SALT_T051
    return None


def is_initial(first_byte: int, version: int) -> bool:
    """Long-header packet type Initial: 0b00 in v1 and drafts, 0b01 in v2 (RFC 9369 section 3.2)."""
    ptype = (first_byte & 0x30) >> 4
    return ptype == 1 if version == VERSION_2 else ptype == 0


class QUICParseError(ValueError):
    """A long header or frame that runs past its datagram or breaks the encoding."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """RFC 9000 section 16 variable-length integer at pos; returns (value, next pos)."""
    if pos >= len(buf):
        raise QUICParseError("varint past the end")
    first = buf[pos]
    size = 1 << (first >> 6)
    if pos + size > len(buf):
        raise QUICParseError("varint past the end")
    value = first & 0x3F
    for i in range(1, size):
        value = (value << 8) | buf[pos + i]
    return value, pos + size


def hkdf_expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """TLS 1.3's HKDF-Expand-Label with SHA-256 and no context (RFC 8446 section 7.1), for
    `length` up to one SHA-256 block (all QUIC Initial keys are)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return hmac.digest(secret, info + b"\x01", hashlib.sha256)[:length]


@dataclass(frozen=True, slots=True)
class InitialKeys:
    """The keys that protect a client's Initial packets: AES-128-GCM and AES-128 header protection."""

    aead: AEAD
    hp: HeaderProtection

    def decrypt_packet(self, packet: bytes, pn_offset: int) -> tuple[bytes, bytes]:
        """(plain header, payload) of one protected long-header packet (RFC 9001 section 5.3-5.4).

        The packet number is taken as sent: decoding it against an expected number of 0 (RFC 9000
        appendix A.3) leaves it unchanged. Raises ValueError on wrong keys or a damaged packet."""
        plain_header, packet_number = self.hp.remove(packet, pn_offset)
        return plain_header, self.aead.decrypt(packet[len(plain_header):], plain_header, packet_number)


def client_initial_context(version: int, dcid: bytes) -> InitialKeys | None:
    """Keys that decrypt a client's Initial packets (RFC 9001 section 5.2; RFC 9369 section 3.3.2
    for v2's labels, which no other version uses)."""
    salt = initial_salt(version)
    if salt is None:
        return None
    secret = hkdf_expand_label(hmac.digest(salt, dcid, hashlib.sha256), b"client in", 32)
    prefix = b"quicv2 " if version == VERSION_2 else b"quic "
    key = hkdf_expand_label(secret, prefix + b"key", 16)
    iv = hkdf_expand_label(secret, prefix + b"iv", 12)
    hp = hkdf_expand_label(secret, prefix + b"hp", 16)
    return InitialKeys(AEAD(b"aes-128-gcm", key, iv), HeaderProtection(b"aes-128-ecb", hp))


def crypto_frames(payload: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) of the CRYPTO frames in a decrypted Initial payload."""
    out = []
    pos = 0
    n = len(payload)
    while pos < n:
        ftype = payload[pos]
        pos += 1
        if ftype == 0x00 or ftype == 0x01:  # PADDING, PING
            continue
        if ftype in (0x02, 0x03):  # ACK
            _largest, pos = read_varint(payload, pos)
            _delay, pos = read_varint(payload, pos)
            count, pos = read_varint(payload, pos)
            _first, pos = read_varint(payload, pos)
            for _ in range(count):
                _gap, pos = read_varint(payload, pos)
                _len, pos = read_varint(payload, pos)
            if ftype == 0x03:
                for _ in range(3):
                    _ecn, pos = read_varint(payload, pos)
        elif ftype == 0x06:  # CRYPTO
            offset, pos = read_varint(payload, pos)
            length, pos = read_varint(payload, pos)
            if pos + length > n:
                raise QUICParseError("CRYPTO frame past the packet")
            out.append((offset, payload[pos : pos + length]))
            pos += length
        elif ftype in (0x1C, 0x1D):  # CONNECTION_CLOSE
            _code, pos = read_varint(payload, pos)
            if ftype == 0x1C:
                _frame, pos = read_varint(payload, pos)
            reason, pos = read_varint(payload, pos)
            pos += reason
        else:
            break  # no other frame is allowed in an Initial packet
    return out


@dataclass(slots=True)
class CryptoStream:
    """The client's Initial CRYPTO stream of one connection, until the ClientHello is whole."""

    context: InitialKeys | None
    chunks: dict[int, bytes] = field(default_factory=dict)
    size: int = 0
    last_seen: float = 0.0

    def add(self, offset: int, data: bytes, limit: int) -> None:
        """Hold a CRYPTO frame's data; all of them together stay within `limit` bytes, counting
        overlapping copies too (else 1-byte shifts of one frame would hold `limit` squared)."""
        if offset + len(data) > limit or not data:
            return
        old = self.chunks.get(offset)
        grown = len(data) - (len(old) if old else 0)
        if grown <= 0 or self.size + grown > limit or (old is None and len(self.chunks) >= MAX_CRYPTO_CHUNKS):
            return
        self.chunks[offset] = data
        self.size += grown

    def contiguous(self) -> bytes:
        out = bytearray()
        for offset in sorted(self.chunks):
            if offset > len(out):
                break
            data = self.chunks[offset]
            if offset + len(data) > len(out):
                out += data[len(out) - offset :]
        return bytes(out)


@dataclass(slots=True)
class InitialResult:
    """What one datagram told us: a finished ClientHello, or that the packet was an Initial at all."""

    hello: ClientHelloInfo | None
    version: int


def parse_long_headers(data: bytes) -> list[tuple[int, int, bytes, int, int]]:
    """Client Initial packets coalesced in a datagram: (version, start, dcid, pn_offset, end) each."""
    packets = []
    pos = 0
    n = len(data)
    while pos + 7 <= n and data[pos] & 0x80:
        start = pos
        first = data[pos]
        version = int.from_bytes(data[pos + 1 : pos + 5], "big")
        if version == 0:
            break  # version negotiation
        dcid_len = data[pos + 5]
        if dcid_len > 20:
            raise QUICParseError(f"connection id of {dcid_len} bytes")
        pos += 6
        dcid = data[pos : pos + dcid_len]
        pos += dcid_len
        if pos >= n:
            raise QUICParseError("header past the datagram")
        scid_len = data[pos]
        pos += 1 + scid_len
        ptype = (first & 0x30) >> 4
        initial = is_initial(first, version)
        retry = ptype == (0 if version == VERSION_2 else 3)
        if retry:
            break
        if initial:
            token_len, pos = read_varint(data, pos)
            pos += token_len
        length, pos = read_varint(data, pos)
        end = pos + length
        if end > n:
            raise QUICParseError("packet length past the datagram")
        if initial:
            packets.append((version, start, dcid, pos, end))
        pos = end
    return packets


class QuicInitials:
    """Per-connection CRYPTO reassembly for QUIC Initials, bounded in connections and bytes."""

    def __init__(self, max_connections: int = 4096, max_crypto_bytes: int = 16384, on_evict=None):
        self.max_connections = max_connections
        self.max_crypto_bytes = max_crypto_bytes
        self.streams: OrderedDict[tuple, CryptoStream] = OrderedDict()
        self._on_evict = on_evict

    def datagram(self, key: tuple, data: bytes, now: float) -> InitialResult | None:
        """Feed one UDP payload that starts with a long header; a ClientHello once it is complete."""
        if len(data) < 7:
            return None
        first_version = int.from_bytes(data[1:5], "big")
        if initial_salt(first_version) is None:
            # Not a version we can read (or not QUIC at all: any UDP payload may start with
            # 0b11): no parse, so that other protocols are not counted as QUIC errors.
            return InitialResult(None, first_version)
        packets = parse_long_headers(data)
        if not packets:
            return None
        version = packets[0][0]
        stream = self.streams.get(key)
        hello = None
        for version, start, dcid, pn_offset, end in packets:
            if initial_salt(version) is None:
                continue
            packet = data[start:end]
            payload = None
            for context in self._contexts(stream, version, dcid):
                try:
                    _header, payload = context.decrypt_packet(packet, pn_offset - start)
                    break
                except Exception:  # wrong keys (a server's Initial) or a damaged packet
                    payload = None
            if payload is None:
                continue
            if version == VERSION_Q050:
                # Q050 protects its Initials like IETF QUIC but still carries a gQUIC CHLO.
                name = chlo_server_name(payload)
                if name:
                    self.streams.pop(key, None)
                    return InitialResult(ClientHelloInfo(name, False), version)
                continue
            if stream is None:
                stream = self._new_stream(key, client_initial_context(version, dcid), now)
            elif stream.context is None:
                stream.context = client_initial_context(version, dcid)
            for offset, chunk in crypto_frames(payload):
                stream.add(offset, chunk, self.max_crypto_bytes)
            stream.last_seen = now
            hello = self._client_hello(stream)
            if hello is not None:
                self.streams.pop(key, None)
                break
        return InitialResult(hello, version)

    def _contexts(self, stream: CryptoStream | None, version: int, dcid: bytes):
        # Once the server has answered, a client's later Initials carry the server's connection
        # id but are still protected with the keys of the first one: try those first.
        if stream is not None and stream.context is not None:
            yield stream.context
        context = client_initial_context(version, dcid)
        if context is not None:
            yield context

    def _new_stream(self, key: tuple, context: InitialKeys | None, now: float) -> CryptoStream:
        if len(self.streams) >= self.max_connections:
            self.streams.popitem(last=False)  # the oldest, in O(1)
            if self._on_evict:
                self._on_evict()
        stream = self.streams[key] = CryptoStream(context, last_seen=now)
        return stream

    @staticmethod
    def _client_hello(stream: CryptoStream) -> ClientHelloInfo | None:
        data = stream.contiguous()
        if len(data) < 4:
            return None
        need = 4 + int.from_bytes(data[1:4], "big")
        if len(data) < need:
            return None
        try:
            return parse_client_hello(data[:need])
        except TLSParseError:
            raise QUICParseError("ClientHello in CRYPTO frames is malformed") from None

    def expire(self, older_than: float) -> None:
        for key in [k for k, s in self.streams.items() if s.last_seen < older_than]:
            del self.streams[key]


def is_gquic_version(version: bytes) -> bool:
    """Google QUIC versions are ASCII `Q0nn` (and `T0nn` for its TLS-based successors)."""
    return len(version) == 4 and version[:2] == b"Q0" and version[2:].isdigit()


def is_cleartext_gquic_version(version: bytes) -> bool:
    """gQUIC up to Q049 sends its CHLO in clear text; Q050 and later protect their Initials."""
    return is_gquic_version(version) and version < b"Q050"


def legacy_gquic_version(data: bytes) -> bytes | None:
    """The version of a gQUIC (<= Q043) client packet with the public header, else None."""
    if len(data) < 13:
        return None
    flags = data[0]
    if flags & 0x80 or not flags & 0x01:
        return None
    pos = 9 if flags & 0x08 else 1
    version = data[pos : pos + 4]
    return version if is_gquic_version(version) else None


def chlo_server_name(data: bytes) -> str | None:
    """The SNI tag of a clear-text gQUIC CHLO message in `data`, else None.

    A CHLO is `CHLO`, a 16-bit little-endian tag count, 2 bytes of padding,
    then (tag, 32-bit little-endian end offset) pairs, then the values.
    """
    pos = data.find(b"CHLO")
    if pos < 0 or pos + 8 > len(data):
        return None
    count = int.from_bytes(data[pos + 4 : pos + 6], "little")
    index = pos + 8
    values = index + 8 * count
    if count > 128 or values > len(data):
        raise QUICParseError("CHLO tag table past the packet")
    start = 0
    for i in range(count):
        tag = data[index + 8 * i : index + 8 * i + 4]
        end = int.from_bytes(data[index + 8 * i + 4 : index + 8 * i + 8], "little")
        if end < start or values + end > len(data):
            raise QUICParseError("CHLO value past the packet")
        if tag == b"SNI\x00":
            name = data[values + start : values + end]
            try:
                return name.decode("ascii").rstrip(".").lower() or None
            except UnicodeDecodeError:
                raise QUICParseError("CHLO SNI is not ASCII") from None
        start = end
    return None
