"""DHCP (RFC 2131/2132): learn which MAC holds which address, passively.

An ACK from a server binds `yiaddr` to the client's hardware address; the
client's own DISCOVER/REQUEST carries its host name (option 12), which we
keep briefly to attach to the binding.
"""

from __future__ import annotations

from dataclasses import dataclass

PORTS = frozenset({67, 68})  # server, client
MAGIC_COOKIE = b"\x63\x82\x53\x63"
OPT_HOSTNAME = 12
OPT_REQUESTED_IP = 50
OPT_MESSAGE_TYPE = 53
OPT_END = 255
OPT_PAD = 0
DHCPACK = 5


class DHCPParseError(ValueError):
    """A BOOTP/DHCP message that breaks its own lengths."""


@dataclass(slots=True)
class DHCPMessage:
    op: int  # 1 request (client), 2 reply (server)
    message_type: int | None
    client_mac: bytes
    your_ip: bytes
    requested_ip: bytes | None
    hostname: str | None


@dataclass(slots=True, frozen=True)
class DHCPBinding:
    """An address the DHCP server gave to a MAC: what the core's device resolution learns."""

    ip: str
    mac: str
    hostname: str | None = None
    at: float | None = None  # capture time of the ACK


def parse_message(data: bytes) -> DHCPMessage:
    if len(data) < 240 or data[236:240] != MAGIC_COOKIE:
        raise DHCPParseError("not a DHCP message")
    hlen = data[2]
    if hlen > 16:
        raise DHCPParseError(f"hardware address of {hlen} bytes")
    msg = DHCPMessage(data[0], None, data[28 : 28 + hlen], data[16:20], None, None)
    pos = 240
    n = len(data)
    while pos < n:
        code = data[pos]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            pos += 1
            continue
        if pos + 2 > n:
            raise DHCPParseError("option header past the message")
        length = data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        if len(value) != length:
            raise DHCPParseError(f"option {code} past the message")
        if code == OPT_MESSAGE_TYPE and length == 1:
            msg.message_type = value[0]
        elif code == OPT_HOSTNAME and length:
            msg.hostname = value.decode("ascii", "replace").strip("\x00").lower() or None
        elif code == OPT_REQUESTED_IP and length == 4:
            msg.requested_ip = value
        pos += 2 + length
    return msg
