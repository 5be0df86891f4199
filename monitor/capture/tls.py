"""TLS ClientHello (RFC 8446 section 4.1.2): the server name, and whether it is only an outer name.

Our own parser instead of `mitmproxy.tls.ClientHello`: it reads only the
fields on the way to the extensions. On the 93 real ClientHellos of the shared
captures it is 8 to 12 times faster with the same server names
(bench/tls_parse_bench.py). A ClientHello may span several TCP segments and
several TLS records; `client_hello_from_records` reassembles the handshake
message from a byte stream and says when it needs more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CONTENT_HANDSHAKE: Final = 0x16
HANDSHAKE_CLIENT_HELLO: Final = 0x01
EXT_SERVER_NAME: Final = 0x0000
EXT_ALPN: Final = 0x0010  # application-layer protocol negotiation: "dot", "doq" name a resolver
EXT_ENCRYPTED_CLIENT_HELLO: Final = 0xFE0D  # draft-ietf-tls-esni
EXT_ENCRYPTED_SERVER_NAME: Final = 0xFFCE  # the older ESNI drafts
MAX_CLIENT_HELLO: Final = 1 << 16  # no real ClientHello is larger; bounds reassembly


class TLSParseError(ValueError):
    """Bytes that claim to be a ClientHello but are not one."""


class NeedMore(Exception):
    """The stream holds the start of a ClientHello but not all of it yet."""


@dataclass(slots=True)
class ClientHelloInfo:
    server_name: str | None
    # Encrypted Client Hello (or ESNI): the visible name is the outer one, not the real server.
    encrypted: bool
    alpn: tuple[str, ...] = ()  # the protocols offered, in order (bypass.py reads "dot" and "doq")
    # Encrypted Client Hello proper (not the withdrawn ESNI drafts, which no server answers since 2020)
    ech: bool = False


def looks_like_client_hello(data: bytes) -> bool:
    """A cheap test on the first bytes of a TCP payload: a handshake record holding a ClientHello."""
    return len(data) >= 6 and data[0] == CONTENT_HANDSHAKE and data[1] == 3 and data[5] == 1


def client_hello_from_records(stream: bytes | bytearray) -> bytes:
    """The ClientHello handshake message (with its 4-byte header) from a stream of TLS records.

    Raises NeedMore when the stream ends before the message does, and
    TLSParseError when the stream is not TLS handshake records.
    """
    message = HelloReader().read(stream)
    if message is None:
        raise NeedMore
    return message


class HelloReader:
    """Reads a ClientHello from a stream of TLS records that grows a segment at a time.

    Each call takes up only the bytes that arrived since the last one, and
    `need` says how long the stream must be before another call can get
    further (the end of the record or message under way): a sender of one-byte
    segments costs one comparison per segment, not a re-parse of the stream.
    """

    __slots__ = ("message", "need", "need_message", "pos")

    def __init__(self) -> None:
        self.pos = 0  # stream offset of the next record header
        self.message = bytearray()  # handshake bytes of the records taken up so far
        self.need_message = -1  # length of the whole handshake message, once its header is seen
        self.need = 5  # call `read` again once the stream holds this many bytes

    def read(self, stream: bytes | bytearray) -> bytes | None:
        """The ClientHello message once `stream` holds all of it, else None (see `need`)."""
        message = self.message
        pos = self.pos
        n = len(stream)
        while True:
            if pos + 5 > n:
                self.pos, self.need = pos, pos + 5
                return None
            if stream[pos] != CONTENT_HANDSHAKE or stream[pos + 1] != 3:
                raise TLSParseError("not a TLS handshake record")
            length = (stream[pos + 3] << 8) | stream[pos + 4]
            if length == 0 or length > 18432:
                raise TLSParseError(f"record length {length}")
            start, end = pos + 5, pos + 5 + length
            if self.need_message < 0 and len(message) + min(length, n - start) >= 4:
                # The handshake header is here (message holds fewer than 4 bytes until it is).
                self._learn_length(bytes(message) + bytes(stream[start : start + 4 - len(message)]))
            if self.need_message >= 0 and len(message) + min(length, n - start) >= self.need_message:
                # The message ends inside this record (what follows it is never read).
                message += stream[start : start + self.need_message - len(message)]
                return bytes(message)
            if end > n:
                wanted = self.need_message if self.need_message >= 0 else 4
                self.pos, self.need = pos, min(end, start + wanted - len(message))
                return None
            message += stream[start:end]
            pos = end

    def _learn_length(self, header: bytes) -> None:
        if header[0] != HANDSHAKE_CLIENT_HELLO:
            raise TLSParseError("handshake is not a ClientHello")
        self.need_message = 4 + int.from_bytes(header[1:4], "big")
        if self.need_message > MAX_CLIENT_HELLO:
            raise TLSParseError("ClientHello too large")


def parse_client_hello(msg: bytes) -> ClientHelloInfo:
    """Server name and ECH presence from a ClientHello message (4-byte handshake header included)."""
    n = len(msg)
    if n < 4 + 38 or msg[0] != HANDSHAKE_CLIENT_HELLO:
        raise TLSParseError("too short for a ClientHello")
    end = min(n, 4 + int.from_bytes(msg[1:4], "big"))
    pos = 4 + 2 + 32  # version, random
    pos += 1 + msg[pos]  # session id
    if pos + 2 > end:
        raise TLSParseError("truncated before cipher suites")
    pos += 2 + ((msg[pos] << 8) | msg[pos + 1])
    if pos + 1 > end:
        raise TLSParseError("truncated before compression methods")
    pos += 1 + msg[pos]
    if pos == end:
        return ClientHelloInfo(None, False)  # no extensions (SSL 3.0 style)
    if pos + 2 > end:
        raise TLSParseError("truncated before extensions")
    ext_end = pos + 2 + ((msg[pos] << 8) | msg[pos + 1])
    if ext_end > end:
        raise TLSParseError("extensions run past the message")
    pos += 2
    name = None
    encrypted = ech = False
    alpn: tuple[str, ...] = ()
    while pos + 4 <= ext_end:
        etype = (msg[pos] << 8) | msg[pos + 1]
        elen = (msg[pos + 2] << 8) | msg[pos + 3]
        pos += 4
        if pos + elen > ext_end:
            raise TLSParseError("extension runs past the extensions")
        if etype == EXT_SERVER_NAME:
            name = _server_name(msg[pos : pos + elen])
        elif etype == EXT_ENCRYPTED_CLIENT_HELLO:
            # ECHClientHello: type 0 is the outer hello (the visible SNI is the public name).
            encrypted = ech = elen > 0 and msg[pos] == 0
        elif etype == EXT_ENCRYPTED_SERVER_NAME:
            encrypted = True
        elif etype == EXT_ALPN:
            alpn = _protocols(msg, pos, pos + elen)
        pos += elen
    return ClientHelloInfo(name, encrypted, alpn, ech)


def _protocols(msg: bytes, pos: int, end: int) -> tuple[str, ...]:
    """The ALPN protocol names (RFC 7301); a malformed list yields what was read before it."""
    if end - pos < 2:
        return ()
    stop = min(end, pos + 2 + ((msg[pos] << 8) | msg[pos + 1]))
    pos += 2
    names: list[str] = []
    while pos < stop and len(names) < 16:
        length = msg[pos]
        if length == 0 or pos + 1 + length > stop:
            break
        names.append(msg[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    return tuple(names)


def _server_name(ext: bytes) -> str | None:
    if len(ext) < 2:
        raise TLSParseError("empty server_name extension")
    list_end = 2 + ((ext[0] << 8) | ext[1])
    if list_end > len(ext):
        raise TLSParseError("server_name list runs past the extension")
    pos = 2
    while pos + 3 <= list_end:
        kind = ext[pos]
        length = (ext[pos + 1] << 8) | ext[pos + 2]
        pos += 3
        if pos + length > list_end:
            raise TLSParseError("server name runs past the list")
        if kind == 0:  # host_name
            raw = ext[pos : pos + length]
            try:
                host = raw.decode("ascii")
            except UnicodeDecodeError:
                raise TLSParseError("server name is not ASCII") from None
            return host.rstrip(".").lower() or None
        pos += length
    return None
