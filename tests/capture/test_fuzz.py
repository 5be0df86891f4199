"""Random and mutated packets: parsers raise only their own parse errors, the sensor never raises."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.capture import dhcp, dns, http, quic, tls
from monitor.capture.packets import decode
from monitor.capture.sensor import Sensor
from tests.capture_helpers import client_hello, crypto_frames, quic_initial, tcp_frame, tls_records, udp_frame

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = [
    tcp_frame(tls_records(client_hello("www.facebook.com", ech=True))),
    tcp_frame(b"GET / HTTP/1.1\r\nHost: www.reddit.com\r\n\r\n", dport=80),
    udp_frame(bytes.fromhex("abcd0100000100000000000003777777066661636562"
                            "6f6f6b03636f6d0000010001"), dport=53),
    udp_frame(quic_initial(quic.VERSION_1, b"\x01\x02\x03\x04\x05\x06\x07\x08",
                           crypto_frames([(0, client_hello("www.youtube.com"))]))),
    udp_frame(b"\x0d" + bytes(8) + b"Q043" + b"\x01" + bytes(12)
              + b"CHLO\x01\x00\x00\x00SNI\x00\x04\x00\x00\x00x.yt"),
    tcp_frame(tls_records(client_hello("www.tiktok.com", padding=3000))[:1400], v6=True),
]
# One sensor for all examples: state left by one packet (a pending stream, a QUIC
# connection) meets the next, which is what a capture does too.
SHARED_SENSOR = Sensor(lambda obs: None, strict=True)


@FUZZ
@given(frame=st.binary(max_size=300), linktype=st.sampled_from([0, 1, 101, 113, 228, 229, 276]))
def test_random_frames(frame, linktype):
    decode(linktype, frame)
    SHARED_SENSOR.feed(0.0, linktype, frame)


@FUZZ
@given(seed=st.sampled_from(SEEDS), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)),
                                                   max_size=8), cut=st.integers(0, 4000))
def test_mutated_packets_never_raise(seed, flips, cut):
    frame = bytearray(seed[: max(cut, 14)])
    for pos, value in flips:
        if pos < len(frame):
            frame[pos] = value
    out = []
    SHARED_SENSOR.on_observation = out.append
    SHARED_SENSOR.feed(0.0, 1, bytes(frame))
    for obs in out:  # a name, unless the flow hides its destination (a hello with ECH and no SNI, a VPN)
        assert isinstance(obs.hostname, str) and (obs.hostname or obs.obscured_by)


@pytest.mark.parametrize(("parse", "error"), [
    (dns.parse_message, dns.DNSParseError),
    (tls.parse_client_hello, tls.TLSParseError),
    (http.request_host, http.HTTPParseError),
    (dhcp.parse_message, dhcp.DHCPParseError),
    (quic.chlo_server_name, quic.QUICParseError),
    (quic.parse_long_headers, quic.QUICParseError),
    (quic.crypto_frames, quic.QUICParseError),
])
def test_parsers_raise_only_their_own_error(parse, error):
    @FUZZ
    @given(data=st.binary(max_size=600))
    def run(data):
        with contextlib.suppress(error):
            parse(data)

    run()


@FUZZ
@given(data=st.binary(max_size=600))
def test_record_reassembly_raises_only_tls_errors(data):
    with contextlib.suppress(tls.TLSParseError, tls.NeedMore):
        tls.client_hello_from_records(b"\x16\x03\x01" + data)
