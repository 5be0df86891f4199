"""The proxy on a gateway built from network namespaces: dual-stack transparent mode through the
shipped nftables rules, and an explicit proxy that serves the trust's zones and refuses the world.

The outer tests build two namespaces joined by a veth pair: a gateway whose staff interface is
called `vlan120` (the name deploy/nftables-*.nft expect) and a client behind it. The client holds
a zone address (10.10.20.5, 2001:db8:10:20::5: the shipped rules' staff networks) and a public one
(198.51.100.7, 2001:db8:bad::7: documentation prefixes that exist only inside these namespaces).
The inner tests run in the gateway's namespace and start the real launcher (mitmproxy with the
addon), with curl run in the client's namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.proxy.launcher import proxy_arguments
from monitor.store.sqlite import open_store
from tests.proxy_helpers import REDIRECT_PATH, ROOT, TEST_CONFIG, Origins, free_port, serve_origins

DEPLOY = ROOT / "deploy"
CLIENT_NS = os.environ.get("SM_CLIENT_NS", "")
PROXY_PORT = 8080  # the shipped rules' PROXY_PORT
ZONE_V4, ZONE_V6 = "10.10.20.5", "2001:db8:10:20::5"
PUBLIC_V4, PUBLIC_V6 = "198.51.100.7", "2001:db8:bad::7"
GATEWAY = {ZONE_V4: "10.10.20.1", ZONE_V6: "2001:db8:10:20::1",
           PUBLIC_V4: "198.51.100.1", PUBLIC_V6: "2001:db8:bad::1"}
# "internet" addresses the client connects to; the redirect sends them to the proxy
INTERNET = {4: "203.0.113.10", 6: "2001:db8:ffff::10"}
DUAL = ["0.0.0.0:8080", "[::]:8080"]

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "nft", "curl")),
    reason="needs root, ip, nft and curl to build network namespaces",
)
inner_only = pytest.mark.skipif(not CLIENT_NS, reason="run inside the gateway namespace by the outer test")


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, timeout=30, capture_output=True)


def run_inside_a_gateway(test: str) -> None:
    """Build gateway and client namespaces, run `test` of this file in the gateway's, clean up."""
    gw, cl = f"smgw-{os.getpid()}", f"smcl-{os.getpid()}"
    run("ip", "netns", "add", gw)
    run("ip", "netns", "add", cl)
    try:
        run("ip", "-n", gw, "link", "add", "vlan120", "type", "veth", "peer", "name", "eth0", "netns", cl)
        for ns, dev, own in ((gw, "vlan120", GATEWAY.values()), (cl, "eth0", GATEWAY.keys())):
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "set", dev, "up")
            for address in own:
                prefix = "64" if ":" in address else "24"
                run("ip", "-n", ns, "addr", "add", f"{address}/{prefix}", "dev", dev,
                    *(["nodad"] if ":" in address else []))
        # static neighbours: no ARP or neighbour discovery (whose first answers may come late) to wait for
        links = {ns: subprocess.run(["ip", "-j", "-n", ns, "link", "show", dev], check=True,
                                    capture_output=True, text=True, timeout=30).stdout
                 for ns, dev in ((gw, "vlan120"), (cl, "eth0"))}
        macs = {ns: json.loads(text)[0]["address"] for ns, text in links.items()}
        for client, gateway in GATEWAY.items():
            run("ip", "-n", cl, "neigh", "replace", gateway, "lladdr", macs[gw], "dev", "eth0")
            run("ip", "-n", gw, "neigh", "replace", client, "lladdr", macs[cl], "dev", "vlan120")
        # to the "internet" from the zone addresses (source selection might pick the public ones)
        run("ip", "-n", cl, "route", "add", "default", "via", GATEWAY[ZONE_V4], "src", ZONE_V4)
        run("ip", "-n", cl, "-6", "route", "add", "default", "via", GATEWAY[ZONE_V6], "src", ZONE_V6)
        out = subprocess.run(
            ["ip", "netns", "exec", gw, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"{__file__}::{test}"],
            cwd=ROOT, env={**os.environ, "SM_CLIENT_NS": cl}, capture_output=True, text=True, timeout=300,
        )
    finally:
        subprocess.run(["ip", "netns", "delete", cl], timeout=30)
        subprocess.run(["ip", "netns", "delete", gw], timeout=30)
    assert out.returncode == 0 and " passed" in out.stdout and "failed" not in out.stdout, \
        out.stdout[-6000:] + out.stderr[-2000:]


@pytest.fixture(scope="module")
def origins(tmp_path_factory) -> Iterator[Origins]:
    with serve_origins(tmp_path_factory.mktemp("certs")) as served:
        yield served


def gateway_config(tmp: Path) -> Path:
    """The proxy test trust with the staff room on the shipped rules' networks, the client a trust
    device on both of its zone addresses."""
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp / "devices.csv")
    text = TEST_CONFIG.read_text().replace("cidrs: [10.9.9.0/24]",
                                           'cidrs: [10.10.20.0/24, "2001:db8:10:20::/64"]')
    text = text.replace("  reservations:\n", "  reservations:\n"
                        f'    - {{mac: "3c:52:82:99:00:01", ip: {ZONE_V4}}}\n'
                        f'    - {{mac: "3c:52:82:99:00:01", ip: "{ZONE_V6}"}}\n')
    path = tmp / "config.yaml"
    path.write_text(text)
    return path


