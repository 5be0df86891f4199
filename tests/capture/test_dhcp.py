"""DHCP messages from literal bytes: client MAC, offered address, host name, and what is refused.

The REQUEST and ACK headers and options were generated once with scapy
(`BOOTP(op=1, xid=0x5e1f0a01, chaddr=...) / DHCP(options=[...])`) and pasted
as hex; the 192 zero bytes of the unused sname and file fields are written as
`bytes(192)` rather than 384 zeros.
"""

from __future__ import annotations

import pytest

from monitor.capture.dhcp import DHCPACK, DHCPMessage, DHCPParseError, parse_message

MAC = bytes.fromhex("3c22fb123456")
NO_IP = bytes(4)
OFFERED = bytes([10, 20, 0, 55])
# op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr (16 bytes)
REQUEST_HEADER = ("01 01 06 00 5e1f0a01 0000 0000 00000000 00000000 00000000 00000000"
                  " 3c22fb123456 00000000000000000000")
ACK_HEADER = ("02 01 06 00 5e1f0a01 0000 0000 00000000 0a140037 0a140001 00000000"
              " 3c22fb123456 00000000000000000000")
COOKIE = "63825363"
# message-type request, requested address 10.20.0.55, host name "Staff-Laptop-7", end
REQUEST_OPTIONS = "350103 32040a140037 0c0e53746166662d4c6170746f702d37 ff"
# message-type ack, server id 10.20.0.1, lease time 3600, end
ACK_OPTIONS = "350105 36040a140001 330400000e10 ff"


def message(header: str, options: str, cookie: str = COOKIE) -> bytes:
    return bytes.fromhex(header) + bytes(192) + bytes.fromhex(cookie + options)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (message(REQUEST_HEADER, REQUEST_OPTIONS), DHCPMessage(1, 3, MAC, NO_IP, OFFERED, "staff-laptop-7")),
        (message(ACK_HEADER, ACK_OPTIONS), DHCPMessage(2, DHCPACK, MAC, OFFERED, None, None)),
        (message(REQUEST_HEADER, "00 00 350101 ff"), DHCPMessage(1, 1, MAC, NO_IP, None, None)),
        (message(REQUEST_HEADER, "0c05 70633100 00 ff"), DHCPMessage(1, None, MAC, NO_IP, None, "pc1")),
        (message(REQUEST_HEADER, "0c02 0000 ff"), DHCPMessage(1, None, MAC, NO_IP, None, None)),
        (message(REQUEST_HEADER, "0c00 ff"), DHCPMessage(1, None, MAC, NO_IP, None, None)),
        (message(REQUEST_HEADER, "0c03 70e931 ff"), DHCPMessage(1, None, MAC, NO_IP, None, "p\ufffd1")),
        (message(REQUEST_HEADER, "35020301 ff"), DHCPMessage(1, None, MAC, NO_IP, None, None)),
        (message(REQUEST_HEADER, "3203 0a1400 ff"), DHCPMessage(1, None, MAC, NO_IP, None, None)),
        (message(REQUEST_HEADER, "350103 ff 0c03616263"), DHCPMessage(1, 3, MAC, NO_IP, None, None)),
        (message(REQUEST_HEADER, "350103"), DHCPMessage(1, 3, MAC, NO_IP, None, None)),
        (message(REQUEST_HEADER, ""), DHCPMessage(1, None, MAC, NO_IP, None, None)),
        (message(REQUEST_HEADER.replace("01 01 06", "01 01 00", 1), "ff"),
         DHCPMessage(1, None, b"", NO_IP, None, None)),
    ],
    ids=["request", "ack", "pad-options", "hostname-nul-stripped", "hostname-only-nul", "hostname-empty",
         "hostname-not-ascii", "message-type-wrong-length", "requested-ip-wrong-length",
         "options-after-end-ignored", "no-end-option", "no-options", "no-hardware-address"],
)
def test_parse_message(data, expected):
    assert parse_message(data) == expected


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (message(REQUEST_HEADER, "")[:239], "not a DHCP message"),
        (message(REQUEST_HEADER, "ff", cookie="00000000"), "not a DHCP message"),  # plain BOOTP
        (message(REQUEST_HEADER.replace("01 01 06", "01 01 11", 1), "ff"), "hardware address of 17 bytes"),
        (message(REQUEST_HEADER, "35"), "option header past the message"),
        (message(REQUEST_HEADER, "0c05 6162"), "option 12 past the message"),
    ],
    ids=["shorter-than-bootp", "no-magic-cookie", "hlen-17", "option-without-length", "option-value-cut"],
)
def test_malformed_message_raises(data, error):
    with pytest.raises(DHCPParseError, match=error):
        parse_message(data)
