#!/usr/bin/env python3
"""Start-up benchmark: each quick command as a process, best of five, against its 0.3 s target.

  .venv/bin/python bench/startup_bench.py [--repeat 5] [--baseline /work/main] [--importtime]

Runs `python -m monitor COMMAND` for `--help`, `platforms`, `check-config` (on a copy of
config/example), `events` (on an empty store made for the run) and `classify` on the shared
quic.pcap (a handful of packets: its start-up and first QUIC Initial keys), alternately with
PYTHONPATH=this checkout and PYTHONPATH=BASELINE (another tree holding a `monitor` package,
e.g. main's worktree or `git archive main monitor config | tar -x -C /tmp/before`), so both
see the same machine load. Byte code is cached (one unrecorded warm-up run per command writes
it, whatever PYTHONDONTWRITEBYTECODE says), as in an installed package. Prints best-of-N wall
time per command and tree, the ratio, and whether this tree meets the target. `--importtime`
also prints the ten slowest imports (`python -X importtime`, cumulative) of each command in
each tree.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.3
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


QUIC_PCAP = ROOT.parent / "shared" / "pcaps" / "quic.pcap"  # a few packets: start-up, QUIC keys


def commands(cfg: Path) -> dict[str, list[str]]:
    quick = {
        "--help": ["--help"],
        "platforms": ["platforms", "--config", str(cfg)],
        "check-config": ["check-config", str(cfg)],
        "events (empty store)": ["events", "--config", str(cfg)],
    }
    if QUIC_PCAP.exists():
        quick["classify (quic.pcap)"] = ["classify", str(QUIC_PCAP)]
    return quick


def make_workspace(tree: Path, into: Path) -> Path:
    """A copy of the example config whose store is a new, empty store of its own."""
    (into / "cfg").mkdir(parents=True)
    for f in (ROOT / "config").iterdir():
        if f.is_file():
            shutil.copy(f, into / "cfg" / f.name)
    (into / "var").mkdir()
    made = subprocess.run(
        [sys.executable, "-c", "import sys; from monitor.store.sqlite import open_store; "
         "open_store(sys.argv[1]).close()", str(into / "var" / "social-monitor.db")],
        env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    if made.returncode:
        raise SystemExit(f"cannot make the empty store: {made.stderr.strip()}")
    return into / "cfg" / "example.yaml"


def run_once(tree: Path, argv: list[str],
             extra: list[str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("SOCIAL_MONITOR_CONFIG", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: byte code cached (warm-up run writes it)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *(extra or []), "-m", "monitor", *argv], env=env,
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{tree}: {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return elapsed, done


def slowest_imports(tree: Path, argv: list[str], top: int = 10) -> list[str]:
    _, done = run_once(tree, argv, ["-X", "importtime"])
    rows = []
    for line in done.stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    total = sum(us for us, depth, _ in rows if depth == 0)
    rows.sort(reverse=True)
    return [f"total top-level imports {total / 1e3:.0f} ms"] + [
        f"{us / 1e3:7.1f} ms  {'  ' * depth}{name}" for us, depth, name in rows[:top]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline", type=Path, default=Path("/work/main"),
                    help="tree holding the code to compare with (default: main's worktree)")
    ap.add_argument("--importtime", action="store_true")
    args = ap.parse_args()
    trees = {"this": ROOT}
    if (args.baseline / "monitor" / "cli.py").exists() and args.baseline.resolve() != ROOT:
        trees["baseline"] = args.baseline.resolve()
    else:
        print(f"no baseline tree at {args.baseline}: this tree only")
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        configs = {name: make_workspace(tree, Path(tmp) / name) for name, tree in trees.items()}
        best: dict[tuple[str, str], float] = {}
        for name, tree in trees.items():  # warm-up: byte code and the page cache, as on a gateway
            for argv in commands(configs[name]).values():
                run_once(tree, argv)
        for _ in range(args.repeat):
            for name, tree in trees.items():  # alternate, so both trees see the same load
                for label, argv in commands(configs[name]).items():
                    elapsed, _ = run_once(tree, argv)
                    best[(name, label)] = min(best.get((name, label), elapsed), elapsed)
        print(f"best of {args.repeat}, as a process ({sys.executable}); target {TARGET:.2f} s; "
              f"load average {os.getloadavg()[0]:.1f} at the end")
        print(f"{'command':<22} {'this':>7} {'baseline':>9} {'ratio':>6}  target")
        failed = 0
        for label in commands(configs["this"]):
            mine = best[("this", label)]
            base = best.get(("baseline", label))
            ok = mine < TARGET
            failed += not ok
            base_text = f"{base:8.3f}s" if base else "        -"
            ratio = f"{mine / base:5.2f}x" if base else "     -"
            print(f"{label:<22} {mine:6.3f}s {base_text} {ratio}  {'ok' if ok else 'MISSED'} (< {TARGET} s)")
        if args.importtime:
            for name, tree in trees.items():
                for label, argv in commands(configs[name]).items():
                    print(f"\n-X importtime, {name} tree, {label}:")
                    print("\n".join("  " + line for line in slowest_imports(tree, argv)))
    if failed:
        print(f"{failed} command(s) over the target in this run (machine load: {os.getloadavg()[0]:.1f})")
    return 0  # a benchmark reports; `make bench` goes on


if __name__ == "__main__":
    raise SystemExit(main())