class GatewayProxy:
    """The launcher as the daemon starts it (proxy_arguments), upstreams sent to the local origins."""

    def __init__(self, tmp: Path, origins: Origins, listen: str | list[str], mode: str):
        self.tmp, self.metrics_port = tmp, free_port()
        cmd = [sys.executable, "-m", "monitor.proxy.launcher", "-q", "-s", str(REDIRECT_PATH),
               *proxy_arguments(listen, mode, gateway_config(tmp)),
               "--set", f"confdir={tmp / 'mitmproxy'}",
               "--set", f"social_monitor_metrics=127.0.0.1:{self.metrics_port}"]
        self.log = tmp / "proxy.log"
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **origins.env()},
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        addresses = [listen] if isinstance(listen, str) else listen
        deadline = time.monotonic() + 30
        while self.listening() < len(addresses):
            assert self.proc.poll() is None and time.monotonic() < deadline, self.stop()
            time.sleep(0.1)

    def listening(self) -> int:
        out = subprocess.run(["ss", "-Htln", f"sport = :{PROXY_PORT}"], capture_output=True, text=True,
                             timeout=10).stdout
        return len(out.splitlines())

    def metric(self, line_prefix: str) -> float:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(line_prefix):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.log.read_text(errors="replace")


def curl(origins: Origins, *args: str) -> str:
    """curl in the client's namespace; the page body, or 'refused: <curl's error>'."""
    out = subprocess.run(["ip", "netns", "exec", CLIENT_NS, "curl", "-sS", "--max-time", "8",
                          "--cacert", str(origins.ca), *args], capture_output=True, text=True, timeout=30)
    return out.stdout if out.returncode == 0 else f"refused: {out.stderr.strip()}"


# --- dual-stack transparent mode through deploy/nftables-transparent-proxy.nft ----------------------


@pytest.mark.integration
@pytest.mark.netns
@needs_netns
def test_transparent_dual_stack_through_the_shipped_rules():
    run_inside_a_gateway("test_transparent_inner")


@pytest.mark.integration
@inner_only
@pytest.mark.parametrize(("listen", "served"), [
    (DUAL, {4: True, 6: True}),
    ("0.0.0.0:8080", {4: True, 6: False}),  # the one-address config the issue reproduced
    ("[::]:8080", {4: False, 6: True}),
])
def test_transparent_inner(tmp_path: Path, origins: Origins, listen, served):
    run("nft", "-f", str(DEPLOY / "nftables-transparent-proxy.nft"))  # as shipped, unedited
    proxy = GatewayProxy(tmp_path, origins, listen, "transparent")
    try:
        pages = {family: curl(origins, "--noproxy", "*", "--resolve",
                              f"www.tiktok.com:443:{INTERNET[family] if family == 4 else f'[{INTERNET[6]}]'}",
                              "https://www.tiktok.com/") for family in (4, 6)}
        passed = proxy.metric('social_monitor_proxy_connections_total{handling="passthrough"}')
    finally:
        output = proxy.stop()
        run("nft", "delete", "table", "inet", "social_monitor_proxy")
    assert {family: page == "hello from www.tiktok.com" for family, page in pages.items()} == served, \
        (pages, output[-3000:])
    assert passed == sum(served.values())  # TLS verified by curl against the origin's CA: passed through
    with open_store(tmp_path / "store.db", create=False) as store:
        sessions = list(store.sessions())
    assert {(s.platform, s.zone) for s in sessions} == {("tiktok", "staff-room")}
    assert sum(s.observations for s in sessions) == sum(served.values())


# --- explicit mode: the zones served, a public address refused ----------------------------------


@pytest.mark.integration
@pytest.mark.netns
@needs_netns
def test_explicit_proxy_refuses_a_public_client():
    run_inside_a_gateway("test_explicit_inner")


def via_proxy(origins: Origins, source: str) -> str:
    proxy = f"[{GATEWAY[source]}]" if ":" in source else GATEWAY[source]
    return curl(origins, "--interface", source, "--proxy", f"http://{proxy}:{PROXY_PORT}",
                "https://www.tiktok.com/")


@pytest.mark.integration
@inner_only
@pytest.mark.parametrize("firewall", ["proxy-alone", "with-shipped-input-rule"])
def test_explicit_inner(tmp_path: Path, origins: Origins, firewall: str):
    if firewall != "proxy-alone":
        run("nft", "-f", str(DEPLOY / "nftables-explicit-proxy.nft"))
    proxy = GatewayProxy(tmp_path, origins, DUAL, "regular")
    try:
        pages = {source: via_proxy(origins, source) for source in (ZONE_V4, ZONE_V6, PUBLIC_V4, PUBLIC_V6)}
        refused = proxy.metric('social_monitor_proxy_connections_total{handling="refused"}')
    finally:
        output = proxy.stop()
        if firewall != "proxy-alone":
            run("nft", "delete", "table", "inet", "social_monitor_explicit_proxy")
    served = {source: page == "hello from www.tiktok.com" for source, page in pages.items()}
    assert served == {ZONE_V4: True, ZONE_V6: True, PUBLIC_V4: False, PUBLIC_V6: False}, (pages, output)
    # the proxy itself refuses them; with the input rule they never reach it
    assert refused == (2 if firewall == "proxy-alone" else 0)
    if firewall == "proxy-alone":
        assert "proxy_client_refused" in output
