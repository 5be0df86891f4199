"""mitmproxy's log lines lose every path and query; a real proxy fed bad requests never prints them."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.proxy.redact import RedactPaths, install, redact
from tests.proxy_helpers import TEST_CONFIG

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("127.0.0.1:60710: Bad HTTP request line: b'GET /s3cret?token=abc HTTP/1.1'",
         "127.0.0.1:60710: Bad HTTP request line: <redacted>"),
        ('Bad HTTP request line: b"GET /it\'s?x=1 HTTP/1.1"', "Bad HTTP request line: <redacted>"),
        ("Bad request: b'CONNECT host:443?q HTTP/1.1'", "Bad request: <redacted>"),
        ("GET http://www.tiktok.com/@user/video/1?lang=en HTTP/1.1",
         "GET http://www.tiktok.com/<redacted> HTTP/1.1"),
        ("redirect to https://example.org?next=/inbox", "redirect to https://example.org/<redacted>"),
        ("request for /private/path?x=1 failed", "request for <redacted> failed"),
        ("host example.org?q=secret", "host example.org<redacted>"),
        ("server connect www.tiktok.com:443 (1.2.3.4:443)",
         "server connect www.tiktok.com:443 (1.2.3.4:443)"),
        ("HTTP/1.1 from 10.0.0.0/8 and [::1]:8080", "HTTP/1.1 from 10.0.0.0/8 and [::1]:8080"),
    ],
    ids=["bad request line", "quote inside", "CONNECT", "URL", "URL with bare query", "bare path",
         "query after host", "host and port kept", "protocol, CIDR, IPv6 kept"],
)
def test_redact(line, shown):
    assert redact(line) == shown


def test_filter_redacts_arguments_and_tracebacks():
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    logger = logging.getLogger("test.redact")
    logger.propagate = False
    handler = Keep()
    logger.addHandler(handler)
    try:
        install(logger)
        install(logger)  # once is enough: no second filter
        assert sum(isinstance(f, RedactPaths) for f in handler.filters) == 1
        logger.warning("bad line %s", b"GET /a?secret=1 HTTP/1.1")
        try:
            raise ValueError("cannot parse /b?secret=2")
        except ValueError:
            logger.exception("crashed on %s", "http://h.example/c?secret=3")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    assert "secret" not in text and "bad line <redacted>" in text and "ValueError: cannot parse" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BAD_REQUESTS = [
    b"GARBAGE /SECRETPATH1?q=SECRETQ1 HTTP/9\r\n\r\n",
    b"GET /SECRETPATH2?token=SECRETQ2 HTTP/1.1\r\nHost: \x01bad\r\n\r\n",
    b"CONNECT www.tiktok.invalid:443?SECRETQ3 HTTP/1.1\r\n\r\n",
    b"GET http://www.tiktok.invalid/SECRETPATH4?q=SECRETQ4 HTTP/1.1\r\nHost: www.tiktok.invalid\r\n\r\n",
]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("extra", "client_lines"),
    [([], False), (["--", "-v"], True)],
    ids=["as recommended (quiet)", "a user asking for debug lines (-v)"],
)
def test_proxy_never_prints_a_path_or_query(tmp_path, extra, client_lines):
    """`social-monitor proxy`, as docs/proxy.md recommends, fed bad requests carrying secrets."""
    folder = tmp_path / "trust"
    shutil.copytree(TEST_CONFIG.parent, folder)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "proxy", "--config", str(folder / "config.yaml"), *extra,
         *([] if extra else ["--"]), "--listen-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        answers = []
        for payload in BAD_REQUESTS:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(payload)
                answers.append(s.recv(64))
        time.sleep(1)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert all(a.startswith(b"HTTP/1.1 4") or a.startswith(b"HTTP/1.1 5") for a in answers), answers
    assert "SECRET" not in output, output
    assert "Traceback" not in output
    # quiet: no line per client connection, so no client address either
    assert ("client connect" in output) is client_lines, output
