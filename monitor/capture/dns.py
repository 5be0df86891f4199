"""DNS messages (RFC 1035, also mDNS on 5353): the names asked and the addresses answered.

A query tells us a device wants a name; an answer tells us which addresses
serve it, which the flow table remembers so that a later TLS or QUIC flow to
that address without a readable name can still be attributed (weaker signal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PORTS = frozenset({53, 5353, 5355})  # DNS, mDNS, LLMNR
TYPE_A = 1
TYPE_AAAA = 28
_MAX_POINTERS = 32
_MAX_QUESTIONS = 8
_MAX_ANSWERS = 64


class DNSParseError(ValueError):
    """The message is not well-formed DNS."""


@dataclass(slots=True)
class DNSMessage:
    is_response: bool
    questions: list[str]
    # (address bytes, ttl seconds) for every A/AAAA record in the answer section
    addresses: list[tuple[bytes, int]] = field(default_factory=list)
    # The answer section was malformed: the questions are still good, the answers were cut short.
    answers_malformed: bool = False


def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """A possibly compressed domain name at `pos`; returns it and the offset after it."""
    labels: list[bytes] = []
    end = -1
    jumps = 0
    n = len(msg)
    total = 0
    while True:
        if pos >= n:
            raise DNSParseError("name runs past the message")
        length = msg[pos]
        if length == 0:
            pos += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= n:
                raise DNSParseError("truncated compression pointer")
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DNSParseError("compression loop")
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if kind:
            raise DNSParseError("unsupported label type")
        label = msg[pos + 1 : pos + 1 + length]
        if len(label) != length:
            raise DNSParseError("label runs past the message")
        total += length + 1
        if total > 255:
            raise DNSParseError("name longer than 255 octets")
        labels.append(label)
        pos += 1 + length
    # decoded once, whole: the same text as label by label (a dot is ASCII, escapes stay per byte)
    return b".".join(labels).decode("ascii", "backslashreplace").lower(), (end if end >= 0 else pos)


def parse_message(msg: bytes) -> DNSMessage:
    """Questions and (for responses) A/AAAA answers; raises DNSParseError on malformed input."""
    if len(msg) < 12:
        raise DNSParseError("shorter than a DNS header")
    flags = (msg[2] << 8) | msg[3]
    qdcount = (msg[4] << 8) | msg[5]
    ancount = (msg[6] << 8) | msg[7]
    if flags & 0x7800:  # opcode other than QUERY: no question worth reading
        return DNSMessage(bool(flags & 0x8000), [])
    if qdcount > _MAX_QUESTIONS:
        raise DNSParseError(f"{qdcount} questions")
    pos = 12
    questions = []
    for _ in range(qdcount):
        name, pos = read_name(msg, pos)
        if pos + 4 > len(msg):
            raise DNSParseError("truncated question")
        pos += 4
        if name:
            questions.append(name)
    out = DNSMessage(bool(flags & 0x8000), questions)
    if not out.is_response or not questions:
        return out
    try:
        for _ in range(min(ancount, _MAX_ANSWERS)):
            _name, pos = read_name(msg, pos)
            if pos + 10 > len(msg):
                raise DNSParseError("truncated answer")
            rtype = (msg[pos] << 8) | msg[pos + 1]
            ttl = int.from_bytes(msg[pos + 4 : pos + 8], "big")
            rdlen = (msg[pos + 8] << 8) | msg[pos + 9]
            pos += 10
            if pos + rdlen > len(msg):
                raise DNSParseError("answer data runs past the message")
            if (rtype == TYPE_A and rdlen == 4) or (rtype == TYPE_AAAA and rdlen == 16):
                out.addresses.append((msg[pos : pos + rdlen], ttl))
            pos += rdlen
    except DNSParseError:
        out.answers_malformed = True
    return out
