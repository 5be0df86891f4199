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


# Literal ClientHello bodies, written by hand field by field; `hello` adds only the 4-byte handshake
# header (type 1 and the body's length). HEAD: version 3.3, a zero random, no session id, one cipher
# suite (TLS_AES_128_GCM_SHA256), the null compression method.
HEAD = "0303" + "00" * 32 + "00" + "0002 1301" + "01 00"
SNI_A_COM = "0000 000a 0008 00 0005 612e636f6d"  # server_name: host_name "a.com"


def hello(body: str, handshake_type: str = "01") -> bytes:
    data = bytes.fromhex(body)
    return bytes.fromhex(handshake_type) + len(data).to_bytes(3, "big") + data


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (HEAD + "000e" + SNI_A_COM, ("a.com", False)),
        (HEAD + "000f 0000 000b 0009 00 0006 412e434f4d2e", ("a.com", False)),  # "A.COM." normalised
        (HEAD, (None, False)),  # no extensions at all
        (HEAD + "0005 fe0d 0001 00", (None, True)),  # ECH, outer hello
        (HEAD + "0005 fe0d 0001 01", (None, False)),  # ECH, inner hello: not hiding anything here
        (HEAD + "0004 ffce 0000", (None, True)),  # the older ESNI extension
        (HEAD + "0013" + SNI_A_COM + "fe0d 0001 00", ("a.com", True)),  # the visible name is the outer one
        (HEAD + "000e 0000 000a 0008 01 0005 612e636f6d", (None, False)),  # a name type other than host_name
        (HEAD + "000e 0000 000a 0008 00 0005 2e2e2e2e2e", (None, False)),  # only dots: no name
        (HEAD + "0008 0015 0004 00000000", (None, False)),  # padding only
    ],
    ids=["sni", "sni-normalised", "no-extensions", "ech-outer", "ech-inner", "esni", "sni-and-ech",
         "other-name-type", "dots-only", "padding-only"],
)
def test_parse_client_hello_bytes(body, expected):
    info = tls.parse_client_hello(hello(body))
    assert (info.server_name, info.encrypted) == expected


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (hello(HEAD + "000e" + SNI_A_COM, handshake_type="02"), "too short for a ClientHello"),
        (hello("0303" + "00" * 32 + "20" + "000000"), "truncated before cipher suites"),
        (hello("0303" + "00" * 32 + "00" + "0004 1301"), "truncated before compression methods"),
        (hello(HEAD + "00"), "truncated before extensions"),
        (hello(HEAD + "00ff" + SNI_A_COM), "extensions run past the message"),
        (hello(HEAD + "0004 0000 0010"), "extension runs past the extensions"),
        (hello(HEAD + "0004 0000 0000"), "empty server_name extension"),
        (hello(HEAD + "0006 0000 0002 0009"), "server_name list runs past the extension"),
        (hello(HEAD + "000e 0000 000a 0008 00 0009 612e636f6d"), "server name runs past the list"),
        (hello(HEAD + "000e 0000 000a 0008 00 0005 612eff6f6d"), "server name is not ASCII"),
    ],
    ids=["server-hello", "session-id-cut", "cipher-suites-cut", "one-byte-of-extensions", "extensions-long",
         "extension-long", "empty-sni", "sni-list-long", "sni-name-long", "sni-not-ascii"],
)
def test_malformed_client_hello_bytes_raise(message, error):
    with pytest.raises(tls.TLSParseError, match=error):
        tls.parse_client_hello(message)


SMALL_HELLO = hello(HEAD + "000e" + SNI_A_COM)  # 61 bytes


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"\x16\x03\x01\x00\x3d" + SMALL_HELLO, SMALL_HELLO),
        (b"\x16\x03\x01\x00\x14" + SMALL_HELLO[:20] + b"\x16\x03\x01\x00\x29" + SMALL_HELLO[20:],
         SMALL_HELLO),
        (b"\x16\x03\x01\x00\x3d" + SMALL_HELLO + b"\x17\x03\x03", SMALL_HELLO),  # what follows is not read
        (b"\x16\x03\x01\x00\x02\x01\x00" + b"\x16\x03\x01\x00\x3b" + SMALL_HELLO[2:], SMALL_HELLO),
    ],
    ids=["one-record", "two-records", "trailing-bytes", "header-split-across-records"],
)
def test_client_hello_from_record_bytes(stream, expected):
    assert tls.client_hello_from_records(stream) == expected


@pytest.mark.parametrize(
    ("stream", "outcome"),
    [
        (b"\x16\x03\x01\x00", tls.NeedMore),  # not even a record header
        (b"\x16\x03\x01\x00\x3d" + SMALL_HELLO[:30], tls.NeedMore),  # the record is cut
        (b"\x16\x03\x01\x00\x14" + SMALL_HELLO[:20], tls.NeedMore),  # the next record has not come
        (b"\x17\x03\x03\x00\x3d" + SMALL_HELLO, tls.TLSParseError),  # application data
        (b"\x16\x02\x00\x00\x3d" + SMALL_HELLO, tls.TLSParseError),  # SSL 2 record version
        (b"\x16\x03\x01\x48\x01" + SMALL_HELLO, tls.TLSParseError),  # record longer than 18432
        (b"\x16\x03\x01\x00\x04\x01\x01\x00\x01", tls.TLSParseError),  # ClientHello claims 65537 bytes
    ],
    ids=["short-header", "record-cut", "next-record-missing", "not-handshake", "record-version",
         "record-too-long", "hello-too-long"],
)
def test_client_hello_from_record_bytes_refuses_or_waits(stream, outcome):
    with pytest.raises(outcome):
        tls.client_hello_from_records(stream)


@pytest.mark.parametrize(
    ("data", "looks"),
    [(b"\x16\x03\x01\x00\x3d\x01", True), (b"\x16\x03\x03\x00\x3d\x01", True),
     (b"\x16\x03\x01\x00\x3d\x02", False), (b"\x16\x03\x01\x00\x3d", False),
     (b"\x17\x03\x01\x00\x3d\x01", False)],
    ids=["tls1.0-record", "tls1.2-record", "server-hello", "too-short", "application-data"],
)
def test_looks_like_client_hello(data, looks):
    assert tls.looks_like_client_hello(data) is looks
