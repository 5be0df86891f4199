"""The real daemon process: pcap source, metrics over HTTP, SIGHUP, SIGTERM, a crashed proxy.

Every test starts `social-monitor run` as a subprocess on loopback with its own
config and store in a temp dir, scrapes /metrics over HTTP, sends real
signals, and checks the exit code and the stored sessions. Loops are bounded
by a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.capture.sources import read_frames
from monitor.config.loader import load_config
from monitor.daemon import Daemon as Daemon_
from monitor.daemon import RunOptions
from monitor.store.sqlite import open_store
from monitor.tagging.pipeline import OBSCURED_KINDS

from .conftest import EXAMPLE, REPO, SHARED
from .pcapgen import dns_query_frame, write_pcap
from .proxy_helpers import process_gone, wait_for_port, wait_until_gone

FACEBOOK_PCAP = SHARED / "pcaps" / "facebook.pcap"
pytestmark = pytest.mark.skipif(not FACEBOOK_PCAP.exists(), reason="needs ../shared/pcaps")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shift_to_now(source: Path, target: Path) -> None:
    """The shared capture with its packets moved to the last minute (so retention keeps them), written
    as pcapng when `target` ends in .pcapng."""
    from scapy.utils import rdpcap, wrpcap, wrpcapng

    packets = rdpcap(str(source))
    offset = time.time() - 60 - float(packets[0].time)
    for packet in packets:
        packet.time = float(packet.time) + offset
    (wrpcapng if target.suffix == ".pcapng" else wrpcap)(str(target), packets)


@pytest.fixture
def trust(tmp_path, write_config):
    """The example trust plus a lab zone holding the capture's client, a trust device."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["schools"][0]["zones"].append(
        {"name": "lab", "kind": "classroom", "pupil_area": True, "cidrs": ["192.168.0.0/16"]}
    )
    data["devices"]["reservations"].append({"mac": "3c:52:82:10:00:03", "ip": "192.168.43.18"})
    data["store"]["path"] = str(tmp_path / "store.db")
    data["retention_days"] = 30
    return write_config(data)


