"""The coverage ledger end to end: the real daemon, a real interface going down, real exports and scrapes.

- A daemon capturing on a veth in a namespace whose link goes down for a while writes intervals that
  say so, and the export of that day names the window and does not say "None was flagged".
- Over the daemon's whole run (no restart), the ledger's kernel drops (made real: the daemon is
  stopped with SIGSTOP while frames pour in) and obscured flows (ECH ClientHellos) equal the final
  values of the Prometheus series scraped over HTTP, which started at zero.
- A daemon whose config has no DPIA reference yields an export that says "Not recorded".
(Beside tests/test_daemon_capture.py, whose namespace helpers it uses.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from monitor.store.coverage import open_view

from .capture_helpers import client_hello, tls_records
from .conftest import REPO
from .pcapgen import dns_query_frame, tcp_frame, write_pcap
from .test_daemon import Daemon, trust
from .test_daemon_capture import CLIENT, GatewayDaemon, gateway, ip, query

__all__ = ["gateway", "trust"]  # fixtures used here
pytestmark = [pytest.mark.integration]
needs_netns = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("curl"),
                                 reason="needs root, iproute2 and curl")


def fast_ledger(config: Path, **changes) -> Path:
    """The same config with two-second coverage intervals (and any other store or trust change)."""
    data = yaml.safe_load(config.read_text())
    data["store"]["coverage_interval_seconds"] = 2
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if value is None:
            data[section].pop(name, None)
        else:
            data[section][name] = value
    config.write_text(yaml.safe_dump(data))
    return config


def export(config: Path, out: Path) -> dict:
    """`social-monitor export` of today (local) for the example school; returns its manifest."""
    tz = ZoneInfo(yaml.safe_load(config.read_text())["trust"].get("timezone", "Europe/London"))
    today = datetime.now(tz).date().isoformat()
    got = subprocess.run([sys.executable, "-m", "monitor", "export", "--config", str(config), "--school",
                          "oak-primary", "--from", today, "--to", today, "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stdout + got.stderr
    return json.loads((out / "manifest.json").read_text())


def ech_hello(outside: str, sport: int) -> None:
    """A TLS ClientHello with Encrypted Client Hello from the trust device (a hidden destination)."""
    frame = tcp_frame(CLIENT, "104.16.0.1", sport, 443, 1, tls_records(client_hello("cloudflare-ech.com",
                                                                                    ech=True)))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out:
        out.bind((outside, 0))
        out.send(frame)


def flood(outside: str, frames: int) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out:
        out.bind((outside, 0))
        for k in range(frames):
            out.send(dns_query_frame(CLIENT, "192.0.2.53", 20000 + k % 20000, f"x{k}.example.org"))


WATCHED = ("social_monitor_kernel", "social_monitor_obscured", "social_monitor_packets")


def settled(daemon: GatewayDaemon) -> dict[tuple, float]:
    """Scrape until two scrapes a stats period apart agree (the capture publishes counts every 10 s)."""
    before = daemon.scrape()
    deadline = time.monotonic() + 90
    moving: list[tuple] = []
    while time.monotonic() < deadline:
        time.sleep(11)
        after = daemon.scrape()
        if all(after.get(k) == v for k, v in before.items() if k[0].startswith(WATCHED)):
            return after
        moving = sorted(k for k, v in before.items() if after.get(k) != v and k[0].startswith(WATCHED))
        before = after
    raise AssertionError(f"the counters never settled; still moving: {moving}")


@needs_netns
@pytest.mark.netns
def test_an_interface_down_for_a_while_is_in_the_ledger_and_the_export(tmp_path, trust, gateway):
    config = fast_ledger(trust)
    lan1 = gateway.wire("lan1")
    daemon = GatewayDaemon(gateway.ns, config, "--interface", "lan1")
    try:
        daemon.wait_for(lambda: daemon.up("lan1") == 1, what="lan1 captured")
        for sport in (41000, 41001, 41002):
            ech_hello(lan1, sport)
        os.kill(daemon.process.pid, signal.SIGSTOP)  # nothing reads the socket: the kernel drops the rest
        try:
            flood(lan1, 400_000)  # past the capture's 64 MiB receive buffer
        finally:
            os.kill(daemon.process.pid, signal.SIGCONT)
        time.sleep(5)
        ip("-n", gateway.ns, "link", "set", "lan1", "down")
        down_at = time.time()
        daemon.wait_for(lambda: daemon.up("lan1") == 0, timeout=10, what="capture_up{lan1} to read 0")
        time.sleep(6)
        ip("-n", gateway.ns, "link", "set", "lan1", "up")
        up_at = time.time()
        daemon.wait_for(lambda: daemon.up("lan1") == 1, timeout=15, what="lan1 captured again")
        query(lan1, "www.instagram.com")
        final = settled(daemon)
    finally:
        assert daemon.stop() == 0
    view = open_view(tmp_path / "store.db", 0, time.time() + 60)
    intervals = view.intervals
    assert intervals and intervals[0].sensor == "live"
    # the window: the intervals it touched say lan1 was down, for about as long as it was
    touched = [i for i in intervals if i.end > down_at and i.start < up_at]
    down = sum(i.seconds - i.interfaces["lan1"]["up_seconds"] for i in touched)
    assert 5 <= down <= (up_at - down_at) + 12, down
    assert all(i.interfaces["lan1"]["up_seconds"] >= i.seconds - 2 for i in intervals
               if i.end < down_at - 2 or i.start > up_at + 12)
    # the ledger's sums are the series' increases over the run (they started at zero)
    drops = final[("social_monitor_kernel_dropped_packets", (("interface", "lan1"),))]
    obscured = sum(v for (name, labels), v in final.items() if name == "social_monitor_obscured_flows_total"
                   and ("kind", "ech") in labels and ("school", "oak-primary") in labels)
    packets = final[("social_monitor_packets_total", (("interface", "lan1"),))]
    assert drops > 0 and obscured == 3
    assert sum(i.kernel_drops for i in intervals) == drops
    assert sum(i.obscured.get("ech", 0) for i in intervals) == obscured
    # packets go on counting after the last scrape (the link's own IPv6 neighbour traffic, a final publish)
    assert packets <= sum(i.packets for i in intervals) <= packets + 20
    # the export says so for that window, and does not claim that nothing happened
    manifest = export(config, tmp_path / "export")
    c = manifest["completeness"]
    assert c["fully_observed"] is False and c["interfaces_up_share"]["lan1"] < 1
    assert c["kernel_drops"] == drops and c["obscured"]["ech"]["flows"] == 3
    [window] = [w for w in c["outages"] if w["what"] == "capture on lan1"]
    assert datetime.fromisoformat(window["from"]).timestamp() <= down_at + 2
    assert datetime.fromisoformat(window["to"]).timestamp() >= up_at - 2
    assert any("capture on lan1 down" in r for r in c["days"][0]["reasons"])
    html = (tmp_path / "export" / "report.html").read_text()
    assert "capture on lan1" in html and "None was flagged" not in html


def test_a_dpia_gated_period_is_reported_as_not_recorded(tmp_path, trust):
    config = fast_ledger(trust, **{"trust.dpia_reference": None})
    capture = tmp_path / "lookups.pcap"  # a trust device looks up Instagram: counted, refused by the gate
    write_pcap(capture, [(time.time(), dns_query_frame(CLIENT, "192.0.2.53", 40000 + k, "www.instagram.com",
                                                       txid=k + 1)) for k in range(5)])
    daemon = Daemon(config, "--pcap", str(capture))
    try:
        daemon.wait_for(lambda: daemon.value("social_monitor_coverage_intervals_total",
                                             result="written") >= 2, what="two coverage intervals written")
    finally:
        assert daemon.stop() == 0
    view = open_view(tmp_path / "store.db", 0, time.time() + 60)
    assert view.intervals and all(i.storage_refused for i in view.intervals)
    assert sum(i.refused for i in view.intervals) == 5 and sum(i.observations for i in view.intervals) == 5
    manifest = export(config, tmp_path / "export")
    assert manifest["completeness"]["days"][0]["status"] == "not-recorded"
    html = (tmp_path / "export" / "report.html").read_text()
    assert "Not recorded" in html and "None was flagged" not in html
