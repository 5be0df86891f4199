#!/usr/bin/env python3
"""What the social_monitor addon costs mitmproxy: bare mitmdump vs mitmdump with the addon, side by side.

    .venv/bin/python bench/proxy_bench.py [--duration 3] [--rounds 10] [--null-addon]

The proxies run at once on loopback, in regular (explicit) mode, in front of
one local nginx: bare mitmdump; `builtin`, the addon as the daemon runs it
(`python -m monitor.proxy.launcher`); `script`, `mitmdump -s
addons/social_monitor.py`; and with --null-addon `null`, a script that only
passes TLS through from `tls_clienthello` (what loading any script costs).
The measurements alternate between them round by round, so load from other
processes on the machine hits all alike. Reported per proxy (the median over
rounds):

* plain HTTP: requests/s and p50/p99 latency from `wrk` (32 keep-alive
  connections, absolute-form requests with `Host: www.tiktok.com`, so the
  addon classifies every request as TikTok from a trust device);
* pass-through HTTPS: new connections/s and p50/p99 latency per connection
  (CONNECT, TLS handshake with SNI www.tiktok.com verified against nginx's own
  test CA, one GET, close) from a bounded asyncio client in this process.

Also per proxy: its own CPU time (all threads, from /proc) per request or
connection, which other load on the machine disturbs less than throughput;
each proxy's ratio to bare, also paired round by round; and the addon's hook
cost measured in-process. On a shared VM rounds vary by 10 to 20%, more than
the 2% the addon may cost: bench/proxy_instructions.py counts instructions
instead, which repeat to within a fraction of a percent.

The addon side writes to a real store (in the work directory) through its
writer thread, as in production. Needs `nginx` and `wrk`: when missing and run
as root on Debian, this script installs `nginx-light` and `wrk` with apt-get
(benchmark-only packages; the tests do not need them). Results go to
bench/out/proxy_bench.json. Every loop is bounded by count or time; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.proxy_helpers import free_port, make_ca_and_leaf, wait_for_port  # noqa: E402

MITMDUMP = Path(sys.executable).parent / "mitmdump"
PROXY_CPUS: set[int] | None = None  # set by --pin (the default on 2+ cores)
ADDON = ROOT / "addons" / "social_monitor.py"
TEST_CONFIG = ROOT / "tests" / "data" / "proxy" / "config.yaml"
HOSTNAME = "www.tiktok.com"
OUT = ROOT / "bench" / "out" / "proxy_bench.json"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 200 "hello\\n"; }}
    }}
}}
"""

WRK_LUA = """
wrk.method = "GET"
wrk.path = "http://127.0.0.1:{http_port}/"
wrk.headers["Host"] = "{hostname}"
"""


@dataclass
class Result:
    rate: float  # requests/s (http) or connections/s (https)
    p50_ms: float
    p99_ms: float
    errors: int
    ops: int = 0  # requests or connections completed
    cpu_us_per_op: float = 0.0  # mitmdump's own CPU (all threads) per request or connection


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc: what it cost, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ensure_tools(tools: Sequence[str] = ("nginx", "wrk")) -> None:
    """Install the benchmark-only Debian packages that provide `tools`, when missing and run as root."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    packages = ["nginx-light" if m == "nginx" else m for m in missing]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(f"{Path(sys.argv[0]).name}: needs {', '.join(missing)} "
                 f"(Debian: apt-get install {' '.join(packages)})")
    print(f"installing benchmark-only Debian packages: {' '.join(packages)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL, check=True)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def start_mitmdump(work: Path, name: str, extra: list[str]) -> tuple[subprocess.Popen, int]:
    """`extra` starting with "-m": the daemon's proxy (python -m monitor.proxy.launcher), else mitmdump."""
    port = free_port()
    builtin = extra[:1] == ["-m"]
    cmd = [
        *([sys.executable, *extra[:2]] if builtin else [str(MITMDUMP)]), "-q",
        "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", "block_global=false",
        # the built-in proxy has no flow printer to quieten
        *([] if builtin else ["--set", "flow_detail=0"]),
        "--set", f"confdir={work / ('mitmproxy-' + name)}",
        *(extra[2:] if builtin else extra),
    ]
    log = (work / f"mitmdump-{name}.log").open("wb")
    pin = (lambda: os.sched_setaffinity(0, PROXY_CPUS)) if PROXY_CPUS else None
    proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin)
    wait_for_port(port, proc=proc)
    return proc, port


