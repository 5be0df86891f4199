#!/usr/bin/env python3
"""Packet sensor benchmark: `social-monitor classify` beside tshark and nDPI on ~1M real packets.

  .venv/bin/python bench/sensor_bench.py [--packets 1000000] [--runs 1] [--mix PCAP]
                                         [--compare SRC_DIR] [--classify-only] [--feed] [--parts]
                                         [--pcapng]

--compare runs `classify` from another source tree (e.g. the previous commit, unpacked
with `git archive HEAD~1 | tar -x -C /tmp/prev`) beside this one, the runs interleaved
so that load on the machine hits both alike. With --feed it times only the sensor
(`Sensor.feed` over frames already in memory, no output: CPU seconds of the process,
best of 3 passes) in each tree, alternately, and prints the ratio. --parts splits
`classify` into its parts in each tree (best of --runs, alternately): start-up (the process
on a capture with no packets), `Sensor.feed` for the packets that reach it, the output of
the rows (`Sensor._deliver`: row, JSON, write) and the rest (the packet walk, the
catalog and the modules `classify` imports once it runs); in-process parts by perf_counter.

--pcapng times the same mix written as pcapng (bench/out/mix.pcapng, by `editcap -F pcapng`),
every tool reading that file.

Builds bench/out/mix.pcap from ../shared/pcaps: every Ethernet capture is
converted to pcap (editcap), concatenated (mergecap), then copied N times
with `tcprewrite --seed=N` so that each copy has new addresses (new flows),
and the copies are merged by time, as if all those clients were on one
uplink at once. Then it times, side by side in the same run, each tool
extracting the same names, with wall time and peak RSS of the child
(resource.getrusage(RUSAGE_CHILDREN) after each one), and prints ratios.

Not part of the test run: it takes a minute and needs editcap, mergecap,
tcprewrite and tshark (Debian: tshark, tcpreplay) and ndpiReader
(Debian: libndpi-bin) if present.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "pcaps"
OUT = ROOT / "bench" / "out"
# this tree's code, whichever interpreter runs the benchmark (PYTHONPATH picks the tree)
CLASSIFY = [sys.executable, "-m", "monitor", "classify", "--format", "jsonl"]
# issue 22: classify at least as fast as ndpiReader on the same mix, in under 100 MB
TARGETS = {"ndpiReader": " (target: 1.00x the speed or more)"}
MAX_RSS_MB = 100
TSHARK_FIELDS = ["dns.qry.name", "tls.handshake.extensions_server_name", "http.host", "gquic.tag.sni"]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def packet_count(path: Path) -> int:
    out = run(["capinfos", "-c", "-M", "-T", str(path)]).stdout.decode().splitlines()[-1]
    return int(out.split("\t")[1])


def build_mix(target_packets: int, name: str = "mix") -> Path:
    """The benchmark capture, built once and reused while the shared captures are unchanged.

    `name` keeps captures of different sizes apart (bench/hostile_bench.py builds a small one)."""
    OUT.mkdir(parents=True, exist_ok=True)
    mix = OUT / f"{name}.pcap"
    stamp = OUT / f"{name}.json"
    if mix.exists() and stamp.exists() and json.loads(stamp.read_text()).get("target") == target_packets:
        return mix
    work = OUT / f"work-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    parts = []
    for src in sorted(SHARED.glob("*.pcap*")):
        encap = run(["capinfos", "-E", "-M", "-T", str(src)]).stdout.decode().splitlines()[-1]
        if encap.split("\t")[-1] != "ether":  # tcprewrite and a one-link-type pcap need Ethernet
            print(f"  skipped {src.name} (link type {encap.split(chr(9))[-1]})", file=sys.stderr)
            continue
        dst = work / (src.name.split(".")[0] + ".pcap")
        run(["editcap", "-F", "pcap", str(src), str(dst)])
        parts.append(dst)
    base = work / "base.pcap"
    run(["mergecap", "-a", "-F", "pcap", "-w", str(base), *map(str, parts)])
    per_copy = packet_count(base)
    copies = max(1, round(target_packets / per_copy))
    print(f"  building {copies} copies of {per_copy} packets ...", file=sys.stderr)
    copy_files = []
    for n in range(1, copies + 1):
        dst = work / f"copy{n:04d}.pcap"
        run(["tcprewrite", f"--seed={n}", "-i", str(base), "-o", str(dst)])
        copy_files.append(dst)
    # mergecap opens every input at once: merge in batches to stay under the open-file limit
    batches = []
    for i in range(0, len(copy_files), 64):
        batch = work / f"batch{i // 64:03d}.pcap"
        run(["mergecap", "-F", "pcap", "-w", str(batch), *map(str, copy_files[i : i + 64])])
        batches.append(batch)
    run(["mergecap", "-F", "pcap", "-w", str(mix), *map(str, batches)])
    shutil.rmtree(work)
    stamp.write_text(json.dumps({"target": target_packets, "packets": packet_count(mix)}))
    return mix


def as_pcapng(mix: Path) -> Path:
    """The capture written as pcapng beside the pcap ones, rewritten when the pcap is newer."""
    if mix.suffix == ".pcapng":
        return mix
    target = OUT / f"{mix.stem}.pcapng"
    if not target.exists() or target.stat().st_mtime < mix.stat().st_mtime:
        run(["editcap", "-F", "pcapng", str(mix), str(target)])
    return target


def timed(name: str, cmd: list[str], stdout_path: Path, source: Path = ROOT) -> dict:
    """Wall time and peak RSS of one child process (ru_maxrss of the children is the largest so far,
    so each tool runs in its own short-lived helper to get its own peak)."""
    helper = [sys.executable, "-c", (
        "import resource,subprocess,sys,time,json;"
        "t=time.perf_counter();"
        f"p=subprocess.run({cmd!r},stdout=open({str(stdout_path)!r},'wb'),stderr=subprocess.DEVNULL);"
        "w=time.perf_counter()-t;"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(json.dumps({'rc':p.returncode,'wall':w,'cpu':r.ru_utime+r.ru_stime,'rss_mb':r.ru_maxrss/1024}))"
    )]
    env = {**os.environ, "PYTHONPATH": str(source)}
    # run from the tree itself: `python -m` puts the working directory ahead of PYTHONPATH, so from
    # another tree's directory both sides of --compare would run that tree's code
    result = json.loads(run(helper, env=env, cwd=source).stdout)
    result["name"] = name
    return result


FEED_SCRIPT = """
import json, sys, time
from monitor.capture.sensor import Sensor
from monitor.capture.sources import read_frames
frames = list(read_frames(sys.argv[1]))
best, reported = float("inf"), 0
for _ in range(3):
    out = []
    sensor = Sensor(out.append)
    started = time.process_time()
    for ts, linktype, frame in frames:
        sensor.feed(ts, linktype, frame)
    if hasattr(sensor, "close"):
        sensor.close()
    best = min(best, time.process_time() - started)
    reported = len(out)
