"""Shared helpers for the proxy addon tests: real ClientHello bytes, the addon module, a test config."""

from __future__ import annotations

import contextlib
import importlib.util
import ssl
import sys
from pathlib import Path
from types import ModuleType

from mitmproxy import tls

ROOT = Path(__file__).resolve().parent.parent
ADDON_PATH = ROOT / "addons" / "social_monitor.py"
TEST_CONFIG = Path(__file__).resolve().parent / "data" / "proxy" / "config.yaml"


def load_addon_module() -> ModuleType:
    """Import addons/social_monitor.py as mitmdump's `-s` does (it is a script, not a package)."""
    name = "social_monitor_addon_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ADDON_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
