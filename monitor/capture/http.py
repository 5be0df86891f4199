"""HTTP/1.x request heads: the Host header, absolute-form targets and CONNECT.

Only the request line and headers of the first segment are read; the path,
query and body are never kept (data minimisation).
"""

from __future__ import annotations

METHODS = (
    b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ", b"TRACE ",
    b"PROPFIND ", b"M-SEARCH ", b"NOTIFY ", b"SUBSCRIBE ",
)
# First four bytes of a request, for a cheap test before any parsing.
METHOD_PREFIXES = frozenset(m[:4] for m in METHODS)
MAX_HEAD = 8192  # a request head is read this far and no further


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
    parts = head[:line_end].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
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
