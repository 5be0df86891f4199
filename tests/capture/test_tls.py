"""ClientHello parsing and its reassembly from TLS records."""

from __future__ import annotations

import pytest
from mitmproxy.tls import ClientHello as MitmClientHello

from monitor.capture import tls
from tests.capture_helpers import client_hello, tls_records


@pytest.mark.parametrize(("sni", "ech", "expected"), [
    ("www.instagram.com", False, ("www.instagram.com", False)),
    ("WWW.Reddit.COM.", False, ("www.reddit.com", False)),
    (None, False, (None, False)),
    ("cloudflare-ech.com", True, ("cloudflare-ech.com", True)),
])
def test_parse_client_hello(sni, ech, expected):
    info = tls.parse_client_hello(client_hello(sni, ech=ech))
    assert (info.server_name, info.encrypted) == expected


def test_agrees_with_mitmproxy():
    message = client_hello("static.xx.fbcdn.net", padding=700)
    assert tls.parse_client_hello(message).server_name == MitmClientHello(message[4:]).sni


def test_message_spanning_records_is_reassembled():
    message = client_hello("www.tiktok.com", padding=3000)
    stream = tls_records(message, record_size=1000)
    assert tls.client_hello_from_records(stream) == message


def test_incomplete_stream_asks_for_more():
    stream = tls_records(client_hello("www.tiktok.com", padding=3000))
    with pytest.raises(tls.NeedMore):
        tls.client_hello_from_records(stream[:1400])


@pytest.mark.parametrize("stream", [
    b"\x17\x03\x03\x00\x10" + bytes(16),  # application data
    b"\x16\x03\x03\x00\x06\x02\x00\x00\x02\x03\x03",  # ServerHello
    b"\x16\x03\x01\x00\x00",  # empty record
])
def test_not_a_client_hello(stream):
    with pytest.raises(tls.TLSParseError):
        tls.client_hello_from_records(stream)


@pytest.mark.parametrize("cut", [5, 40, 45, 80, 90, 100, 110])
def test_truncated_message_raises_parse_error_only(cut):
    message = client_hello("www.snapchat.com")
    assert cut < len(message)
    with pytest.raises(tls.TLSParseError):
        tls.parse_client_hello(message[:cut])
