"""HTTP/1.x request heads from literal bytes: which host a request is for, and when to wait for more."""

from __future__ import annotations

import pytest

from monitor.capture.http import (
    METHOD_PREFIXES,
    HeadScanner,
    HTTPParseError,
    host_from_authority,
    request_host,
    request_start,
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: www.facebook.com\r\nAccept: */*\r\n\r\n", ("www.facebook.com", True)),
        (b"GET / HTTP/1.1\r\nHost: www.facebook.com:8080\r\n\r\n", ("www.facebook.com", True)),
        (b"GET / HTTP/1.1\r\nHOST:WWW.Reddit.COM.\r\n\r\n", ("www.reddit.com", True)),
        (b"GET / HTTP/1.1\r\nhost: [2001:db8::1]:8080\r\n\r\n", ("2001:db8::1", True)),
        (b"GET / HTTP/1.1\nHost: lf.example\n\n", ("lf.example", True)),
        (b"POST /upload?id=7 HTTP/1.1\r\nContent-Length: 3\r\nHost: www.tiktok.com\r\n\r\nabc",
         ("www.tiktok.com", True)),
        # absolute form wins over the Host header (RFC 9112 section 3.2.2)
        (b"GET http://Example.COM:8080/a?b HTTP/1.1\r\nHost: other.example\r\n\r\n", ("example.com", True)),
        (b"GET https://www.youtube.com?x=1 HTTP/1.1\r\n", ("www.youtube.com", True)),
        (b"CONNECT www.instagram.com:443 HTTP/1.1\r\n", ("www.instagram.com", True)),
        (b"CONNECT user:pw@www.instagram.com:443 HTTP/1.1\r\n\r\n", ("www.instagram.com", True)),
        (b"CONNECT [2a03:2880::1]:443 HTTP/1.1\r\n\r\n", ("2a03:2880::1", True)),
        (b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", (None, True)),  # no Host: decided, no name
        (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", (None, True)),
        (b"GET / HTTP/1.1\r\nAccept: */*\r\n", (None, False)),  # the Host may come next
        (b"GET / HTTP/1.1\r\nHost: www.faceb", (None, False)),  # the value may continue
        (b"GET /index.html HTT", (None, False)),  # not even a request line yet
        (b"GET /" + b"a" * 9000, (None, True)),  # 8 KiB with no line end: given up on
        (b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 8200 + b"\r\nHost: late.example\r\n\r\n", (None, True)),
    ],
    ids=["host", "host-port", "case-and-dot", "ipv6-host", "lf-only", "host-after-headers",
         "absolute-form", "absolute-https-query", "connect", "connect-userinfo", "connect-ipv6",
         "no-host", "empty-host", "head-incomplete", "host-value-cut", "request-line-cut",
         "no-line-end-8k", "host-beyond-8k"],
)
def test_request_host(data, expected):
    assert request_host(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"GET /\r\nHost: a\r\n\r\n",  # two parts
        b"GET / HTTP/1.1 extra\r\n\r\n",  # four parts
        b"GET / FTP/1.0\r\n\r\n",  # not HTTP/
        b"GET\x00\x01\x02\x03\n",  # binary that starts like a method
        b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n",  # "(" is not a token character
        b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",  # a response
    ],
    ids=["two-parts", "four-parts", "not-http-version", "binary", "method-not-a-token", "response"],
)
def test_not_a_request_line_raises(data):
    with pytest.raises(HTTPParseError):
        request_host(data)


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("www.example.com", "www.example.com"),
        ("  WWW.Example.com:443 ", "www.example.com"),
        ("example.com:http", "example.com:http"),  # a non-numeric port is left alone
        ("user@example.com", "example.com"),
        ("a@b@example.com:80", "example.com"),
        ("[::1]:80", "::1"),
        ("[::1", ""),  # an unclosed bracket has no host
        ("example.com.", "example.com"),
        ("", ""),
    ],
    ids=["plain", "spaces-case-port", "named-port", "userinfo", "userinfo-with-at", "ipv6", "unclosed",
         "trailing-dot", "empty"],
)
def test_host_from_authority(authority, host):
    assert host_from_authority(authority) == host


@pytest.mark.parametrize(
    ("first_bytes", "is_prefix"),
    [(b"GET ", True), (b"POST", True), (b"CONN", True), (b"M-SE", True), (b"\x16\x03\x01\x02", False),
     (b"get ", False), (b"HTTP", False)],
    ids=["get", "post", "connect", "ssdp", "tls", "lower-case", "response"],
)
def test_method_prefixes(first_bytes, is_prefix):
    assert (first_bytes in METHOD_PREFIXES) is is_prefix


@pytest.mark.parametrize(
    ("data", "host"),
    [
        (b"PROPFIND /dav/ HTTP/1.1\r\nHost: files.example.net\r\nDepth: 1\r\n\r\n", "files.example.net"),
        (b"MKCOL /dav/new/ HTTP/1.1\r\nHost: files.example.net\r\n\r\n", "files.example.net"),
        (b"REPORT /cal/ HTTP/1.1\r\nHost: cal.example.net\r\n\r\n", "cal.example.net"),
        (b"BREW /pot HTTP/1.1\r\nHost: coffee.example\r\n\r\n", "coffee.example"),  # any token
        (b"x-custom_1 / HTTP/1.1\r\nHost: odd.example\r\n\r\n", "odd.example"),
        (b"GET HTTP/1.1\r\nHost: nouri.example\r\n\r\n", "nouri.example"),  # no target at all
        (b"GET  HTTP/1.1\r\nHost: empty.example\r\n\r\n", "empty.example"),  # an empty target
    ],
    ids=["propfind", "mkcol", "report", "unregistered-method", "lower-case-token", "no-uri", "empty-uri"],
)
def test_request_with_any_method_or_no_uri(data, host):
    assert request_host(data) == (host, True)
    assert request_start(data, 0, len(data))


@pytest.mark.parametrize(
    ("data", "starts"),
    [
        (b"PROPFIND / HTTP/1.1", True),
        (b"UNSUBSCRIBE * HTTP/1.1", True),
        (b"A / HTTP/1.1", True),
        (b"\x17\x03\x03\x00\x20", False),  # TLS application data
        (b"HTTP/1.1 200 OK", False),  # "/" is not a token character
        (b" GET / HTTP/1.1", False),
        (b"GET", False),  # no space yet
        (b"A" * 40 + b" / HTTP/1.1", False),  # longer than any method
    ],
    ids=["propfind", "unsubscribe", "one-letter", "tls-data", "response", "leading-space", "no-space",
         "too-long"],
)
def test_request_start(data, starts):
    assert request_start(data, 0, len(data)) is starts


@pytest.mark.parametrize(
    ("first_bytes", "starts"),
    [
        (b"GET ", True),  # a common method, by its four-byte prefix
        (bytearray(b"PROPFIND /"), True),  # a reassembled stream is a bytearray
        (b"BREW /pot", True),  # any token and a space
        (b"BREW", None),  # all token so far: the space may come next
        (b"B" * 32, None),  # as long as the longest method
        (b"B" * 33, False),  # longer than any method, still no space
        (b"HTTP/1.1 200", False),  # a response: "/" ends the token without a space
        (b"\x00\x01\x02\x03", False),  # binary
        (b" GET", False),  # a space first: no method at all
    ],
    ids=["common", "bytearray", "any-token", "token-under-way", "longest-under-way", "too-long",
         "response", "binary", "leading-space"],
)
def test_head_scanner_tells_a_request_from_its_first_bytes(first_bytes, starts):
    assert HeadScanner.starts(first_bytes) is starts