class Daemon:
    def __init__(self, config: Path, *args: str, proxy: bool = False, proxy_port: int | None = None,
                 env: dict[str, str] | None = None, module: str = "monitor"):
        self.metrics_port = free_port()
        self.proxy_port = proxy_port or free_port()
        cmd = [sys.executable, "-m", module, "run", "--config", str(config),
               "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
               "--proxy-listen", f"127.0.0.1:{self.proxy_port}", *args]
        if not proxy:
            cmd.append("--no-proxy")
        env = {**{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}, **(env or {})}
        self.process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
        self.lines: list[str] = []

    def scrape(self) -> dict[tuple, float]:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.scrape().get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum over the series of `name` whose labels include `labels` (others free)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.scrape().items() if n == name and wanted <= set(ls))

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"daemon exited: {self.output()}"
            try:
                result = predicate()
            except httpx.HTTPError:
                result = None
            if result:
                return result
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {self.output()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        return code

    def output(self) -> str:
        if self.process.poll() is not None and self.process.stdout:
            self.lines.append(self.process.stdout.read())
        return "".join(self.lines)

    def events(self) -> list[dict]:
        out = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out


@pytest.mark.integration
def test_start_events_name_the_config_and_why(trust):
    daemon = Daemon(trust, "--no-capture")
    try:
        daemon.wait_for(lambda: daemon.scrape(), what="/metrics")
    finally:
        assert daemon.stop() == 0
    said = {e["message"]: (e.get("config"), e.get("config_source")) for e in daemon.events()
            if e.get("message") in ("config_loaded", "running")}
    assert said == {"config_loaded": (str(trust), "from --config"), "running": (str(trust), "from --config")}


@pytest.mark.integration
def test_pcap_source_metrics_reload_and_clean_stop(tmp_path, trust):
    pcap = tmp_path / "facebook-now.pcap"
    shift_to_now(FACEBOOK_PCAP, pcap)
    daemon = Daemon(trust, "--pcap", str(pcap))
    try:
        daemon.wait_for(lambda: daemon.total("social_monitor_accesses_total", school="oak-primary",
                                             zone="lab", platform="facebook") >= 1,
                        what="facebook accesses counted")
        scraped = daemon.scrape()
        assert scraped[("social_monitor_build_info", (("version", "0.1.0"),))] == 1
        assert daemon.value("social_monitor_component_up", component="sensor") == 1
        assert daemon.value("social_monitor_component_up", component="writer") == 1

        # a broken config is rejected with its field-path error; the old one keeps running
        good = trust.read_text()
        trust.write_text(good.replace("timezone: Europe/London", "timezone: Europe/Lundon"))
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: daemon.value("social_monitor_config_reloads_total", result="failure") == 1,
                        what="failed reload counted")
        assert daemon.process.poll() is None
        # a good (and different) one is taken
        trust.write_text(good.replace("retention_days: 30", "retention_days: 31"))
        new_fingerprint = load_config(trust).fingerprint[:12]
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: daemon.value("social_monitor_config_reloads_total", result="success") == 1,
                        what="successful reload counted")
        counted = daemon.total("social_monitor_accesses_total", platform="facebook")
        signals = daemon.total("social_monitor_observations_total", source="sensor", outcome="recorded")
        started = time.monotonic()
        assert daemon.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 10
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
    log = daemon.events()
    messages = [e.get("message") for e in log]
    assert "starting" in messages and "stopped" in messages
    assert any(e.get("message") == "config_reload_rejected" and "trust.timezone" in e.get("error", "")
               for e in log)
    [reloaded] = [e for e in log if e.get("message") == "config_reloaded"]
    assert reloaded["fingerprint"] == new_fingerprint and reloaded["changed"] is True
    with open_store(tmp_path / "store.db", create=False) as store:
        sessions = list(store.sessions())
        assert {s.platform for s in sessions} == {"facebook"}
        # an access is a session: the metric and the store agree, and the signals are more
        assert counted == len(sessions) and signals == sum(s.observations for s in sessions) > counted
        assert all(s.school == "oak-primary" and s.zone == "lab" for s in sessions)
        assert store.verify().ok


@pytest.mark.integration
@pytest.mark.parametrize("suffix", [".pcap", ".pcapng"])
def test_either_capture_format_is_replayed_into_the_store(tmp_path, trust, suffix):
    capture = tmp_path / f"facebook-now{suffix}"
    shift_to_now(FACEBOOK_PCAP, capture)
    daemon = Daemon(trust, "--pcap", str(capture))
    try:
        packets = daemon.wait_for(lambda: daemon.total("social_monitor_packets_total"), what="the file read")
        daemon.wait_for(lambda: daemon.total("social_monitor_accesses_total", platform="facebook"),
                        what="facebook accesses counted")
    finally:
        assert daemon.stop() == 0
    [read] = [e for e in daemon.events() if e.get("message") == "capture_file_read"]
    assert packets == read["packets"] == len(list(read_frames(capture))) and read["parse_errors"] == 0
    with open_store(tmp_path / "store.db", create=False) as store:
        assert {s.platform for s in store.sessions()} == {"facebook"}


@pytest.mark.integration
def test_label_sets_stay_bounded_under_a_flood(tmp_path, trust):
    """10,000 random hostnames and client addresses must not grow the number of series."""
    rng = random.Random(1)
    now = time.time() - 30
    frames = []
    for i in range(10_000):
        client = f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}" if i % 2 else \
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        name = f"{rng.getrandbits(40):x}.facebook.com" if i % 3 == 0 else f"{rng.getrandbits(48):x}.example"
        frames.append((now + i * 0.001, dns_query_frame(client, "192.0.2.53", 1024 + i, name, i)))
    flood = tmp_path / "flood.pcap"
    write_pcap(flood, frames)

    daemon = Daemon(trust, "--pcap", str(flood))
    try:
        daemon.wait_for(lambda: sum(v for (n, _), v in daemon.scrape().items()
                                    if n == "social_monitor_observations_total") >= 10_000,
                        timeout=60, what="the flood to be counted")
        scraped = daemon.scrape()
    finally:
        assert daemon.stop() == 0
    series = [key for key in scraped if key[0].startswith("social_monitor_")]
    # hidden-destination series exist from the start, one per school, zone and kind: the config's size
    hidden = [key for key in series if key[0] == "social_monitor_obscured_flows_total"]
    assert len(hidden) == sum(len(s.zones) for s in load_config(trust).schools) * len(OBSCURED_KINDS)
    assert len(series) - len(hidden) < 120, len(series)  # bounded by config and catalog, not by traffic
    label_values = {value for _, labels in series for _, value in labels}
    assert not any(v.endswith(".example") or v.startswith(("192.168.", "10.")) for v in label_values)


