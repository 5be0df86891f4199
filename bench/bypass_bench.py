#!/usr/bin/env python3
"""What the bypass recognisers (monitor/capture/bypass.py) cost: the sensor's feed, this tree against another.

  .venv/bin/python bench/bypass_bench.py --compare /path/to/previous/tree [--rounds 5]

Times `Sensor.feed` in process (CPU seconds, frames already in memory, so only the sensor is
measured) on two inputs: the ordinary mix that bench/sensor_bench.py builds (bench/out/mix.pcap;
run that first) and the shared bypass captures (../shared/pcaps/bypass) repeated to about as
many frames as there are in them times 200. Each round runs this tree and the other in fresh
processes, alternately, so load on the machine hits both alike; prints the median of the
rounds and the ratio. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIX = ROOT / "bench" / "out" / "mix.pcap"
BYPASS = ROOT.parent / "shared" / "pcaps" / "bypass"

CHILD = r"""
import json, sys, time
from pathlib import Path
from monitor.capture.sensor import Sensor
from monitor.capture.sources import ReadStats, read_frames
paths, repeat = [Path(p) for p in sys.argv[1].split(",")], int(sys.argv[2])
frames = [f for p in paths for f in read_frames(str(p), ReadStats())]
seen = []
sensor = Sensor(seen.append)
feed = sensor.feed
table = getattr(sensor.flows, "_seen", None)  # SeenFlows before the flow lives, FlowLives since
table = table if table is not None else sensor.flows.lives
start = time.process_time()
for i in range(repeat):
    table.clear()  # each pass reports its flows again, as new traffic would
    for ts, linktype, frame in frames:
        feed(ts, linktype, frame)
cpu = time.process_time() - start
marked = sum(1 for o in seen if getattr(o, "obscured_by", None))
print(json.dumps({"cpu": cpu, "frames": len(frames) * repeat, "observations": len(seen), "marked": marked}))
"""


def run(tree: Path, paths: list[Path], repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, ",".join(map(str, paths)), str(repeat)],
                         env=env, capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", type=Path, required=True, help="the other source tree (e.g. main)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not MIX.exists():
        print("no bench/out/mix.pcap: run bench/sensor_bench.py first", file=sys.stderr)
        return 1
    inputs = {"ordinary mix": ([MIX], 1),
              "bypass captures x200": (sorted(p for p in BYPASS.glob("*.pcap*")), 200)}
    trees = {"this": ROOT, "compare": args.compare.resolve()}
    for label, (paths, repeat) in inputs.items():
        results: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                results[name].append(run(tree, paths, repeat))
        cpu = {name: statistics.median(r["cpu"] for r in rs) for name, rs in results.items()}
        last = {name: rs[-1] for name, rs in results.items()}
        frames = last["this"]["frames"]
        print(f"{label}: {frames:,} frames; this {cpu['this']:.3f} s cpu "
              f"({frames / cpu['this']:,.0f}/s, {last['this']['observations']} observations, "
              f"{last['this']['marked']} marked); compare {cpu['compare']:.3f} s "
              f"({frames / cpu['compare']:,.0f}/s, {last['compare']['observations']} observations); "
              f"ratio {cpu['this'] / cpu['compare']:.3f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