print(json.dumps({"cpu": best, "packets": len(frames), "observations": reported}))
"""


def feed_cpu(mix: Path, source: Path) -> dict:
    """The sensor alone in `source`'s code: CPU seconds to feed the capture (best of 3 passes)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    return json.loads(run([sys.executable, "-c", FEED_SCRIPT, str(mix)], env=env, cwd=source).stdout)


def compare_feed(mix: Path, other: Path, runs: int) -> None:
    best: dict[str, dict] = {}
    for _ in range(runs):  # alternately, so that load on the machine hits both alike
        for name, source in (("this tree", ROOT), (str(other), other)):
            r = feed_cpu(mix, source)
            if name not in best or r["cpu"] < best[name]["cpu"]:
                best[name] = r
    for name, r in best.items():
        print(f"feed {name:<20} {r['cpu']:6.3f} s cpu  {r['packets'] / r['cpu']:>10,.0f} packets/s  "
              f"{r['observations']:,} observations")
    ours, theirs = best["this tree"], best[str(other)]
    print(f"feed: this tree takes {ours['cpu'] / theirs['cpu']:.3f}x the CPU of {other}")


PARTS_SCRIPT = """
import io, json, sys, time
from monitor.capture.sensor import Sensor
from monitor.cli import main
feed, deliver = Sensor.feed, Sensor._deliver
spent = {"feed": 0.0, "deliver": 0.0, "deliver_in_feed": 0.0}
inside = [False]
def timed_feed(self, *a):
    t = time.perf_counter(); inside[0] = True
    try:
        return feed(self, *a)
    finally:
        inside[0] = False; spent["feed"] += time.perf_counter() - t
def timed_deliver(self, obs):
    t = time.perf_counter()
    try:
        return deliver(self, obs)
    finally:
        d = time.perf_counter() - t; spent["deliver"] += d
        if inside[0]:
            spent["deliver_in_feed"] += d
Sensor.feed, Sensor._deliver = timed_feed, timed_deliver
out, sys.stdout = sys.stdout, io.StringIO()
t = time.perf_counter()
main(["classify", "--format", "jsonl", sys.argv[1]])
total = time.perf_counter() - t
sys.stdout = out
sensor = spent["feed"] - spent["deliver_in_feed"]
print(json.dumps({"run": total, "sensor": sensor, "output": spent["deliver"]}))
"""