@pytest.mark.integration
def test_crashed_proxy_child_is_restarted_and_counted(tmp_path, trust):
    daemon = Daemon(trust, "--no-capture", proxy=True)
    try:
        daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="proxy") == 1,
                        what="proxy up")
        children = subprocess.run(["pgrep", "-P", str(daemon.process.pid), "-f", "monitor.proxy.launcher"],
                                  capture_output=True, text=True, timeout=5).stdout.split()
        assert len(children) == 1
        # someone saves a broken config (its reload is rejected), then the proxy crashes:
        # the restarted child must come up on the last valid config, not crash-loop
        trust.write_text(trust.read_text().replace("timezone: Europe/London", "timezone: Mars/Base"))
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: daemon.value("social_monitor_config_reloads_total", result="failure") == 1,
                        what="the broken config to be rejected")
        os.kill(int(children[0]), signal.SIGKILL)
        daemon.wait_for(lambda: daemon.value("social_monitor_child_restarts_total", child="proxy") == 1,
                        timeout=30, what="the proxy restart to be counted")

        def proxy_answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", daemon.proxy_port), timeout=1):
                    return True
            except OSError:
                return False

        daemon.wait_for(proxy_answers, timeout=30, what="the restarted proxy to listen")
        time.sleep(2)  # a child that crash-loops would be gone again by now
        assert daemon.value("social_monitor_child_restarts_total", child="proxy") == 1
        assert daemon.value("social_monitor_component_up", component="proxy") == 1
    finally:
        assert daemon.stop() == 0
    assert any(e.get("message") == "proxy_exited" for e in daemon.events())


@pytest.mark.integration
def test_reload_reaches_the_proxy_without_restarting_it(tmp_path, trust):
    """SIGHUP with a good config: the proxy child re-reads it in place; no gap in proxy service."""
    daemon = Daemon(trust, "--no-capture", proxy=True)
    try:
        daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="proxy") == 1,
                        what="proxy up")
        [pid] = subprocess.run(["pgrep", "-P", str(daemon.process.pid), "-f", "monitor.proxy.launcher"],
                               capture_output=True, text=True, timeout=5).stdout.split()
        # a connection open across the reload must survive it
        wait_for_port(daemon.proxy_port, timeout=30)
        held = socket.create_connection(("127.0.0.1", daemon.proxy_port), timeout=5)
        trust.write_text(trust.read_text().replace("retention_days: 30", "retention_days: 31"))
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: daemon.value("social_monitor_config_reloads_total", result="success") == 1,
                        what="the reload to be counted")
        time.sleep(2)  # the child loads the new config in a background thread
        held.sendall(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        assert held.recv(64).startswith(b"HTTP/1.1 502")  # the proxy answered on the old connection
        held.close()
        children = subprocess.run(["pgrep", "-P", str(daemon.process.pid), "-f", "monitor.proxy.launcher"],
                                  capture_output=True, text=True, timeout=5).stdout.split()
        assert children == [pid]
        assert daemon.value("social_monitor_child_restarts_total", child="proxy") == 0
        assert daemon.value("social_monitor_addon_errors_total", hook="reload") == 0
    finally:
        assert daemon.stop() == 0
    messages = [e.get("message") for e in daemon.events()]
    assert messages.count("proxy_started") == 1
    assert "proxy_reload_signalled" in messages and "proxy_config_reloaded" in messages


def proxy_children(daemon: Daemon) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(daemon.process.pid), "-f", "monitor.proxy.launcher"],
                           capture_output=True, text=True, timeout=5).stdout.split()
    return [int(pid) for pid in found]


