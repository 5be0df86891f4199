"""The real daemon counts each access once: sensor and proxy child on loopback, live capture, real clients.

One proxied HTTPS visit is seen three times (the sensor reads the CONNECT and
the TLS hello on loopback, the proxy child records it) and must move
`social_monitor_accesses_total` by exactly one, while the per-signal family
`social_monitor_observations_total` moves by the number of observations. The
example config's demo-loopback zone makes this host a trust device, so these
accesses are stored, and counted by the writer that inserts the session row.

The tests capture loopback live, so they run inside a network namespace this
module creates (with an "uplink" holding an address of the gateway's
own, on a veth pair): other programs' loopback traffic cannot reach them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from monitor.store.sqlite import open_store
from monitor.tagging.gateway import read_local_addresses

from .conftest import EXAMPLE
from .pcapgen import dns_query_frame
from .proxy_helpers import client_hello_record, wait_for_port
from .test_daemon import Daemon

pytestmark = pytest.mark.integration
IN_NETNS = os.environ.get("SM_COUNTING_NETNS")
inside = pytest.mark.skipif(not IN_NETNS, reason="run inside its network namespace by the test below")
UPLINK = "192.0.2.77"  # the gateway's own address on the namespace's uplink
GAP = 2  # seconds: a short idle gap, so that a second access can be made within the test
ACCESSES = "social_monitor_accesses_total"
SIGNALS = "social_monitor_observations_total"


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and ip")
def test_counting_in_a_network_namespace():
    """Runs the tests below in a fresh namespace: its own loopback and an uplink holding UPLINK."""
    name = f"sm-count-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        # a veth pair with both ends inside stands for the uplink (no dummy module on every kernel)
        for command in (["link", "set", "lo", "up"],
                        ["link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"],
                        ["addr", "add", f"{UPLINK}/24", "dev", "uplink0"],
                        ["link", "set", "uplink0", "up"], ["link", "set", "uplink1", "up"]):
            subprocess.run(["ip", "-n", name, *command], check=True, timeout=30)
        out = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             __file__, "-k", "not namespace"],
            cwd=Path(__file__).resolve().parents[1], env={**os.environ, "SM_COUNTING_NETNS": name},
            capture_output=True, text=True, timeout=300,
        )
    finally:
        subprocess.run(["ip", "netns", "delete", name], timeout=30)
    assert out.returncode == 0 and "3 passed" in out.stdout, out.stdout[-6000:] + out.stderr[-2000:]


@pytest.fixture
def loopback_trust(tmp_path, write_config):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["store"]["path"] = str(tmp_path / "store.db")
    data["store"]["idle_gap_seconds"] = GAP
    data["retention_days"] = 30
    return write_config(data)


def dns_query(name: str, source: str = "127.0.0.1", server: str = "127.0.0.1") -> None:
    payload = dns_query_frame("127.0.0.1", "127.0.0.1", 40000, name)[34 + 8:]  # the DNS message only
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(payload, (server, 53))  # nobody answers: the query is what is seen


def quic_initial(name: str) -> None:
    """A real QUIC v1 client Initial carrying a ClientHello for `name` (nobody answers on UDP 443)."""
    from monitor.capture.quic import VERSION_1

    from .capture_helpers import client_hello, crypto_frames
    from .capture_helpers import quic_initial as initial

    packet = initial(VERSION_1, bytes(range(8)), crypto_frames([(0, client_hello(name))]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(packet, ("127.0.0.1", 443))


def proxied_https_visit(proxy_port: int, name: str) -> None:
    """CONNECT through the daemon's proxy child, then a real ClientHello; the upstream never answers."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as sock:
        sock.sendall(f"CONNECT {name}:443 HTTP/1.1\r\nHost: {name}:443\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # lazy: established before any upstream
        sock.sendall(client_hello_record(name))
        time.sleep(0.5)  # let the proxy read the hello before the connection closes


def settled(daemon: Daemon, name: str, **labels: str) -> float:
    """The value of a family once it has stopped moving for a second (writers commit in batches)."""
    last, since = daemon.total(name, **labels), time.monotonic()
    deadline = since + 15
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = daemon.total(name, **labels)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 1.5:
            break
    return last


def started(config, tmp_path) -> Daemon:
    daemon = Daemon(config, "--interface", "lo", proxy=True)
    daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="sensor") == 1,
                    what="the sensor to capture")
    wait_for_port(daemon.proxy_port, timeout=30)
    return daemon