def classify_parts(mix: Path, source: Path, empty: Path) -> dict:
    """Seconds of each part of `classify` on `mix` in `source`'s code (one process each)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    startup = timed("startup", [*CLASSIFY, str(empty)], OUT / "empty.out", source)["cpu"]
    r = json.loads(run([sys.executable, "-c", PARTS_SCRIPT, str(mix)], env=env, cwd=source).stdout)
    return {"start-up": startup, "packet walk and the rest": r["run"] - r["sensor"] - r["output"],
            "Sensor.feed": r["sensor"], "output": r["output"]}


def compare_parts(mix: Path, other: Path, runs: int) -> None:
    empty = OUT / "empty.pcap"  # a pcap header and no packets: start-up alone
    with mix.open("rb") as f:
        empty.write_bytes(f.read(24))
    best: dict[str, dict[str, float]] = {}
    for _ in range(runs):  # alternately, so that load on the machine hits both alike
        for name, source in (("this tree", ROOT), (str(other), other)):
            parts = classify_parts(mix, source, empty)
            mine = best.setdefault(name, {})
            for part, secs in parts.items():
                mine[part] = min(mine.get(part, secs), secs)
    ours, theirs = best["this tree"], best[str(other)]
    head = f"part of classify (best of {runs})"
    print(f"{head:<32} {'this tree':>10} {str(other)[-16:]:>16}  ratio")
    for part in ours:
        print(f"{part:<32} {ours[part]:9.3f}s {theirs[part]:15.3f}s  {ours[part] / theirs[part]:.2f}x")


def triage_in_use(source: Path) -> str:
    """Which frame triage `classify` runs in `source`: compiled (built by `pip install -e .`) or not."""
    probe = "from monitor.capture import triage; print('compiled' if triage.COMPILED else 'pure Python')"
    env = {**os.environ, "PYTHONPATH": str(source)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                            cwd=source)
    return result.stdout.strip() or "none (older code)"


def names_found(name: str, path: Path) -> int:
    if name.startswith("classify"):
        return sum(1 for _ in path.open())
    if name == "tshark":
        return sum(1 for line in path.open() if line.strip())
    return -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=1, help="repeat each tool, keep the fastest")
    ap.add_argument("--mix", type=Path, help="an existing capture to time instead of building one")
    ap.add_argument("--compare", type=Path, help="another source tree whose classify runs beside this one")
    ap.add_argument("--classify-only", action="store_true", help="leave out tshark and ndpiReader")
    ap.add_argument("--feed", action="store_true", help="with --compare: time the sensor alone, in process")
    ap.add_argument("--parts", action="store_true", help="with --compare: classify's parts in each tree")
    ap.add_argument("--pcapng", action="store_true", help="time the mix written as pcapng (editcap)")
    args = ap.parse_args()
    for tool in ("editcap", "mergecap", "tcprewrite", "capinfos"):
        if shutil.which(tool) is None:
            print(f"needs {tool} (Debian: tshark, tcpreplay)", file=sys.stderr)
            return 1
    if args.mix:
        mix, meta = args.mix, {"packets": packet_count(args.mix)}
        OUT.mkdir(parents=True, exist_ok=True)
    else:
        mix = build_mix(args.packets)
        meta = json.loads((OUT / "mix.json").read_text())
    if args.pcapng:
        mix = as_pcapng(mix)
    size_mb = mix.stat().st_size / 1e6
    print(f"capture: {mix} ({meta['packets']:,} packets, {size_mb:.0f} MB)")
    print(f"frame triage in this tree: {triage_in_use(ROOT)}")
    if args.feed and args.compare:
        compare_feed(mix, args.compare.resolve(), args.runs)
    if args.parts and args.compare:
        compare_parts(mix, args.compare.resolve(), args.runs)
    tools: list[tuple[str, list[str], Path]] = [("classify", [*CLASSIFY, str(mix)], ROOT)]
    if args.compare:
        tools.append(("classify@compare", [*CLASSIFY, str(mix)], args.compare.resolve()))
    if args.classify_only:
        pass
    elif shutil.which("tshark"):
        fields = [arg for f in TSHARK_FIELDS for arg in ("-e", f)]
        tools.append(("tshark", ["tshark", "-n", "-r", str(mix), "-T", "fields", *fields], ROOT))
    else:
        print("tshark: not installed (Debian: tshark)")
    if args.classify_only:
        pass
    elif shutil.which("ndpiReader"):
        tools.append(("ndpiReader", ["ndpiReader", "-q", "-i", str(mix)], ROOT))
    else:
        print("ndpiReader: not installed (Debian: libndpi-bin)")
    results: dict[str, dict] = {}
    for _ in range(args.runs):  # interleaved: each round runs every tool once
        for name, cmd, source in tools:
            r = timed(name, cmd, OUT / f"{name}.out", source)
            if name not in results or r["wall"] < results[name]["wall"]:
                results[name] = r
    for name, _cmd, _source in tools:
        best = results[name]
        found = names_found(name, OUT / f"{name}.out")
        extra = f", {found:,} output lines" if found >= 0 else ""
        rate = meta["packets"] / best["wall"]
        print(f"{name:<11} {best['wall']:6.2f} s wall  {best['cpu']:6.2f} s cpu  "
              f"{best['rss_mb']:6.0f} MB peak  {rate:>9,.0f} packets/s  exit {best['rc']}{extra}")
    ours = results["classify"]
    for name, r in results.items():
        if name != "classify":
            target = TARGETS.get(name, "")
            print(f"classify vs {name}: {r['wall'] / ours['wall']:.2f}x the speed, "
                  f"{ours['rss_mb'] / r['rss_mb']:.2f}x the memory{target}")
    print(f"classify peak memory: {ours['rss_mb']:.0f} MB (target: under {MAX_RSS_MB} MB)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