@pytest.mark.integration
def test_proxy_is_up_only_once_it_listens(tmp_path, trust):
    """Its port taken (EADDRINUSE), the proxy crash-loops: down and counted; up once the port is free."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()  # accepts connections: only the child's own listener may count
    daemon = Daemon(trust, "--no-capture", proxy=True, proxy_port=holder.getsockname()[1])
    try:
        seen: list[float] = []

        def two_restarts() -> bool:
            seen.append(daemon.value("social_monitor_component_up", component="proxy"))
            return daemon.value("social_monitor_child_restarts_total", child="proxy") >= 2

        daemon.wait_for(two_restarts, timeout=60, what="the crash-looping proxy to be restarted twice")
        assert len(seen) >= 5 and set(seen) == {0.0}, seen
        holder.close()
        freed = time.monotonic()
        daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="proxy") == 1,
                        timeout=30, what="the proxy to be up once its port is free")
        assert time.monotonic() - freed < 30
        wait_for_port(daemon.proxy_port, timeout=5)  # up means it answers
    finally:
        holder.close()
        assert daemon.stop() == 0
    messages = [e.get("message") for e in daemon.events()]
    assert messages.count("proxy_exited") >= 2 and messages.count("proxy_listening") == 1


@pytest.mark.integration
def test_sigkilled_daemon_takes_its_proxy_along_and_its_folders_go_at_next_start(tmp_path, trust):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    daemon = Daemon(trust, "--no-capture", proxy=True, env=env)
    child = None
    try:
        daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="proxy") == 1,
                        what="proxy up")
        [child] = proxy_children(daemon)
        folders = sorted(p.name for p in tmp.iterdir())
        pid = daemon.process.pid
        assert [name.split("-")[2:4] for name in folders] == [["metrics", str(pid)], ["run", str(pid)]]
        daemon.process.kill()  # SIGKILL: the daemon runs no code at all
        daemon.process.wait(10)
        assert wait_until_gone(child, timeout=5), "the proxy child outlived its daemon"
        # nothing could remove them; the next start does
        assert sorted(p.name for p in tmp.iterdir()) == folders
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
        if child is not None and not process_gone(child):
            os.kill(child, signal.SIGKILL)  # the test failed: leave no orphan behind
    again = Daemon(trust, "--no-capture", env=env)
    try:
        again.wait_for(lambda: again.value("social_monitor_component_up", component="writer") == 1,
                       what="the next daemon to run")
        left = [p.name for p in tmp.iterdir()]
        assert not any(f"-{pid}-" in name for name in left), left
    finally:
        assert again.stop() == 0
    assert list(tmp.iterdir()) == []  # a clean stop leaves nothing behind


def datagrams(sock: socket.socket, seconds: float) -> list[str]:
    """Every notification that arrives within `seconds`."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return out


