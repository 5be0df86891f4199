"""DNS messages from literal bytes: the names asked, the addresses answered, and what is refused.

The well-formed messages were generated once with scapy (`bytes(DNS(...))`,
`.compress()` for the response) and pasted as hex; the malformed ones are
those messages cut or edited by hand, as the comment on each row says.
"""

from __future__ import annotations

import ipaddress

import pytest

from monitor.capture.dns import DNSMessage, DNSParseError, parse_message, read_name

# DNS(id=0x1234, rd=1, qd=DNSQR(qname="www.instagram.com", qtype="A"))
QUERY = "1234 0100 0001 0000 0000 0000 03777777 09696e7374616772616d 03636f6d 00 0001 0001"
# DNS(id=0x1234, qr=1, rd=1, ra=1, qd=www.tiktok.com, an=[CNAME www.tiktok.com.edgekey.net ttl 300,
# A 23.45.67.89 ttl 60, AAAA 2001:db8::89 ttl 120]).compress(): answer names are pointers
RESPONSE = (
    "1234 8180 0001 0003 0000 0000 037777770674696b746f6b03636f6d00 0001 0001"
    " c00c 0005 0001 0000012c 001c 037777770674696b746f6b03636f6d07656467656b6579036e657400"
    " c02c 0001 0001 0000003c 0004 172d4359"
    " c02c 001c 0001 00000078 0010 20010db8000000000000000000000089"
)


def b(text: str) -> bytes:
    return bytes.fromhex(text)


def v4(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (QUERY, DNSMessage(False, ["www.instagram.com"])),
        # DNS(qd=DNSQR(qname="WWW.Reddit.COM", qtype="AAAA")): names are lower-cased
        ("1234 0100 0001 0000 0000 0000 03575757065265646469740343 4f4d00 001c 0001",
         DNSMessage(False, ["www.reddit.com"])),
        # mDNS question (port 5353 uses the same format)
        ("0000 0000 0001 0000 0000 0000 0b5f676f6f676c6563617374045f746370056c6f63616c00 000c 0001",
         DNSMessage(False, ["_googlecast._tcp.local"])),
        (RESPONSE, DNSMessage(True, ["www.tiktok.com"],
                              [(v4("23.45.67.89"), 60), (v4("2001:db8::89"), 120)])),
        # the response with ancount cut to 1: only the CNAME is read, no address
        (RESPONSE.replace("0001 0003", "0001 0001", 1), DNSMessage(True, ["www.tiktok.com"])),
        # the response without questions (qdcount 0): answers are not read
        ("1234 8180 0000 0001 0000 0000 03777777 00 0001 0001 0000003c 0004 172d4359",
         DNSMessage(True, [])),
        # opcode NOTIFY (4): no question worth reading, even a malformed one
        ("0001 2000 0001 0000 0000 0000 ff", DNSMessage(False, [])),
        # a question for the root name (empty) is not a name
        ("0001 0100 0001 0000 0000 0000 00 0002 0001", DNSMessage(False, [])),
        # an A record with 5 bytes of data is skipped, not taken as an address
        ("1234 8180 0001 0001 0000 0000 0161 00 0001 0001 c00c 0001 0001 0000003c 0005 0102030405",
         DNSMessage(True, ["a"])),
        # the last AAAA answer cut short: the question and the A answer are kept, answers marked
        (RESPONSE[:-8], DNSMessage(True, ["www.tiktok.com"], [(v4("23.45.67.89"), 60)],
                                   answers_malformed=True)),
        # an answer header cut after its name: marked, the question kept
        ("1234 8180 0001 0001 0000 0000 0161 00 0001 0001 c00c 0001",
         DNSMessage(True, ["a"], answers_malformed=True)),
    ],
    ids=["query", "lower-cased", "mdns", "response-a-aaaa", "ancount-limits", "no-question",
         "opcode-notify", "root-name", "a-wrong-length", "truncated-rdata", "truncated-answer-header"],
)
def test_parse_message(message, expected):
    assert parse_message(b(message)) == expected


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("1234 0100 0001 0000 0000 00", "shorter than a DNS header"),
        ("1234 0100 0009 0000 0000 0000", "9 questions"),
        # the name "a" without its type and class
        ("1234 0100 0001 0000 0000 0000 0161 00", "truncated question"),
        # the first label says 9 bytes, 3 follow
        ("1234 0100 0001 0000 0000 0000 09 777777", "label runs past the message"),
        # the name never ends
        ("1234 0100 0001 0000 0000 0000 03 777777", "name runs past the message"),
        # a pointer to itself (offset 12)
        ("1234 0100 0001 0000 0000 0000 c00c", "compression loop"),
        # a pointer's second byte missing
        ("1234 0100 0001 0000 0000 0000 c0", "truncated compression pointer"),
        # label type 01 (extended label, RFC 6891 deprecated)
        ("1234 0100 0001 0000 0000 0000 41 00 0001 0001", "unsupported label type"),
        # five 63-byte labels: 320 octets
        ("1234 0100 0001 0000 0000 0000" + ("3f" + "61" * 63) * 5 + "00 0001 0001",
         "name longer than 255 octets"),
    ],
    ids=["short-header", "too-many-questions", "truncated-question", "label-past-end", "unterminated-name",
         "pointer-loop", "truncated-pointer", "label-type", "name-too-long"],
)
def test_malformed_message_raises(message, error):
    with pytest.raises(DNSParseError, match=error):
        parse_message(b(message))


@pytest.mark.parametrize(
    ("message", "pos", "expected"),
    [
        (RESPONSE, 12, ("www.tiktok.com", 28)),
        # the CNAME's owner name is a pointer: the offset after it is the pointer's end
        (RESPONSE, 32, ("www.tiktok.com", 34)),
        # the A record's owner points into the CNAME's data
        (RESPONSE, 72, ("www.tiktok.com.edgekey.net", 74)),
        # non-ASCII bytes in a label are kept visibly, never decoded as something else
        ("03 77ff77 00", 0, ("w\\xffw", 5)),
        # escapes stay per byte and lower-cased with the rest, across labels
        ("02 41c3 03 C4 42 e9 00", 0, ("a\\xc3.\\xc4b\\xe9", 8)),
        ("01 2e 01 5c 00", 0, ("..\\", 5)),  # a dot or backslash inside a label is kept as it is
    ],
    ids=["plain", "pointer", "pointer-into-rdata", "non-ascii", "non-ascii-labels", "dot-in-label"],
)
def test_read_name(message, pos, expected):
    assert read_name(b(message), pos) == expected
