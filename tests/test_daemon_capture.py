"""The real daemon capturing on a gateway's interfaces while the network changes under it.

Each test makes a network namespace (the gateway) with veth pairs whose inner ends are the gateway's
interfaces (lan1, lan2, later vlan999), starts `social-monitor run` inside it, writes DNS queries
from a trust device's address into the outer ends, and changes links with `ip`: a link that flaps,
an interface that does not exist yet, a default route that moves. Metrics are scraped from inside
the namespace with curl; every loop is bounded by a deadline.
(Kept beside tests/test_daemon.py, whose helpers it uses, so that file stays about one process.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.store.sqlite import open_store

from .conftest import REPO
from .pcapgen import dns_query_frame
from .test_daemon import Daemon, free_port
from .test_daemon import trust as trust_fixture

trust = trust_fixture  # the example trust with a lab zone and a reserved device, as in test_daemon

CLIENT = "192.168.43.18"  # a trust device (a reservation in the `trust` fixture), zone "lab"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("curl"),
                       reason="needs root, iproute2 and curl"),
]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=30, capture_output=True)


@dataclass
class Gateway:
    """A namespace standing for the gateway; `wire(name)` adds an interface and returns its outer end."""

    ns: str
    tag: str
    outer: list[str] = field(default_factory=list)

    def wire(self, inside: str, address: str | None = None) -> str:
        outside = f"smo{len(self.outer)}{self.tag}"
        ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", self.ns)
        self.outer.append(outside)
        # no IPv6 on either end: no router solicitations or MLD reports counted as captured packets
        Path(f"/proc/sys/net/ipv6/conf/{outside}/disable_ipv6").write_text("1")
        ip("netns", "exec", self.ns, "sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{inside}/disable_ipv6")
        ip("link", "set", outside, "up")
        ip("-n", self.ns, "link", "set", inside, "up")
        if address:
            ip("-n", self.ns, "addr", "add", address, "dev", inside)
        return outside


@pytest.fixture
def gateway():
    tag = uuid.uuid4().hex[:6]
    gw = Gateway(f"smgw{tag}", tag)
    ip("netns", "add", gw.ns)
    try:
        ip("-n", gw.ns, "link", "set", "lo", "up")
        yield gw
    finally:
        for outside in gw.outer:
            subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", gw.ns], capture_output=True, timeout=30)


class GatewayDaemon(Daemon):
    """`social-monitor run` inside the gateway's namespace, scraped from inside it."""

    def __init__(self, ns: str, config, *args: str):
        self.ns = ns
        self.metrics_port = free_port()
        self.proxy_port = free_port()
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "monitor", "run", "--config", str(config),
               "--metrics-listen", f"127.0.0.1:{self.metrics_port}", "--no-proxy", *args]
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        # `ip netns exec` execs the command: the pid signalled is the daemon's
        self.process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
        self.lines: list[str] = []

    def scrape(self) -> dict[tuple, float]:
        got = subprocess.run(["ip", "netns", "exec", self.ns, "curl", "-sf", "--max-time", "5",
                              f"http://127.0.0.1:{self.metrics_port}/metrics"],
                             capture_output=True, text=True, timeout=15)
        if got.returncode != 0:
            raise httpx.ConnectError(f"curl exit {got.returncode}")  # not up yet: wait_for retries
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(got.stdout)
            for sample in family.samples
        }

    def up(self, interface: str) -> float | None:
        return self.scrape().get(("social_monitor_capture_up", (("interface", interface),)))

    def accesses(self, platform: str) -> float:
        return self.total("social_monitor_accesses_total", platform=platform)