@pytest.mark.integration
def test_systemd_notify_and_a_watchdog_that_stops_when_the_writer_dies(tmp_path, trust):
    """As under `Type=notify` + `WatchdogSec=2`: READY, pings, no pings once the writer thread died."""
    from .daemon_faults import FAULT_ENV

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    fault = tmp_path / "kill-the-writer"
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000", FAULT_ENV: str(fault)}
    daemon = Daemon(trust, "--no-capture", proxy=True, env=env, module="tests.daemon_faults")
    try:
        first: list[str] = []
        deadline = time.monotonic() + 30
        while not any(m.startswith("READY=1") for m in first) and time.monotonic() < deadline:
            first += datagrams(notify, 0.5)
        assert any(m.startswith("READY=1\nSTATUS=running") for m in first), daemon.output()[-2000:]
        healthy = datagrams(notify, 3.5)
        assert healthy.count("WATCHDOG=1") >= 3  # one a second: half of WatchdogSec
        daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="proxy") == 1,
                        what="proxy up")
        assert datagrams(notify, 1.5).count("WATCHDOG=1") >= 1  # a running proxy child changes nothing

        fault.touch()
        daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="writer") == 0,
                        what="the dead writer to be noticed")
        withheld = datagrams(notify, 4)  # queued since the fault, and four seconds more
        assert "STATUS=not running: writer" in withheld
        assert withheld[withheld.index("STATUS=not running: writer"):].count("WATCHDOG=1") == 0
        assert daemon.stop() == 0
        assert "STOPPING=1\nSTATUS=stopping" in datagrams(notify, 2)
    finally:
        notify.close()
        if daemon.process.poll() is None:
            daemon.process.kill()
    log = daemon.events()
    assert [e["dead"] for e in log if e.get("message") == "watchdog_withheld"] == [["writer"]]
    assert any(e.get("message") == "writer_failed" for e in log)


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs CAP_NET_RAW")
def test_live_capture_on_loopback(tmp_path, trust):
    """The daemon captures a live interface (loopback: this test's own traffic only)."""
    from .pcapgen import dns_query_frame

    daemon = Daemon(trust, "--interface", "lo")
    try:
        daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="sensor") == 1,
                        what="the sensor to capture")
        dns = dns_query_frame("127.0.0.1", "127.0.0.1", 40000, "www.instagram.com")[34 + 8:]  # DNS only

        def sent_and_counted() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(dns, ("127.0.0.1", 53))  # nobody answers: the query is what is seen
            return daemon.total("social_monitor_accesses_total", platform="instagram",
                                zone="demo-loopback") >= 1

        daemon.wait_for(sent_and_counted, timeout=30, what="a live DNS query to be counted")
    finally:
        assert daemon.stop() == 0
    with open_store(tmp_path / "store.db", create=False) as store:
        [session] = [s for s in store.sessions() if s.platform == "instagram"]
        assert session.device == "DEMO-0001" and "dns" in session.signals



# --- in-process ---------------------------------------------------------------------------------


def test_a_broken_config_stops_the_daemon_before_anything_starts(tmp_path, capsys):
    """Exit 1 with the field named, and no thread, child or temp folder left behind."""
    broken = tmp_path / "trust.yaml"
    broken.write_text(EXAMPLE.read_text().replace("retention_days: 90", "retention_days: yes"))
    daemon = Daemon_(RunOptions(config_path=broken, capture=False, proxy=False))
    assert daemon.run() == 1
    assert "retention_days" in capsys.readouterr().err
    assert daemon.proxy is None and daemon.sinks is None and daemon.runtime_dir is None


@pytest.mark.integration
@pytest.mark.parametrize(("edit", "proxy", "restart_needed"), [
    # a new proxy mode restarts the proxy child at once: the log says so, not "when the service restarts"
    (("proxy_mode: regular", "proxy_mode: transparent"), "restarted", None),
    # the daemon's own metrics endpoint is not restarted by a reload: that one waits for a restart
    (("metrics: 127.0.0.1:9464", "metrics: 127.0.0.1:9465"), "signalled", ["listen.metrics"]),
])
def test_a_reload_says_truthfully_what_restarts(tmp_path, trust, edit, proxy, restart_needed):
    daemon = Daemon(trust, "--no-capture", proxy=True)
    try:
        daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="proxy") == 1,
                        what="proxy up")
        before = proxy_children(daemon)
        assert edit[0] in trust.read_text()
        trust.write_text(trust.read_text().replace(*edit))
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: daemon.value("social_monitor_config_reloads_total", result="success") == 1,
                        what="the reload to be counted")
        daemon.wait_for(lambda: daemon.value("social_monitor_component_up", component="proxy") == 1,
                        what="the proxy up again")
        after = proxy_children(daemon)
    finally:
        assert daemon.stop() == 0
    events = daemon.events()
    [reloaded] = [e for e in events if e.get("message") == "config_reloaded"]
    assert reloaded["proxy"] == proxy
    assert (before == after) is (proxy == "signalled")
    partial = [e["restart_needed"] for e in events if e.get("message") == "config_reload_partial"]
    assert partial == ([restart_needed] if restart_needed else [])
    assert any(e.get("message") == "proxy_restarted" for e in events) is (proxy == "restarted")
