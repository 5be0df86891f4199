"""The Prometheus endpoint: loopback by default, optional TLS and basic auth.

prometheus-client serves the exposition; this module only adds what a scrape
across the school network needs: TLS (the client's own `_get_ssl_ctx`
through `start_wsgi_server`'s options) and HTTP basic auth checked against a
file of `user:sha256(password)` lines, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from monitor.config.models import split_hostport
from monitor.errors import UserError


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake here, in the connection's own thread and with a timeout: wrapping the
        listening socket would handshake in the accept loop, where one idle client blocks all."""
        if self.tls is not None:
            request.settimeout(10)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                request.close()
                return
        super().finish_request(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every 15 s are not events worth a log line."""


def load_basic_auth(path: Path) -> dict[str, str]:
    users: dict[str, str] = {}
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read basic-auth file: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, digest = line.partition(":")
        if not sep or len(digest) != 64:
            raise UserError(f"{path}:{number}: expected 'user:sha256hex'")
        users[user] = digest.lower()
    return users


def with_basic_auth(app: Callable, users: dict[str, str]) -> Callable:
    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            expected = users.get(user)
            digest = hashlib.sha256(password.encode()).hexdigest()
            if expected is not None and hmac.compare_digest(digest, expected):
                return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="social-monitor"')])
        return [b"unauthorized\n"]

    return guarded


class MetricsServer:
    def __init__(
        self,
        listen: str,
        registry: CollectorRegistry,
        certfile: str | None = None,
        keyfile: str | None = None,
        basic_auth: dict[str, str] | None = None,
    ):
        host, port = split_hostport(listen, allow_zero=True)
        app = make_wsgi_app(registry)
        if basic_auth:
            app = with_basic_auth(app, basic_auth)
        server_class: type[_Server] = _Server6 if ":" in host else _Server
        try:
            self.httpd = make_server(host, port, app, server_class, handler_class=_QuietHandler)
        except OSError as exc:
            raise UserError(f"listen.metrics: cannot listen on {listen}: {exc.strerror or exc}") from None
        if certfile and keyfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(certfile, keyfile)
            except (OSError, ssl.SSLError) as exc:
                self.httpd.server_close()
                raise UserError(f"listen.metrics_tls_cert/key: cannot load {certfile}: {exc}") from None
            self.httpd.tls = context
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
