"""The Prometheus endpoint: loopback by default, optional TLS, basic auth and client certificates.

prometheus-client serves the exposition; this module only adds what a scrape
across the school network needs: TLS (checked in the connection's own thread),
client certificates signed by the trust's CA (mutual TLS, as
deploy/prometheus/scrape.yml's `cert_file` sends), and HTTP basic auth checked
against a file of `user:bcrypt-hash` lines, as the Prometheus exporter-toolkit's
`web.yml` holds them. Older `user:sha256hex` lines still load, with a
deprecation warning naming the file and line. monitor/config/listen.py refuses
the settings that would send a password in the clear or open the endpoint to all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bcrypt
import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app

from monitor.config.values import split_hostport
from monitor.errors import UserError

log = structlog.get_logger("social_monitor.metrics")
BCRYPT_RE = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
VERIFIED_CACHE = 64  # (user, password) pairs whose bcrypt check passed: a scrape every 15 s is not re-hashed


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake here, in the connection's own thread and with a timeout: wrapping the
        listening socket would handshake in the accept loop, where one idle client blocks all.
        With client certificates required, a client without one fails here."""
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


@dataclass(frozen=True)
class Credential:
    """One user's stored password hash: bcrypt, or the deprecated unsalted sha256 hex."""

    scheme: str  # "bcrypt" or "sha256"
    hashed: str

    def matches(self, password: str) -> bool:
        if self.scheme == "bcrypt":
            try:
                return bcrypt.checkpw(password.encode(), self.hashed.encode())
            except ValueError:  # a hash bcrypt cannot read (checked at load) or a password too long
                return False
        return hmac.compare_digest(hashlib.sha256(password.encode()).hexdigest(), self.hashed)


def parse_credential(text: str) -> Credential | None:
    """The hash part of a line; None when it is neither a bcrypt hash nor 64 hex digits."""
    if BCRYPT_RE.match(text):  # checked here: bcrypt's Rust core panics on a malformed hash
        return Credential("bcrypt", text)
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return Credential("sha256", text.lower())
    return None


def load_basic_auth(path: Path) -> dict[str, Credential]:
    """`user:hash` lines (# comments); UserError naming the line of a bad one. A sha256 line loads,
    with one warning naming file and line: move it to bcrypt (`htpasswd -nbB user password`)."""
    users: dict[str, Credential] = {}
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read basic-auth file: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        credential = parse_credential(hashed.strip()) if sep and user else None
        if credential is None:
            raise UserError(f"{path}:{number}: expected 'user:bcrypt-hash' (e.g. from `htpasswd -nbB user "
                            "password`)")
        if credential.scheme == "sha256":
            log.warning("metrics_auth_deprecated", file=str(path), line=number,
                        detail=f"{path}:{number}: unsalted sha256 password hash: replace it with bcrypt")
        users[user] = credential
    return users


def with_basic_auth(app: Callable, users: dict[str, Credential]) -> Callable:
    verified: OrderedDict[tuple[str, str], None] = OrderedDict()
    lock = threading.Lock()

    def allowed(user: str, password: str) -> bool:
        credential = users.get(user)
        if credential is None:
            return False
        key = (user, hashlib.sha256(password.encode()).hexdigest())
        with lock:
            if key in verified:
                verified.move_to_end(key)
                return True
        if not credential.matches(password):
            return False
        with lock:
            verified[key] = None
            while len(verified) > VERIFIED_CACHE:
                verified.popitem(last=False)
        return True

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            if allowed(user, password):
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
        basic_auth: dict[str, Credential] | None = None,
        client_ca: str | None = None,
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
            if client_ca:  # mutual TLS: no client certificate signed by this CA, no handshake
                try:
                    context.load_verify_locations(cafile=client_ca)
                except (OSError, ssl.SSLError) as exc:
                    self.httpd.server_close()
                    raise UserError(f"listen.metrics_tls_client_ca: cannot load {client_ca}: {exc}") from None
                context.verify_mode = ssl.CERT_REQUIRED
            self.httpd.tls = context
        elif client_ca:
            self.httpd.server_close()
            raise UserError("listen.metrics_tls_client_ca: client certificates need metrics_tls_cert and key")
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
