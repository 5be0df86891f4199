"""Shared helpers for the proxy addon tests: real ClientHello bytes, the addon module, a test config."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mitmproxy import tls

ROOT = Path(__file__).resolve().parent.parent
ADDON_PATH = ROOT / "addons" / "social_monitor.py"
REDIRECT_PATH = ROOT / "tests" / "proxy_redirect_addon.py"
ORIGIN_HOSTS = ["www.tiktok.com", "www.example.org"]
TEST_CONFIG = Path(__file__).resolve().parent / "data" / "proxy" / "config.yaml"


def client_hello_record(sni: str | None) -> bytes:
    """The first TLS record a real OpenSSL client sends (a ClientHello), for `sni` or none."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def client_hello(sni: str | None) -> tls.ClientHello:
    """A parsed mitmproxy ClientHello from real OpenSSL bytes (record and handshake headers stripped)."""
    record = client_hello_record(sni)
    assert record[0] == 0x16 and record[5] == 0x01, "not a handshake record holding a ClientHello"
    return tls.ClientHello(record[9:])


def make_ca_and_leaf(hostnames: list[str], directory: Path, client: bool = False) -> tuple[Path, Path, Path]:
    """A throw-away CA and a leaf certificate for `hostnames`: (ca.pem, leaf.pem, leaf.key).
    `client`: the leaf is a client certificate (for mutual TLS) instead of a server's."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "social-monitor test origin CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client
                                              else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, leaf_pem, key_pem = directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaf_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_pem, leaf_pem, key_pem


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, proc=None) -> None:
    """Poll until something listens on 127.0.0.1:port (bounded); fail early if `proc` exits."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Hello(BaseHTTPRequestHandler):
    """A local origin: answers every GET with the Host it was asked for."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real origin does

    def do_GET(self) -> None:
        body = f"hello from {self.headers.get('Host', '?')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@dataclass
class Origins:
    http_port: int
    https_port: int
    ca: Path

    def env(self) -> dict[str, str]:
        """What tests/proxy_redirect_addon.py reads to send upstream connections here."""
        return {"SM_TEST_HTTP_PORT": str(self.http_port), "SM_TEST_HTTPS_PORT": str(self.https_port)}


@contextlib.contextmanager
def serve_origins(certs: Path) -> Iterator[Origins]:
    """A plain HTTP and an HTTPS origin on loopback; the HTTPS one's CA (for ORIGIN_HOSTS) in `certs`."""
    ca, leaf, key = make_ca_and_leaf(ORIGIN_HOSTS, certs)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    secure = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_context.load_cert_chain(leaf, key)
    secure.socket = tls_context.wrap_socket(secure.socket, server_side=True)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
               for s in (plain, secure)]
    for t in threads:
        t.start()
    try:
        yield Origins(plain.server_address[1], secure.server_address[1], ca)
    finally:
        for s in (plain, secure):
            s.shutdown()
            s.server_close()


def process_gone(pid: int) -> bool:
    """True once `pid` has exited: no such process, or a zombie nobody has reaped yet (a container's init)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until_gone(pid: int, timeout: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return process_gone(pid)
