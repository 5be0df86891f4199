#!/usr/bin/env python3
"""What the social_monitor addon costs mitmproxy, in CPU instructions: bare mitmdump vs with the addon.

    .venv/bin/python bench/proxy_instructions.py [--windows 5] [--requests 200] [--connections 60]

Throughput on a shared 2-core VM moves by 10 to 20% between rounds
(bench/proxy_bench.py), far more than the 2% the addon may cost. Instructions
do not: every proxy runs under valgrind's callgrind, which counts the
instructions the whole process (all threads, the addon's store writer
included) executes while a fixed load passes through it. The same proxy
measured twice agrees to about 0.3%.

Each proxy starts with instrumentation off; after a warm-up (imports, first
connections, the first store write) the benchmark measures windows one at a
time: zero the counters, switch instrumentation on, send the load, dump,
switch off. Per window:

* plain HTTP: `--requests` requests, absolute-form with `Host: www.tiktok.com`,
  over 4 keep-alive connections opened in the warm-up (the steady state that
  wrk measures: the access was recorded at the first request);
* pass-through HTTPS: `--connections` new connections, each CONNECT, a TLS
  handshake with SNI www.tiktok.com verified against the origin's own test CA,
  one GET and close: each is a new access that the addon tags and stores.

Proxies compared (all `--set flow_detail=0`, regular mode, one nginx origin):
bare mitmdump; `python -m monitor.proxy.launcher` (the addon built in, as the
daemon runs it); `mitmdump -s addons/social_monitor.py`; and
`mitmdump -s bench/null_passthrough.py`, a script that does nothing but pass
TLS through, which shows what loading any script costs. They run two at a
time (valgrind runs a process on one core). Figures: instructions per request
or connection (median and mean over windows; a window with a full garbage
collection shows as the max), and bare's instructions divided by each
proxy's, the share of bare's capacity it keeps. Results: bench/out/proxy_instructions.json.
Needs valgrind and nginx: when missing and run as root on Debian, it installs
`valgrind` and `nginx-light` (benchmark-only packages). Loopback only; every
loop is bounded by count and every wait by time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_bench import HOSTNAME, NGINX_CONF, TEST_CONFIG, ensure_tools, stop  # noqa: E402
from tests.proxy_helpers import free_port, make_ca_and_leaf, wait_for_port  # noqa: E402

OUT = ROOT / "bench" / "out" / "proxy_instructions.json"
HTTP_CONNECTIONS = 4


@dataclass
class Variant:
    name: str
    command: list[str]  # after `python`
    http: list[int] = field(default_factory=list)  # instructions per window
    https: list[int] = field(default_factory=list)


def variants(work: Path, null: bool, https_port: int) -> list[Variant]:
    addon_opts = ["--set", f"social_monitor_config={work / 'config.yaml'}"]
    mitmdump = ["-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]
    found = [
        # bare mitmdump passes TLS through only for hosts it is told to ignore, decided from the
        # CONNECT alone: cheaper than reading the TLS hello, which the addon must do for the SNI
        Variant("bare", [*mitmdump, "--ignore-hosts", rf"^127\.0\.0\.1:{https_port}$"]),
        Variant("builtin", ["-m", "monitor.proxy.launcher", *addon_opts]),
        Variant("script", [*mitmdump, "-s", str(ROOT / "addons" / "social_monitor.py"), *addon_opts]),
    ]
    if null:
        found.append(Variant("null", [*mitmdump, "-s", str(ROOT / "bench" / "null_passthrough.py")]))
    return found


class Proxy:
    """One proxy under callgrind, instrumentation off until a window switches it on."""

    def __init__(self, variant: Variant, work: Path):
        self.variant = variant
        self.dir = work / variant.name
        self.dir.mkdir()
        self.port = free_port()
        self.out = self.dir / "callgrind.out"
        cmd = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.out}",
            sys.executable, *variant.command,
            "-q", "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
            "--set", "block_global=false", "--set", f"confdir={self.dir / 'mitmproxy'}",
        ]
        if variant.name != "builtin":
            cmd += ["--set", "flow_detail=0"]  # the built-in proxy has no flow printer to quieten
        self.log = (self.dir / "proxy.log").open("wb")
        # cwd: the addon's store (store.path in the test config) lands in the shared work dir
        self.proc = subprocess.Popen(cmd, cwd=work, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=300, proc=self.proc)
        self.dumps = 0

    def control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.proc.pid)], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def window(self, load) -> int:
        """Instructions the proxy executed while `load()` ran."""
        self.control("--zero")
        self.control("--instr=on")
        load()
        self.control("--dump")
        self.control("--instr=off")
        self.dumps += 1
        dump = Path(f"{self.out}.{self.dumps}")
        for line in dump.read_text().splitlines():
            if line.startswith("summary:"):
                dump.unlink()
                return int(line.split()[1])
        raise RuntimeError(f"{dump}: no summary line")

    def close(self) -> None:
        stop(self.proc, timeout=60)
        self.log.close()


def read_response(sock_file) -> None:
    status = sock_file.readline()
    if not status.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"unexpected response {status[:60]!r}")
    length = 0
    while (line := sock_file.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    sock_file.read(length)


class HttpClients:
    """Keep-alive connections through the proxy, each with one request in flight at a time."""

    def __init__(self, proxy_port: int, origin_port: int, count: int):
        self.request = (f"GET http://127.0.0.1:{origin_port}/ HTTP/1.1\r\n"
                        f"Host: {HOSTNAME}\r\n\r\n").encode()
        self.socks = [socket.create_connection(("127.0.0.1", proxy_port), timeout=300) for _ in range(count)]
        self.files = [s.makefile("rb") for s in self.socks]

    def send(self, requests: int) -> None:
        for _ in range(requests // len(self.socks)):  # bounded by count
            for sock in self.socks:
                sock.sendall(self.request)
            for f in self.files:
                read_response(f)

    def close(self) -> None:
        for f, s in zip(self.files, self.socks, strict=True):
            f.close()
            s.close()


def https_connections(proxy_port: int, origin_port: int, tls: ssl.SSLContext, count: int) -> None:
    for _ in range(count):  # bounded by count
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=300) as raw:
            target = f"127.0.0.1:{origin_port}"
            raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = raw.recv(4096)
                if not chunk:
                    raise ConnectionError("proxy closed the CONNECT")
                head += chunk
            if not head.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(head[:60])
            with tls.wrap_socket(raw, server_hostname=HOSTNAME) as conn:  # verified: passed through
                conn.sendall(f"GET / HTTP/1.1\r\nHost: {HOSTNAME}\r\nConnection: close\r\n\r\n".encode())
                with conn.makefile("rb") as f:
                    read_response(f)


def measure(variant: Variant, work: Path, http_port: int, https_port: int, tls: ssl.SSLContext,
            args: argparse.Namespace) -> Variant:
    started = time.monotonic()
    proxy = Proxy(variant, work)
    try:
        clients = HttpClients(proxy.port, http_port, HTTP_CONNECTIONS)
        clients.send(40)  # warm-up: imports, the first access recorded
        https_connections(proxy.port, https_port, tls, 10)
        for _ in range(args.windows):
            variant.http.append(proxy.window(lambda: clients.send(args.requests)))
        clients.close()
        for _ in range(args.windows):
            variant.https.append(proxy.window(
                lambda: https_connections(proxy.port, https_port, tls, args.connections)))
    finally:
        proxy.close()
    print(f"{variant.name}: measured in {time.monotonic() - started:.0f} s", flush=True)
    return variant


def per_op(counts: list[int], ops: int) -> dict[str, float]:
    return {
        "median": statistics.median(counts) / ops,
        "mean": statistics.fmean(counts) / ops,
        "min": min(counts) / ops,
        "max": max(counts) / ops,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=5, help="measured windows per kind and proxy")
    parser.add_argument("--requests", type=int, default=200, help="plain-HTTP requests per window")
    parser.add_argument("--connections", type=int, default=60, help="HTTPS connections per window")
    parser.add_argument("--null-addon", action="store_true", help="also measure bench/null_passthrough.py")
    parser.add_argument("--parallel", type=int, default=min(2, os.cpu_count() or 1),
                        help="proxies measured at once (one core each)")
    args = parser.parse_args()
    ensure_tools(["nginx", "valgrind"])

    work = Path(tempfile.mkdtemp(prefix="sm-proxy-instr-"))
    shutil.copy(TEST_CONFIG, work / "config.yaml")
    shutil.copy(TEST_CONFIG.parent / "devices.csv", work / "devices.csv")
    ca, cert, key = make_ca_and_leaf([HOSTNAME], work)
    tls = ssl.create_default_context(cafile=str(ca))
    http_port, https_port = free_port(), free_port()
    (work / "nginx.conf").write_text(
        NGINX_CONF.format(work=work, http_port=http_port, https_port=https_port, cert=cert, key=key))
    nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(http_port, proc=nginx)
        wait_for_port(https_port, proc=nginx)
        todo = variants(work, args.null_addon, https_port)
        print(f"work dir {work}; {len(todo)} proxies under callgrind, {args.parallel} at a time; "
              f"{args.windows} windows of {args.requests} requests and of {args.connections} connections",
              flush=True)
        with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
            done = list(pool.map(lambda v: measure(v, work, http_port, https_port, tls, args), todo))
    finally:
        nginx.send_signal(signal.SIGTERM)
        nginx.wait(timeout=30)

    bare = done[0]
    results: dict[str, dict] = {}
    print(f"\ninstructions per operation, {args.windows} windows each (median; mean; min-max)")
    print(f"{'':10}{'plain HTTP per request':>44}{'bare/x':>8}{'pass-through HTTPS per connection':>48}"
          f"{'bare/x':>8}")
    for v in done:
        http = per_op(v.http, args.requests)
        https = per_op(v.https, args.connections)
        results[v.name] = {
            "http_per_request": http,
            "https_per_connection": https,
            "capacity_vs_bare": {
                "http": per_op(bare.http, args.requests)["median"] / http["median"],
                "https": per_op(bare.https, args.connections)["median"] / https["median"],
            },
            "windows": asdict(v),
        }
        cap = results[v.name]["capacity_vs_bare"]

        def fmt(s: dict[str, float]) -> str:
            m = {k: v / 1e6 for k, v in s.items()}
            return f"{m['median']:.3f}M; {m['mean']:.3f}M; {m['min']:.3f}-{m['max']:.3f}M"

        print(f"{v.name:10}{fmt(http):>44}{cap['http']:>8.3f}{fmt(https):>48}{cap['https']:>8.3f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"written {OUT}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
