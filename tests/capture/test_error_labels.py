"""The parse-error label of a frame that raised: what the sensor would have tried on it."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from monitor.capture.error_labels import parser_meant
from tests.capture_helpers import CLIENT4, SERVER4, tcp_frame, udp_frame

ETHERNET = 1


def fragment() -> bytes:
    """The first fragment of a UDP datagram (more fragments to come)."""
    return bytes(Ether() / IP(src=CLIENT4, dst=SERVER4, flags="MF", frag=0) / UDP(dport=443) / Raw(bytes(64)))


@pytest.mark.parametrize(("frame", "label"), [
    (b"", "packet"),
    (b"\x00" * 10, "packet"),
    (fragment(), "fragment"),
    (udp_frame(b"\x00" * 20, dport=53), "dns"),
    (udp_frame(b"\x00" * 20, sport=53, dport=50000), "dns"),
    (udp_frame(b"\x00" * 20, dport=5353), "dns"),
    (udp_frame(b"\x00" * 20, dport=5355), "dns"),
    (udp_frame(b"\x00" * 20, sport=68, dport=67), "dhcp"),
    (udp_frame(b"\x00" * 20, sport=50000, dport=67), "quic"),  # DHCP needs both ends on its ports
    (udp_frame(b"\xc0" + b"\x00" * 20), "quic"),
    (tcp_frame(b"GET / HTTP/1.1\r\n"), "http"),
    (tcp_frame(b"BREW /pot HTTP/1.1\r\n"), "http"),  # any method token and a space
    (tcp_frame(b"\x16\x03\x01\x00\x05hello"), "tls"),
    (tcp_frame(b"\x00\x01\x02\x03"), "tls"),
    (tcp_frame(b"\x00\x0c" + b"\x00" * 12, dport=53), "dns"),
], ids=["empty", "short", "fragment", "dns-to-53", "dns-from-53", "mdns", "llmnr", "dhcp", "udp-67-one-end",
        "quic", "http-get", "http-other-method", "tls", "tcp-binary", "dns-over-tcp"])
def test_label_names_the_parser_the_frame_was_meant_for(frame: bytes, label: str):
    assert parser_meant(ETHERNET, frame) == label
