#!/usr/bin/env python3
"""Run every benchmark in turn (`make bench`); each prints its own side-by-side figures.

Benchmarks are not tests: they take minutes, build large files under
bench/out/ or /tmp, and may install benchmark-only Debian packages (wrk,
nginx-light, valgrind). Run one alone with `.venv/bin/python bench/NAME.py --help`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "startup_bench.py",
    "tagging_bench.py",
    "tls_parse_bench.py",
    "sensor_bench.py",
    # two replayers: one tcpreplay cannot outrun the ring and triage here
    "sensor_live_bench.py --senders 2 --max-rate 600000",
    "sensor_live_bench.py --compare-ring --senders 2 --rates 300000,450000,600000",
    # the shared and bypass captures replayed live into `sense`, with and without the pre-filter,
    # scored by ../shared/tools next to `classify` (about 4 minutes)
    "live_score.py",
    "hostile_bench.py",
    "store_bench.py",
    "export_bench.py",
    "purge_bench.py",
    "proxy_bench.py",
    "proxy_instructions.py",
    "central_bench.py",
    "central_lag_bench.py",  # about 80 s
    "central_month_bench.py",  # 5M sessions generated in SQL first: several minutes
]


def main() -> int:
    only = set(sys.argv[1:])
    failed = []
    for entry in ORDER:
        name, *options = entry.split()
        script = HERE / name
        if not script.exists() or (only and name not in only and script.stem not in only):
            continue
        name = entry
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script), *options])
        print(f"=== {name}: exit {code}, {time.monotonic() - started:.0f} s ===", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