@inside
def test_one_proxied_https_visit_is_one_access(tmp_path, loopback_trust):
    daemon = started(loopback_trust, tmp_path)
    try:
        before_signals = settled(daemon, SIGNALS)
        proxied_https_visit(daemon.proxy_port, "www.facebook.com")
        daemon.wait_for(lambda: daemon.total(ACCESSES, platform="facebook") >= 1, what="the access counted")
        accesses = settled(daemon, ACCESSES, platform="facebook")
        signals = settled(daemon, SIGNALS, outcome="recorded") - 0
        all_signals = settled(daemon, SIGNALS) - before_signals
        by_source = {source: daemon.total(SIGNALS, source=source, outcome="recorded")
                     for source in ("sensor", "proxy")}
    finally:
        assert daemon.stop() == 0
    assert accesses == 1
    assert by_source["proxy"] == 1 and by_source["sensor"] >= 1  # the proxy's record and the sensor's signals
    with open_store(tmp_path / "store.db", create=False) as store:
        [session] = [s for s in store.sessions() if s.platform == "facebook"]
    assert signals == session.observations >= 2 and all_signals >= signals
    assert "proxy" in session.signals


@inside
def test_dns_then_quic_is_one_access_and_after_the_gap_two(tmp_path, loopback_trust):
    daemon = started(loopback_trust, tmp_path)
    try:
        dns_query("www.tiktok.com")
        quic_initial("www.tiktok.com")
        daemon.wait_for(lambda: daemon.total(SIGNALS, source="sensor", outcome="recorded") >= 2,
                        what="both signals seen")
        first = settled(daemon, ACCESSES, platform="tiktok")
        time.sleep(GAP + 1.5)
        dns_query("www.tiktok.com")
        daemon.wait_for(lambda: daemon.total(ACCESSES, platform="tiktok") >= 2, what="the second access")
        second = settled(daemon, ACCESSES, platform="tiktok")
    finally:
        assert daemon.stop() == 0
    assert (first, second) == (1, 2)
    with open_store(tmp_path / "store.db", create=False) as store:
        sessions = sorted((s for s in store.sessions() if s.platform == "tiktok"), key=lambda s: s.first_seen)
    assert [sorted(s.signals) for s in sessions] == [["dns", "quic"], ["dns"]]


@inside
def test_a_lookup_from_the_gateways_own_address_is_not_an_access(tmp_path, loopback_trust):
    assert UPLINK in read_local_addresses()  # the daemon reads it from the kernel, as this does
    daemon = started(loopback_trust, tmp_path)
    try:
        dns_query("www.instagram.com", source=UPLINK, server=UPLINK)  # local delivery: seen on lo
        daemon.wait_for(lambda: daemon.total(SIGNALS, outcome="gateway_own") >= 1,
                        what="the gateway's own lookup counted as such")
        dns_query("www.instagram.com")  # the same from the demo-loopback device: an access
        daemon.wait_for(lambda: daemon.total(ACCESSES, platform="instagram") >= 1, what="the demo access")
        accesses = settled(daemon, ACCESSES, platform="instagram")
        unknown = daemon.total(ACCESSES, school="unknown")
    finally:
        assert daemon.stop() == 0
    assert (accesses, unknown) == (1, 0)
    with open_store(tmp_path / "store.db", create=False) as store:
        [session] = [s for s in store.sessions() if s.platform == "instagram"]
    assert session.device == "DEMO-0001" and session.observations == 1