def query(outside: str, name: str, sport: int = 40000) -> None:
    """A DNS query from the trust device, written into the outer end of a gateway interface."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out:
        out.bind((outside, 0))
        out.send(dns_query_frame(CLIENT, "192.0.2.53", sport, name))


def counted_after_sending(daemon: GatewayDaemon, outside: str, name: str,
                          platform: str) -> Callable[[], bool]:
    """A predicate for wait_for: send the query again, then see whether its platform was counted."""
    def check() -> bool:
        query(outside, name)
        return daemon.accesses(platform) >= 1
    return check


def events_named(daemon: GatewayDaemon, message: str, **fields: object) -> list[dict]:
    return [e for e in daemon.events() if e.get("message") == message
            and all(e.get(k) == v for k, v in fields.items())]


def test_a_flapped_link_is_captured_again_within_ten_seconds(tmp_path, trust, gateway):
    lan1, lan2 = gateway.wire("lan1"), gateway.wire("lan2")
    daemon = GatewayDaemon(gateway.ns, trust, "--interface", "lan1", "--interface", "lan2")
    try:
        daemon.wait_for(lambda: daemon.up("lan1") == 1 and daemon.up("lan2") == 1, what="both interfaces")
        daemon.wait_for(counted_after_sending(daemon, lan1, "www.instagram.com", "instagram"),
                        what="a query on lan1 before the flap")

        ip("-n", gateway.ns, "link", "set", "lan1", "down")
        down_at = time.monotonic()
        daemon.wait_for(lambda: daemon.up("lan1") == 0, timeout=10, what="capture_up{lan1} to read 0")
        # the other interface keeps capturing all through the outage
        daemon.wait_for(counted_after_sending(daemon, lan2, "www.youtube.com", "youtube"),
                        what="a query on lan2 during the outage")
        assert daemon.up("lan2") == 1 and daemon.up("lan1") == 0
        time.sleep(max(0.0, 2 - (time.monotonic() - down_at)))
        ip("-n", gateway.ns, "link", "set", "lan1", "up")
        back_at = time.monotonic()
        daemon.wait_for(lambda: daemon.up("lan1") == 1, timeout=15, what="capture_up{lan1} to read 1 again")
        resumed_in = time.monotonic() - back_at
        after_flap = time.time()
        daemon.wait_for(counted_after_sending(daemon, lan1, "www.tiktok.com", "tiktok"),
                        what="a query on lan1 after the flap")
        outages = {name: daemon.value("social_monitor_capture_outages_total", interface=name)
                   for name in ("lan1", "lan2")}
    finally:
        assert daemon.stop() == 0
    assert resumed_in < 10
    assert outages == {"lan1": 1, "lan2": 0}
    [down] = events_named(daemon, "capture_down", interface="lan1")
    assert down["reason"] == "link_down"
    assert len(events_named(daemon, "capture_up", interface="lan1")) == 2  # at start, after the flap
    assert not events_named(daemon, "capture_down", interface="lan2")
    [running] = events_named(daemon, "running")
    assert running["capture"] == {"lan1": "up", "lan2": "up"}
    with open_store(tmp_path / "store.db", create=False) as store:
        sessions = {s.platform: s for s in store.sessions()}
    assert {"instagram", "youtube", "tiktok"} <= set(sessions)
    assert sessions["tiktok"].last_seen >= after_flap - 1
    assert sessions["tiktok"].zone == "lab"


def test_a_missing_interface_leaves_the_others_capturing_and_is_taken_when_created(trust, gateway):
    lan1 = gateway.wire("lan1")
    daemon = GatewayDaemon(gateway.ns, trust, "--interface", "lan1", "--interface", "vlan999")
    try:
        daemon.wait_for(lambda: daemon.up("lan1") == 1, what="lan1 captured")
        assert daemon.up("vlan999") == 0
        daemon.wait_for(counted_after_sending(daemon, lan1, "www.instagram.com", "instagram"),
                        what="a query on lan1 while vlan999 is missing")
        assert daemon.value("social_monitor_component_up", component="sensor") == 1

        vlan999 = gateway.wire("vlan999")
        created_at = time.monotonic()
        daemon.wait_for(lambda: daemon.up("vlan999") == 1, timeout=15, what="vlan999 captured once created")
        taken_in = time.monotonic() - created_at
        daemon.wait_for(counted_after_sending(daemon, vlan999, "www.tiktok.com", "tiktok"),
                        what="a query on vlan999")
        outages = daemon.value("social_monitor_capture_outages_total", interface="vlan999")
    finally:
        assert daemon.stop() == 0
    assert taken_in < 11  # retries at most 9 s apart, looked at twice a second, and the scrape
    assert outages == 1  # missing at start is one outage, counted and logged once
    [running] = events_named(daemon, "running")
    assert running["sensor"] is True
    assert running["capture"] == {"lan1": "up", "vlan999": "down: missing"}
    [down] = events_named(daemon, "capture_down", interface="vlan999")
    assert down["reason"] == "missing"


def test_with_no_interface_named_the_capture_follows_the_default_route(trust, gateway):
    lan1 = gateway.wire("lan1", "10.99.1.1/24")
    lan2 = gateway.wire("lan2", "10.99.2.1/24")
    ip("-n", gateway.ns, "route", "add", "default", "via", "10.99.1.254", "dev", "lan1")
    daemon = GatewayDaemon(gateway.ns, trust)  # the trust's capture.interfaces is empty
    try:
        daemon.wait_for(lambda: daemon.up("default") == 1, what="the default route's interface")
        daemon.wait_for(counted_after_sending(daemon, lan1, "www.instagram.com", "instagram"),
                        what="a query on lan1, the default route")

        ip("-n", gateway.ns, "route", "replace", "default", "via", "10.99.2.254", "dev", "lan2")
        daemon.wait_for(counted_after_sending(daemon, lan2, "www.tiktok.com", "tiktok"),
                        what="a query on lan2 once the route moved there")
        for sport in range(41000, 41005):  # lan1 no longer carries the route: not captured
            query(lan1, "www.youtube.com", sport)
        daemon.wait_for(lambda: daemon.accesses("tiktok") >= 1 and daemon.up("default") == 1,
                        what="the capture to settle")
        time.sleep(1)
        youtube = daemon.accesses("youtube")
        outages = daemon.value("social_monitor_capture_outages_total", interface="default")
        interfaces = {labels for name, labels in daemon.scrape() if name == "social_monitor_capture_up"}
    finally:
        assert daemon.stop() == 0
    assert youtube == 0
    assert outages == 0  # moving with the route is not an outage
    assert interfaces == {(("interface", "default"),)}  # one series, whichever interface carries the route
    assert [e["device"] for e in events_named(daemon, "capture_up", interface="default")] == ["lan1", "lan2"]
    [running] = events_named(daemon, "running")
    assert running["capture"] == {"default": "up (lan1)"}
