#!/usr/bin/env python3
"""Live sensor benchmark: replay the mix into a veth pair, find the highest rate with no kernel drops.

  sudo .venv/bin/python bench/sensor_live_bench.py [--packets 200000] [--max-rate 400000]

Needs root, iproute2 and tcpreplay, and bench/out/mix.pcap (built by
bench/sensor_bench.py). Creates a network namespace with one end of a veth
pair, runs `social-monitor sense` inside it on that end, replays the first
N packets of the mix with `tcpreplay --pps=RATE` into the other end, and
reads the sensor's own counters (packets seen, kernel drops from
PACKET_STATISTICS). Bisects on the rate. Everything it creates is removed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIX = ROOT / "bench" / "out" / "mix.pcap"
SENSE = str(ROOT / ".venv" / "bin" / "social-monitor")
STATS = re.compile(r"(\d+) packets, (\d+) kernel drops")


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def trial(ns: str, inside: str, outside: str, rate: int, packets: int, extra: list[str]) -> dict:
    err_path = ROOT / "bench" / "out" / "live.err"
    with open(err_path, "w") as err, open(os.devnull, "w") as out:
        sensor = subprocess.Popen(["ip", "netns", "exec", ns, SENSE, "sense", "-i", inside,
                                   "--stats-interval", "0.5", *extra], stdout=out, stderr=err)
    time.sleep(2.0)  # interpreter start and socket open
    started = time.monotonic()
    replay = sh("tcpreplay", "-i", outside, f"--pps={rate}", f"--limit={packets}", "-q", str(MIX),
                check=False)
    elapsed = time.monotonic() - started
    time.sleep(1.5)  # let the sensor drain its socket
    sensor.send_signal(signal.SIGTERM)
    sensor.wait(timeout=20)
    lines = [m for m in STATS.finditer(err_path.read_text())]
    seen, drops = (int(lines[-1].group(1)), int(lines[-1].group(2))) if lines else (0, -1)
    sent = re.search(r"Actual: (\d+) packets", replay.stdout + replay.stderr)
    actual = re.search(r"([\d.]+) pps", replay.stdout + replay.stderr)
    return {"rate": rate, "sent": int(sent.group(1)) if sent else 0, "seen": seen, "drops": drops,
            "actual_pps": float(actual.group(1)) if actual else packets / elapsed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--min-rate", type=int, default=5_000)
    ap.add_argument("--max-rate", type=int, default=400_000)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--no-filter", action="store_true", help="run the sensor without the BPF pre-filter")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("tcpreplay") or not shutil.which("ip"):
        print("needs root, iproute2 and tcpreplay")
        return 1
    if not MIX.exists():
        print(f"{MIX} missing: run bench/sensor_bench.py first")
        return 1
    tag = uuid.uuid4().hex[:6]
    ns, outside, inside = f"smbench{tag}", f"smo{tag}", f"smi{tag}"
    extra = ["--no-filter"] if args.no_filter else []
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        sh("ip", "link", "set", inside, "netns", ns)
        sh("ip", "link", "set", outside, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
        low, high, best = args.min_rate, args.max_rate, None
        rate = high
        for _ in range(args.steps):
            r = trial(ns, inside, outside, rate, args.packets, extra)
            ok = r["drops"] == 0 and r["seen"] > 0
            print(f"  {rate:>8,} pps asked, {r['actual_pps']:>10,.0f} pps sent: {r['seen']:,} packets seen, "
                  f"{r['drops']:,} kernel drops {'ok' if ok else 'DROPS'}", flush=True)
            if ok:
                best = r if best is None or r["actual_pps"] > best["actual_pps"] else best
                low = rate
            else:
                high = rate
            if ok and rate == args.max_rate:
                break
            rate = (low + high) // 2
        filt = "without" if args.no_filter else "with"
        if best:
            print(f"highest rate with zero kernel drops ({filt} the pre-filter): "
                  f"{best['actual_pps']:,.0f} packets/s ({args.packets:,} packets of the mix)")
        else:
            print(f"drops even at {args.min_rate:,} packets/s")
    finally:
        sh("ip", "link", "del", outside, check=False)
        sh("ip", "netns", "del", ns, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
