"""A name read in a decoded frame becomes an observation with the client's end first."""

from __future__ import annotations

import pytest

from monitor.capture.emit import observation_key, observation_of
from monitor.capture.flows import flow_key
from monitor.capture.packets import decode
from tests.capture_helpers import CLIENT4, SERVER4, tcp_frame, udp_frame

ETHERNET = 1
SRC_MAC, DST_MAC = "00:11:22:33:44:55", "66:77:88:99:aa:bb"  # tcp_frame's Ether src, dst (reversed or not)


def decoded(frame: bytes) -> tuple:
    d = decode(ETHERNET, frame)
    assert d is not None
    return d


@pytest.mark.parametrize(("frame", "from_client", "client", "server", "cport", "sport", "mac"), [
    (tcp_frame(b"x"), True, CLIENT4, SERVER4, 50000, 443, SRC_MAC),
    # a packet from the server: its destination is the client, and the client's MAC its Ether dst
    (tcp_frame(b"x", reverse=True), False, CLIENT4, SERVER4, 50000, 443, DST_MAC),
    # the same packet said to come from the client: its source end and Ether src are the client's
    (tcp_frame(b"x", reverse=True), True, SERVER4, CLIENT4, 443, 50000, SRC_MAC),
], ids=["client-sent", "server-sent", "reply-taken-as-client"])
def test_client_end_and_mac_follow_who_sent_it(frame, from_client, client, server, cport, sport, mac):
    obs = observation_of(1.0, frame, decoded(frame), from_client, "tcp", "tls", "example.org")
    assert (obs.client_ip, obs.server_ip, obs.client_port, obs.server_port, obs.client_mac) == \
        (client, server, cport, sport, mac)


@pytest.mark.parametrize(("obscured_by", "obscured", "expected"), [
    (None, False, False),
    (None, True, True),  # an encrypted ClientHello
    ("vpn", False, True),  # a bypass kind is always obscured
])
def test_obscured_when_encrypted_or_a_bypass(obscured_by, obscured, expected):
    frame = udp_frame(b"x" * 8)
    obs = observation_of(2.0, frame, decoded(frame), True, "udp", "quic", "", obscured_by=obscured_by,
                         obscured=obscured)
    assert (obs.obscured, obs.obscured_by) == (expected, obscured_by)


@pytest.mark.parametrize(("field", "kwargs", "value"), [
    ("attribution", {}, "direct"),
    ("attribution", {"attribution": "dns-answer"}, "dns-answer"),
    ("hostname", {}, "example.org"),
    ("timestamp", {}, 3.5),
    ("protocol", {}, "tls"),
    ("transport", {}, "tcp"),
])
def test_fields_carried_over(field, kwargs, value):
    frame = tcp_frame(b"x")
    obs = observation_of(3.5, frame, decoded(frame), True, "tcp", "tls", "example.org", **kwargs)
    assert getattr(obs, field) == value


def test_no_mac_without_a_link_layer():
    frame = tcp_frame(b"x")
    obs = observation_of(1.0, b"", decoded(frame), True, "tcp", "tls", "example.org")
    assert obs.client_mac is None


@pytest.mark.parametrize(("protocol", "name", "with_name"), [
    ("dns", "a.example", True),  # a DNS name lives by its own queries
    ("tls", "a.example", False),
    ("quic", "a.example", False),
])
def test_key_is_the_flow_and_for_dns_the_name(protocol, name, with_name):
    d = decoded(udp_frame(b"x" * 8))
    flow = flow_key(d[0], d[1], d[3], d[2], d[4])
    assert observation_key(d, protocol, name) == ((*flow, name) if with_name else flow)


def test_key_is_the_same_from_either_end():
    there, back = decoded(tcp_frame(b"x")), decoded(tcp_frame(b"x", reverse=True))
    assert observation_key(there, "tls", "a") == observation_key(back, "tls", "a")


@pytest.mark.parametrize("address", [bytes([10, 0, 0, 1]), bytes([192, 0, 2, 255]), bytes(16),
                                     bytes.fromhex("20010db8000000000000000000000001"),
                                     bytes.fromhex("00000000000000000000ffff0a000001")])
def test_address_text_is_packed_ip_text_every_time(address):
    from monitor.capture import emit
    from monitor.capture.packets import packed_ip_text

    assert emit._ip_text(address) == emit._ip_text(address) == packed_ip_text(address)


@pytest.mark.parametrize("addresses", [10, 1000, 70_000])
def test_the_text_memos_stay_within_their_cap(addresses):
    from monitor.capture import emit

    for i in range(addresses):
        emit._ip_text(i.to_bytes(4, "big"))
        emit._mac_text(i.to_bytes(6, "big"))
    for memo in (emit._ip_text, emit._mac_text):
        assert memo.cache_info().currsize <= emit._TEXT_CAP == memo.cache_info().maxsize
    assert emit._ip_text(bytes([10, 0, 0, 1])) == "10.0.0.1"
