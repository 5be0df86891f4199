"""HTTP/1.x request heads: the Host header, absolute-form targets and CONNECT.

Only the request line and headers of the first segment are read; the path,
query and body are never kept (data minimisation). Any method is accepted
(RFC 9110 section 9: a method is a token; WebDAV, CalDAV and UPnP add their
own), as is a request line with no target at all, which clients and
scanners send and servers answer.
"""

from __future__ import annotations

import re

METHODS = (
    b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ", b"TRACE ",
    b"PROPFIND ", b"PROPPATCH ", b"MKCOL ", b"COPY ", b"MOVE ", b"LOCK ", b"UNLOCK ", b"REPORT ",
    b"SEARCH ", b"MKCALENDAR ", b"M-SEARCH ", b"NOTIFY ", b"SUBSCRIBE ", b"UNSUBSCRIBE ",
)
# First four bytes of the common requests, for a cheap test before any parsing.
METHOD_PREFIXES = frozenset(m[:4] for m in METHODS)
MAX_HEAD = 8192  # a request head is read this far and no further
MAX_METHOD = 32
# A method token (RFC 9110 tchar) and the space after it: the test for a request with any other method.
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
REQUEST_START = re.compile(_TCHAR + rb"{1," + str(MAX_METHOD).encode() + rb"} ")
_METHOD_UNDER_WAY = re.compile(_TCHAR + rb"+")  # all token so far: the space may be in the next segment


def request_start(data: bytes | bytearray, start: int, end: int) -> bool:
    """Whether data[start:end] begins like a request line: a method token and a space."""
    return REQUEST_START.match(data, start, min(end, start + MAX_METHOD + 1)) is not None


class HTTPParseError(ValueError):
    """A request head that does not follow RFC 9112."""


def host_from_authority(authority: str) -> str:
    """`host[:port]` or `[v6]:port` to the bare host, lower case."""
    authority = authority.strip()
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    if authority.startswith("["):
        close = authority.find("]")
        return authority[1:close].lower() if close > 0 else ""
    colon = authority.rfind(":")
    if colon >= 0 and authority[colon + 1 :].isdigit():
        authority = authority[:colon]
    return authority.rstrip(".").lower()


def request_host(data: bytes | bytearray) -> tuple[str | None, bool]:
    """The host a request is for, and whether the head was complete enough to decide.

    Returns (host, complete). Absolute-form (`GET http://host/...`) and
    CONNECT (`CONNECT host:443`) targets win over the Host header, as RFC 9112
    section 3.2.2 says a proxy must do.
    """
    head = data[:MAX_HEAD]
    line_end = head.find(b"\r\n")
    if line_end < 0:
        line_end = head.find(b"\n")
        if line_end < 0:
            return None, len(data) >= MAX_HEAD
    parts = bytes(head[:line_end]).rstrip(b"\r").split(b" ")
    if len(parts) == 2:
        parts.insert(1, b"")  # "GET HTTP/1.1": no target, the Host header says where
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/") or not REQUEST_START.match(parts[0] + b" "):
        raise HTTPParseError("not an HTTP/1.x request line")
    method, target = parts[0], parts[1].decode("latin-1")
    if method == b"CONNECT":
        return host_from_authority(target) or None, True
    lower = target[:8].lower()
    if lower.startswith(("http://", "https://")):
        rest = target.split("://", 1)[1]
        authority = rest.split("/", 1)[0].split("?", 1)[0]
        return host_from_authority(authority) or None, True
    complete = b"\r\n\r\n" in head or b"\n\n" in head
    pos = head.find(b"\n")  # the end of the request line
    while True:
        nxt = head.find(b"\n", pos + 1)
        line = head[pos + 1 : nxt if nxt >= 0 else len(head)].rstrip(b"\r")
        if not line:
            break
        if line[:5].lower() == b"host:":
            if nxt < 0 and not complete:
                return None, False  # the Host value may continue in the next segment
            return host_from_authority(line[5:].decode("latin-1")) or None, True
        if nxt < 0:
            break
        pos = nxt
    return None, complete or len(data) >= MAX_HEAD


class HeadScanner:
    """Says when a request head that grows a segment at a time is worth reading again.

    `request_host` walks every header line, so calling it on each one-byte
    segment of a long head costs the square of its length. This looks at each
    new byte once and asks for a read only when a line that can decide has
    ended: the request line, a Host header or the blank line that ends the
    head, or when the head reaches MAX_HEAD.
    """

    __slots__ = ("line_start", "scanned")

    @staticmethod
    def starts(head: bytes | bytearray) -> bool | None:
        """Whether a stream's first bytes begin a request line: a method token and a space.

        None while they are all token characters and shorter than the longest
        method: the space may come in the next segment. Looks at no more than
        33 bytes, so asking again on each new segment costs nothing that grows.
        """
        if bytes(head[:4]) in METHOD_PREFIXES or REQUEST_START.match(head, 0, MAX_METHOD + 1):
            return True
        if len(head) <= MAX_METHOD and _METHOD_UNDER_WAY.fullmatch(head):
            return None
        return False

    def __init__(self) -> None:
        self.line_start = 0  # where the line under way starts
        self.scanned = 0  # bytes already searched for a line end

    def ready(self, head: bytes | bytearray) -> bool:
        """True when `head`, grown since the last call, ended a line that can decide the host."""
        if len(head) >= MAX_HEAD:
            return True
        decisive = False
        start = self.line_start
        end = head.find(b"\n", self.scanned)
        while end >= 0:
            if (start == 0 or end == start or (end == start + 1 and head[start] == 13)
                    or head[start : start + 5].lower() == b"host:"):
                decisive = True
            start = end + 1
            end = head.find(b"\n", start)
        self.line_start = start
        self.scanned = len(head)
        return decisive
