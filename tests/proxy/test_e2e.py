"""End to end: a real mitmdump with the addon, a real client, real local origins, all on loopback.

Each behaviour is checked for both ways of running the proxy: `mitmdump -s
addons/social_monitor.py` and `python -m monitor.proxy.launcher` (the addon built
in, as the daemon runs it).

The client trusts only the test CA of the local HTTPS origin (not mitmproxy's),
so a page that loads proves the TLS was passed through, never decrypted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from monitor.config.loader import load_config
from monitor.store.sqlite import open_store
from monitor.tagging.tagger import Tagger
from tests.proxy_helpers import (
    ADDON_PATH,
    REDIRECT_PATH,
    TEST_CONFIG,
    Origins,
    free_port,
    serve_origins,
    wait_for_port,
)

MITMDUMP = Path(sys.executable).parent / "mitmdump"
pytestmark = pytest.mark.skipif(not MITMDUMP.exists(), reason="mitmdump is not installed in the venv")


@pytest.fixture(scope="module")
def origins(tmp_path_factory) -> Iterator[Origins]:
    with serve_origins(tmp_path_factory.mktemp("certs")) as served:
        yield served


@dataclass
class Proxy:
    port: int
    metrics_port: int
    dir: Path
    proc: subprocess.Popen

    def stop(self) -> str:
        """SIGTERM (the addon flushes its writer in `done`), bounded wait; returns mitmdump's output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return (self.dir / "mitmdump.log").read_text(errors="replace")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metrics_once_stored(self, platform: str, timeout: float = 10.0) -> str:
        """The metrics once the writer has committed (and so counted) an access to `platform`."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.metrics()
            if total(text, "social_monitor_accesses_total", platform=platform) or time.monotonic() > deadline:
                return text
            time.sleep(0.05)


LAUNCHERS = {
    "script": [str(MITMDUMP), "-q", "-s", str(ADDON_PATH)],
    "builtin": [sys.executable, "-m", "monitor.proxy.launcher", "-q"],
}


def start_proxy(tmp: Path, origins: Origins, *extra: str, env: dict[str, str] | None = None,
                launcher: str = "script", idle_gap: int | None = None) -> Proxy:
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp / "devices.csv")
    shutil.copy(TEST_CONFIG, tmp / "config.yaml")
    if idle_gap is not None:
        gap = f"store:\n  idle_gap_seconds: {idle_gap}\n"
        (tmp / "config.yaml").write_text((tmp / "config.yaml").read_text().replace("store:\n", gap, 1))
    port, metrics_port = free_port(), free_port()
    cmd = [
        *LAUNCHERS[launcher],
        "-s", str(REDIRECT_PATH),
        "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", f"confdir={tmp / 'mitmproxy'}",
        "--set", "block_global=false",
        "--set", f"social_monitor_config={tmp / 'config.yaml'}",
        "--set", f"social_monitor_metrics=127.0.0.1:{metrics_port}",
        *extra,
    ]
    full_env = {**os.environ, **origins.env(), **(env or {})}
    log = (tmp / "mitmdump.log").open("wb")
    # started from another directory: the addon must still find `monitor`
    proc = subprocess.Popen(cmd, cwd=tmp, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    proxy = Proxy(port, metrics_port, tmp, proc)
    try:
        wait_for_port(port, proc=proc)
        wait_for_port(metrics_port, proc=proc)
    except Exception:
        print(proxy.stop())
        raise
    return proxy


def client(proxy: Proxy, origins: Origins, auth: str = "") -> httpx.Client:
    verify = ssl.create_default_context(cafile=str(origins.ca))  # the origin's CA only, not mitmproxy's
    return httpx.Client(
        proxy=f"http://{auth}127.0.0.1:{proxy.port}", verify=verify, timeout=10, trust_env=False
    )


def total(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (the others free)."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = set(labels.items())
    return sum(sample.value for family in text_string_to_metric_families(metrics_text)
               for sample in family.samples if sample.name == name and wanted <= set(sample.labels.items()))


def sample(metrics_text: str, line_prefix: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.integration
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_access_is_recorded_and_pages_load_through_pass_through_tls(tmp_path: Path, origins: Origins,
                                                                    launcher: str):
    # lazy upstream connections, as the daemon runs it: the hello comes before the server connection
    proxy = start_proxy(tmp_path, origins, "--set", "proxyauth=jsmith:pw",
                        "--set", "connection_strategy=lazy",
                        "--set", f"social_monitor_events_jsonl={tmp_path / 'events.jsonl'}",
                        launcher=launcher)
    try:
        with client(proxy, origins, auth="jsmith:pw@") as c:
            for _ in range(3):  # keep-alive: one connection, one access
                r = c.get("https://www.tiktok.com/feed")
                assert (r.status_code, r.text) == (200, "hello from www.tiktok.com")
            assert c.get("http://www.tiktok.com/").text == "hello from www.tiktok.com"
            assert c.get("https://www.example.org/").text == "hello from www.example.org"
            assert c.get("http://www.example.org/").text == "hello from www.example.org"
        metrics = proxy.metrics_once_stored("tiktok")
    finally:
        output = proxy.stop()
    assert proxy.proc.returncode == 0, output
    assert "Traceback" not in output, output
    assert "/feed" not in output, output  # hostnames only: no URL reaches the proxy's own output

    with open_store(tmp_path / "store.db", create=False) as store:
        sessions = list(store.sessions())
    assert [s.platform for s in sessions] == ["tiktok"], output  # www.example.org left no record
    (s,) = sessions
    assert s.observations == 2  # the HTTPS connection and the plain HTTP one
    assert (s.school, s.zone, s.owner, s.asset_tag) == (
        "test-school", "loopback-class", "jsmith", "DEMO-0001")
    assert "proxy" in s.signals
    assert set(s.hostnames) == {"www.tiktok.com"}
    when = Tagger(load_config(tmp_path / "config.yaml")).clocks["test-school"].at(s.first_seen)
    assert (s.period, s.period_kind) == (when.period, when.kind)

    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sorted((x["network.protocol"], x["destination.ip"], x["destination.port"], x["user.name"])
                  for x in lines) == [("http", "127.0.0.1", origins.http_port, "jsmith"),
                                      ("tls", "127.0.0.1", origins.https_port, "jsmith")]

    signals = "social_monitor_observations_total"
    for protocol in ("tls", "http"):  # example.org and tiktok, each over TLS and over HTTP: one signal each
        assert total(metrics, signals, source="proxy", protocol=protocol, outcome="not_social") == 1
        assert total(metrics, signals, source="proxy", protocol=protocol, outcome="recorded") == 1
    # two signals, one session: one access, counted by the writer when it inserted the row
    assert total(metrics, "social_monitor_accesses_total", platform="tiktok") == 1
    assert sample(metrics, 'social_monitor_proxy_connections_total{handling="passthrough"}') == 2
    assert sample(metrics, 'social_monitor_proxy_connections_total{handling="plain"}') == 2


@pytest.mark.integration
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_broken_pipeline_does_not_break_the_page(tmp_path: Path, origins: Origins, launcher: str):
    proxy = start_proxy(tmp_path, origins, env={"SM_TEST_BREAK_PIPELINE": "1"}, launcher=launcher)
    try:
        with client(proxy, origins) as c:
            assert c.get("https://www.tiktok.com/").text == "hello from www.tiktok.com"
            assert c.get("http://www.tiktok.com/").text == "hello from www.tiktok.com"
        metrics = proxy.metrics()
    finally:
        proxy.stop()
    # the TLS hello is observed (and fails) at next_layer; tls_clienthello then passes it through
    assert sample(metrics, 'social_monitor_addon_errors_total{hook="next_layer"}') == 1
    assert sample(metrics, 'social_monitor_addon_errors_total{hook="responseheaders"}') == 1
    with open_store(tmp_path / "store.db", create=False) as store:
        assert list(store.sessions()) == []



# --- transparent mode, in a network namespace of its own ---------------------------------------

NETNS_RULES = """
table ip social_monitor_test {{
    chain output {{
        # locally generated traffic to the fake "internet" address 127.0.0.2 goes to the proxy
        type nat hook output priority -100; policy accept;
        ip daddr 127.0.0.2 tcp dport {{ 80, 443 }} redirect to :{port}
    }}
}}
"""


@pytest.mark.integration
@pytest.mark.netns
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None
    or shutil.which("curl") is None,
    reason="needs root, ip, nft and curl to build a network namespace",
)
def test_transparent_mode_in_a_network_namespace():
    """Re-runs the inner test below inside a fresh netns, where nftables may redirect freely."""
    name = f"sm-proxy-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=30)
        out = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"{__file__}::test_transparent_inner"],
            cwd=Path(__file__).resolve().parents[2], env={**os.environ, "SM_IN_NETNS": name},
            capture_output=True, text=True, timeout=120,
        )
    finally:
        subprocess.run(["ip", "netns", "delete", name], timeout=30)
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout + out.stderr


@pytest.mark.integration
@pytest.mark.skipif(not os.environ.get("SM_IN_NETNS"), reason="run by the network namespace test above")
def test_transparent_inner(tmp_path: Path, origins: Origins):
    proxy = start_proxy(tmp_path, origins, "--mode", "transparent")
    rules = tmp_path / "rules.nft"
    rules.write_text(NETNS_RULES.format(port=proxy.port))
    try:
        subprocess.run(["nft", "-f", str(rules)], check=True, timeout=30)
        for url in ("https://www.tiktok.com/", "http://www.tiktok.com/", "https://www.example.org/"):
            host, port = url.split("/")[2], 443 if url.startswith("https") else 80
            out = subprocess.run(
                ["curl", "-sS", "--max-time", "10", "--noproxy", "*", "--cacert", str(origins.ca),
                 "--resolve", f"{host}:{port}:127.0.0.2", url],
                capture_output=True, text=True, timeout=30,
            )
            assert out.stdout == f"hello from {host}", out.stderr  # TLS verified: passed through
        metrics = proxy.metrics_once_stored("tiktok")
    finally:
        output = proxy.stop()
    with open_store(tmp_path / "store.db", create=False) as store:
        sessions = list(store.sessions())
    assert [(s.platform, s.observations, s.zone) for s in sessions] == [
        ("tiktok", 2, "loopback-class")], output
    assert sample(metrics, 'social_monitor_proxy_connections_total{handling="passthrough"}') == 2
    assert total(metrics, "social_monitor_observations_total", source="proxy", outcome="not_social") == 1
    # HTTPS and HTTP: one access
    assert total(metrics, "social_monitor_accesses_total", platform="tiktok") == 1


@pytest.mark.integration
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_bad_config_stops_mitmdump_naming_the_field(tmp_path: Path, launcher: str):
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp_path / "devices.csv")
    text = TEST_CONFIG.read_text().replace("cidrs: [127.0.0.0/8", "cidrs: [127.0.0.300/8", 1)
    (tmp_path / "config.yaml").write_text(text)
    out = subprocess.run(
        [*LAUNCHERS[launcher], "--listen-host", "127.0.0.1", "--listen-port", "0",
         "--set", f"confdir={tmp_path / 'mitmproxy'}",
         "--set", f"social_monitor_config={tmp_path / 'config.yaml'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0
    assert "schools[0].zones[0].cidrs[0]: '127.0.0.300/8' is not a network" in out.stdout + out.stderr


@pytest.mark.integration
def test_proxy_command_runs_the_configured_proxy_and_refuses_flow_filters(tmp_path: Path, origins: Origins):
    """`social-monitor proxy`: listen address and mode from the config, mitmdump options after `--`."""
    shutil.copy(TEST_CONFIG.parent / "devices.csv", tmp_path / "devices.csv")
    port = free_port()
    (tmp_path / "config.yaml").write_text(TEST_CONFIG.read_text() + f"listen:\n  proxy: 127.0.0.1:{port}\n")
    command = [str(Path(sys.executable).parent / "social-monitor"), "proxy", "--config",
               str(tmp_path / "config.yaml"), "--", "--set", f"confdir={tmp_path / 'mitmproxy'}"]
    refused = subprocess.run([*command, "~d example.org"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 1 and "this proxy prints no flows to filter" in refused.stderr

    env = {**os.environ, **origins.env()}
    log = (tmp_path / "mitmdump.log").open("wb")
    proc = subprocess.Popen([*command, "-s", str(REDIRECT_PATH)], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    proxy = Proxy(port, 0, tmp_path, proc)
    try:
        wait_for_port(port, proc=proc)
        with client(proxy, origins) as c:
            assert c.get("https://www.tiktok.com/").text == "hello from www.tiktok.com"
    finally:
        output = proxy.stop()
    assert proc.returncode == 0, output
    with open_store(tmp_path / "store.db", create=False) as store:
        assert [s.platform for s in store.sessions()] == ["tiktok"], output


@pytest.mark.integration
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_sighup_reloads_the_config_without_dropping_connections(tmp_path: Path, origins: Origins,
                                                                 launcher: str):
    """A broken config is refused and counted, the old one stays; a good one applies to new accesses."""
    proxy = start_proxy(tmp_path, origins, launcher=launcher)
    config = tmp_path / "config.yaml"
    good = config.read_text()

    def wait_for_log(message: str, count: int) -> None:
        deadline = time.monotonic() + 30
        while (tmp_path / "mitmdump.log").read_text(errors="replace").count(message) < count:
            assert proxy.proc.poll() is None and time.monotonic() < deadline, f"no {message}"
            time.sleep(0.1)

    try:
        with client(proxy, origins) as c:
            assert c.get("http://www.tiktok.com/").text == "hello from www.tiktok.com"
            config.write_text(good.replace("cidrs: [127.0.0.0/8", "cidrs: [127.0.0.300/8", 1))
            proxy.proc.send_signal(signal.SIGHUP)
            wait_for_log('"proxy_config_reload_rejected"', 1)
            assert sample(proxy.metrics(), 'social_monitor_addon_errors_total{hook="reload"}') == 1

            config.write_text(good.replace("loopback-class", "loopback-renamed"))
            proxy.proc.send_signal(signal.SIGHUP)
            wait_for_log('"proxy_config_reloaded"', 1)
            # the keep-alive connection opened before both reloads still carries requests
            assert c.get("http://www.tiktok.com/again").text == "hello from www.tiktok.com"
            assert c.get("https://www.tiktok.com/").text == "hello from www.tiktok.com"  # a new access
    finally:
        output = proxy.stop()
    assert proxy.proc.returncode == 0, output
    assert "schools[0].zones[0].cidrs[0]: '127.0.0.300/8' is not a network" in output
    with open_store(tmp_path / "store.db", create=False) as store:
        zones = sorted((s.zone, s.observations) for s in store.sessions())
    assert zones == [("loopback-class", 1), ("loopback-renamed", 1)], output


def _continuations(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [x for x in rows if x.get("social.continuation")]


@pytest.mark.integration
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_long_lived_connection_keeps_its_session_alive(tmp_path: Path, origins: Origins, launcher: str):
    """A TLS connection held open through the proxy for 4 s, with a 2 s idle gap (a tick a second):
    continued while open, and its session lasts until it closed, with one observation."""
    events = tmp_path / "events.jsonl"
    proxy = start_proxy(tmp_path, origins, "--set", f"social_monitor_events_jsonl={events}",
                        launcher=launcher, idle_gap=2)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
            raw.sendall(b"CONNECT www.tiktok.com:443 HTTP/1.1\r\nHost: www.tiktok.com:443\r\n\r\n")
            assert raw.recv(4096).startswith(b"HTTP/1.1 200")
            verify = ssl.create_default_context(cafile=str(origins.ca))  # passed through: the origin's CA
            with verify.wrap_socket(raw, server_hostname="www.tiktok.com") as tls_socket:
                opened = time.time()
                deadline = time.monotonic() + 10
                while not _continuations(events) and time.monotonic() < deadline:
                    time.sleep(0.1)
                open_for = time.time() - opened
                assert _continuations(events), "no continuation while the connection was open"
                time.sleep(max(0.0, 4.0 - open_for))
                tls_socket.sendall(b"GET /late HTTP/1.1\r\nHost: www.tiktok.com\r\nConnection: close\r\n\r\n")
                assert tls_socket.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(0.5)  # the proxy sees the client leave
    finally:
        output = proxy.stop()
    assert proxy.proc.returncode == 0, output
    assert "Traceback" not in output, output
    with open_store(tmp_path / "store.db", create=False) as store:
        sessions = list(store.sessions())
        assert store.verify().ok
    assert [(s.platform, s.observations) for s in sessions] == [("tiktok", 1)], output
    assert sessions[0].last_seen - sessions[0].first_seen >= 3.5  # until it closed, not its first second