def parse_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(proxy_port: int, lua: Path, duration: float, connections: int) -> Result:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency", "--timeout", "5s",
         "-s", str(lua), f"http://127.0.0.1:{proxy_port}"],
        capture_output=True, text=True, timeout=duration + 30, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    ops = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = parse_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = parse_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    return Result(rate, p50, p99, errors, ops)


async def one_connection(proxy_port: int, https_port: int, tls: ssl.SSLContext) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    try:
        target = f"127.0.0.1:{https_port}"
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(head[:40])
        await writer.start_tls(tls, server_hostname=HOSTNAME)
        writer.write(f"GET / HTTP/1.1\r\nHost: {HOSTNAME}\r\nConnection: close\r\n\r\n".encode())
        body = await reader.read(4096)
        if not body.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(body[:40])
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def https_load(proxy_port: int, https_port: int, ca: Path, duration: float, workers: int) -> Result:
    tls = ssl.create_default_context(cafile=str(ca))  # nginx's test CA: proves the TLS was passed through
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < deadline:  # bounded by time
            started = time.perf_counter()
            try:
                await asyncio.wait_for(one_connection(proxy_port, https_port, tls), timeout=5)
            except (TimeoutError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.monotonic() - started
    latencies.sort()
    if not latencies:
        return Result(0.0, 0.0, 0.0, errors)
    return Result(
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        errors,
        len(latencies),
    )


def hook_costs(work: Path, count: int = 3000) -> dict[str, float]:
    """CPU microseconds (all threads, incl. the store writer) the addon adds per request and per connection.

    Measured in this process through mitmproxy's test harness with a real
    ClientHello and a real store, so the figure does not depend on what else
    the machine is running as much as throughput does."""
    import importlib.util

    from mitmproxy.proxy import context, events, layer, layers
    from mitmproxy.test import taddons, tflow, tutils

    from tests.proxy_helpers import client_hello_record

    spec = importlib.util.spec_from_file_location("social_monitor_bench", ADDON)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    hook_dir = work / "hooks"
    hook_dir.mkdir()
    shutil.copy(TEST_CONFIG, hook_dir / "config.yaml")
    shutil.copy(TEST_CONFIG.parent / "devices.csv", hook_dir / "devices.csv")
    addon = module.SocialMonitor()
    out: dict[str, float] = {}
    with taddons.context(addon) as tctx:
        tctx.configure(addon, social_monitor_config=str(hook_dir / "config.yaml"))
        flow = tflow.tflow(req=tutils.treq(host="127.0.0.1", port=80), resp=True)
        flow.request.headers["Host"] = HOSTNAME
        addon.responseheaders(flow)
        started = time.process_time()
        for _ in range(count * 10):
            addon.responseheaders(flow)
        out["http_request_us"] = (time.process_time() - started) * 1e6 / (count * 10)

        # a new TLS connection as the proxy sees it: its hello at next_layer, then the disconnect
        record = client_hello_record(HOSTNAME)

        def connection(i: int, hook: bool = True) -> None:
            c = tflow.tclient_conn()
            c.peername = ("127.0.0.1", 1024 + i)
            ctx = context.Context(c, tctx.options)
            ctx.server.address = ctx.server.peername = ("127.0.0.1", 443)
            nl = layer.NextLayer(ctx)
            nl.events.append(events.DataReceived(c, record))
            if not hook:  # the harness alone: what bare mitmdump's own pass-through builds too
                nl.layer = layers.TCPLayer(ctx, ignore=True)
                return
            addon.next_layer(nl)
            assert nl.layer is not None, "not passed through at next_layer"
            addon.client_disconnected(c)

        connection(count)  # first-call work out of the figure
        started = time.process_time()
        for i in range(count):
            connection(i, hook=False)
        harness = time.process_time() - started
        started = time.process_time()
        for i in range(count):
            connection(i)
        addon.sink.store.flush(30)
        out["tls_connection_us"] = (time.process_time() - started - harness) * 1e6 / count
        addon.done()
    return out


def median_result(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.rate for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
        sum(r.ops for r in results),
        statistics.median(r.cpu_us_per_op for r in results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (whole)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds per proxy")
    parser.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections")
    parser.add_argument("--https-workers", type=int, default=16, help="concurrent HTTPS clients")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, store)")
    parser.add_argument("--null-addon", action="store_true",
                        help="also measure bench/null_passthrough.py (mitmproxy's own hook-path cost)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the proxies to CPU 0 and the load (wrk, nginx, clients) to CPU 1")
    args = parser.parse_args()
    ensure_tools()
    global PROXY_CPUS
    if not args.no_pin and len(os.sched_getaffinity(0)) >= 2:
        # the proxy under test gets a core to itself; the load generators and origin share the
        # other, so a round measures the proxy rather than which process the scheduler favoured
        cpus = sorted(os.sched_getaffinity(0))
        PROXY_CPUS = {cpus[0]}
        os.sched_setaffinity(0, set(cpus[1:]))  # this process, nginx and wrk inherit it
        print(f"pinned: proxies on CPU {cpus[0]}, load and origin on CPU(s) {cpus[1:]}")

    work = Path(tempfile.mkdtemp(prefix="sm-proxy-bench-"))
    shutil.copy(TEST_CONFIG, work / "config.yaml")
    shutil.copy(TEST_CONFIG.parent / "devices.csv", work / "devices.csv")
    ca, cert, key = make_ca_and_leaf([HOSTNAME], work)
    http_port, https_port = free_port(), free_port()
    (work / "nginx.conf").write_text(
        NGINX_CONF.format(work=work, http_port=http_port, https_port=https_port, cert=cert, key=key)
    )
    lua = work / "absolute.lua"
    lua.write_text(WRK_LUA.format(http_port=http_port, hostname=HOSTNAME))

    procs: list[subprocess.Popen] = []
    try:
        nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        procs.append(nginx)
        wait_for_port(http_port, proc=nginx)
        wait_for_port(https_port, proc=nginx)
        variants = {
            # bare mitmdump passes TLS through only for hosts it is told to ignore
            "bare": ["--ignore-hosts", rf"^127\.0\.0\.1:{https_port}$"],
            # the addon as the daemon runs it: built into mitmdump's command line (monitor/proxy/launcher.py)
            "builtin": ["-m", "monitor.proxy.launcher",
                        "--set", f"social_monitor_config={work / 'config.yaml'}"],
            # the addon as a script: mitmdump -s addons/social_monitor.py
            "script": ["-s", str(ADDON), "--set", f"social_monitor_config={work / 'config.yaml'}"],
        }
        if args.null_addon:
            variants["null"] = ["-s", str(ROOT / "bench" / "null_passthrough.py")]
        ports: dict[str, int] = {}
        pids: dict[str, int] = {}
        for name, extra in variants.items():
            proc, ports[name] = start_mitmdump(work, name, extra)
            procs.append(proc)
            pids[name] = proc.pid
        print(f"work dir {work}; nginx :{http_port}/:{https_port}; mitmdump "
              + ", ".join(f"{n} :{p}" for n, p in ports.items()), flush=True)

        # warm each up (imports, first TLS handshakes) before measuring
        for port in ports.values():
            run_wrk(port, lua, 1, 4)
            asyncio.run(https_load(port, https_port, ca, 1.0, 4))

        raw: dict[str, dict[str, list[Result]]] = {k: {"http": [], "https": []} for k in ports}
        for round_no in range(args.rounds):
            order = list(ports) if round_no % 2 == 0 else list(reversed(ports))
            for kind in ("http", "https"):
                for name in order:
                    cpu_before = cpu_seconds(pids[name])
                    if kind == "http":
                        r = run_wrk(ports[name], lua, args.duration, args.connections)
                    else:
                        r = asyncio.run(
                            https_load(ports[name], https_port, ca, args.duration, args.https_workers)
                        )
                    r.cpu_us_per_op = (cpu_seconds(pids[name]) - cpu_before) * 1e6 / max(1, r.ops)
                    raw[name][kind].append(r)
                    unit = "req/s" if kind == "http" else "conn/s"
                    print(f"round {round_no + 1} {kind:5} {name:5}: {r.rate:8.1f} {unit}  "
                          f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:7.2f} ms  "
                          f"cpu {r.cpu_us_per_op:6.0f} us/op  errors {r.errors}", flush=True)
    finally:
        for proc in reversed(procs):
            stop(proc)

    sessions = None
    try:
        from monitor.store.sqlite import open_store

        with open_store(work / "store.db", create=False) as store:
            sessions = sum(s.observations for s in store.sessions())
    except Exception as exc:  # the figures stand without it; say why it is missing
        print(f"could not read the addon's store: {exc!r}")

    hooks = hook_costs(work)
    summary = {name: {kind: median_result(rs) for kind, rs in kinds.items()} for name, kinds in raw.items()}
    kinds = ("http", "https")
    others = [n for n in summary if n != "bare"]
    # capacity: operations per CPU-second of the proxy; paired: each proxy against bare measured
    # back to back in the same round, so a burst of load from other processes hits both of the pair
    ratio = {n: {k: summary[n][k].rate / summary["bare"][k].rate for k in kinds} for n in others}
    cpu_ratio = {n: {k: summary["bare"][k].cpu_us_per_op / summary[n][k].cpu_us_per_op for k in kinds}
                 for n in others}
    paired = {
        n: {
            k: {
                "rate": statistics.median(a.rate / b.rate for a, b in zip(raw[n][k], raw["bare"][k],
                                                                          strict=True)),
                "cpu": statistics.median(b.cpu_us_per_op / a.cpu_us_per_op for a, b in
                                         zip(raw[n][k], raw["bare"][k], strict=True)),
            }
            for k in kinds
        }
        for n in others
    }
    print("\nmedian of", args.rounds, "rounds; ratios are x/bare")
    names = list(summary)
    print(f"{'':26}" + "".join(f"{n:>18}" for n in names))
    for kind, unit in (("http", "req/s"), ("https", "conn/s")):
        label = "plain HTTP" if kind == "http" else "pass-through HTTPS"
        print(f"{label + ' ' + unit:26}" + "".join(f"{summary[n][kind].rate:>18.1f}" for n in names))
        print(f"{'  p50 / p99 ms':26}" + "".join(
            f"{f'{summary[n][kind].p50_ms:.1f} / {summary[n][kind].p99_ms:.1f}':>18}" for n in names))
        print(f"{'  CPU us per op':26}" + "".join(f"{summary[n][kind].cpu_us_per_op:>18.0f}" for n in names))
        for label, values in (("  throughput ratio", [ratio[n][kind] for n in others]),
                              ("  paired, median", [paired[n][kind]["rate"] for n in others]),
                              ("  CPU capacity ratio", [cpu_ratio[n][kind] for n in others])):
            print(f"{label:26}{'':>18}" + "".join(f"{v:>18.3f}" for v in values))
    print(f"observations recorded by the addon's store: {sessions}")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    http_share = hooks["http_request_us"] / summary["bare"]["http"].cpu_us_per_op
    tls_share = hooks["tls_connection_us"] / summary["bare"]["https"].cpu_us_per_op
    print(f"addon CPU in-process: {hooks['http_request_us']:.1f} us per HTTP request on a seen connection "
          f"({http_share:.2%} of bare's CPU per request); {hooks['tls_connection_us']:.1f} us per new "
          f"TLS connection incl. store write ({tls_share:.2%} of bare's CPU per connection)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "args": vars(args),
        "rounds": {n: {k: [asdict(r) for r in rs] for k, rs in kinds.items()} for n, kinds in raw.items()},
        "median": {n: {k: asdict(r) for k, r in kinds.items()} for n, kinds in summary.items()},
        "ratio_vs_bare": ratio,
        "cpu_capacity_ratio_vs_bare": cpu_ratio,
        "paired_median_ratio_vs_bare": paired,
        "loadavg_end": os.getloadavg(),
        "store_observations": sessions,
        "addon_hook_cpu_us": hooks,
    }, indent=2))
    print(f"written {OUT}")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
