#!/usr/bin/env python3
"""Score the shared captures live: replay each through a veth pair into a real `sense`, score its rows.

  sudo .venv/bin/python bench/live_score.py [--pcaps ../shared/pcaps] [--tools ../shared/tools]
                                            [--passes filter,no-filter] [--keep DIR]

Issue 22 asks that the shared captures (`score_pcaps.py`) and the bypass captures
(`score_bypass.py`, with `--also` the ordinary captures, as docs/capture.md runs it) score the
same through the live path (TPACKET_V3 ring, frame triage, kernel pre-filter) as from the file.
For every capture those two scorers read, this creates a network namespace holding one end of a
veth pair, starts `social-monitor sense -i OTHER_END --format jsonl` in the root namespace (once
with the kernel pre-filter, once with `--no-filter`), replays the capture with `tcpreplay
--topspeed` from inside the namespace, waits until sense's packet counter stops moving, stops it
(SIGTERM: each live flow's last report, as at the end of a file) and keeps its rows.

The scorers then run unchanged, from a directory whose `.venv/bin/social-monitor` is a shim: for
`classify --format jsonl PCAP` it prints the rows the live replay of PCAP gave (for the file
score, it runs this tree's real `classify`). Captures whose link type cannot go on an Ethernet
veth as is are converted where that is exact (raw IP and Linux cooked: an Ethernet header with the
same EtherType in place of the link header; checked by classifying both files), otherwise listed
as not replayable (the shim then exits 3 for them: the scorer counts a crash, nothing is hidden).
Prints the file and live summary lines per scorer, and each capture whose live result differs
from the file result, with the counts that explain why. Everything it creates is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATS = re.compile(r": (\d+) packets, (\d+) kernel drops")
SETTLE_ROUNDS = 4  # counter unchanged this many stats intervals in a row: the sensor has drained
STATS_INTERVAL = 0.5
MAX_SETTLE_SECONDS = 60.0
REPLAY_TIMEOUT = 300.0
START_TIMEOUT = 60.0
MAX_CAPTURES = 200  # bound on the captures one run replays
ETHER_SRC, ETHER_DST = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
RAW_IP = {12, 14, 101, 228, 229}  # LINKTYPE_RAW_OPENBSD, _RAW_BSD, _RAW, _IPV4, _IPV6
SLL, SLL2, ETHERNET = 113, 276, 1
HOST_KEYS = ("tls.client.server_name", "dns.question.name", "url.domain", "destination.domain")


@dataclass
class Capture:
    """One capture file a scorer reads, and what replaying it live gave."""

    path: Path
    replay: Path | None = None  # the file tcpreplay sends (the capture, or its Ethernet conversion)
    note: str = ""  # how it was made replayable, or why it is not
    frames: int = 0
    results: dict[str, dict] = field(default_factory=dict)  # pass -> sent, seen, drops, rows file


def sh(*cmd: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def captures_scored(pcaps: Path) -> list[Path]:
    """The files score_pcaps.py and score_bypass.py (with --also PCAPS) read, in their order."""
    names = {json.loads(line)["pcap"] for line in (pcaps / "expected.jsonl").read_text().splitlines()}
    bypass_list = (pcaps / "bypass" / "expected-bypass.jsonl").read_text().splitlines()
    bypass = {json.loads(line)["pcap"] for line in bypass_list}
    files = [pcaps / n for n in sorted(names)] + [pcaps / "bypass" / n for n in sorted(bypass)]
    files += [p for p in sorted(pcaps.glob("*.pcap*")) if p.name not in bypass and p not in files]
    return files[:MAX_CAPTURES]


def make_replayable(capture: Capture, out: Path) -> None:
    """Ethernet files replay as they are; raw IP and Linux cooked frames get an Ethernet header with
    the same EtherType (nothing else changes); anything else is listed as not replayable."""
    sys.path.insert(0, str(ROOT))
    from monitor.capture.sources import ReadStats, read_frames

    frames = list(read_frames(capture.path, ReadStats()))
    capture.frames = len(frames)
    kinds = {linktype for _, linktype, _ in frames}
    if kinds <= {ETHERNET}:
        capture.replay = capture.path
        return
    if not kinds <= RAW_IP | {SLL, SLL2}:
        capture.note = f"link types {sorted(kinds)}: no exact Ethernet form"
        return
    converted = out / f"{capture.path.parent.name}-{capture.path.stem}.eth.pcap"
    with open(converted, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, ETHERNET))  # nanosecond pcap
        for ts, linktype, frame in frames:
            if linktype in RAW_IP:
                ethertype = {4: 0x0800, 6: 0x86DD}.get(frame[0] >> 4 if frame else 0)
                payload = frame
            elif linktype == SLL:
                ethertype, payload = struct.unpack_from("!H", frame, 14)[0], frame[16:]
            else:
                ethertype, payload = struct.unpack_from("!H", frame, 0)[0], frame[20:]
            if ethertype is None:
                capture.note = f"frame at {ts} is neither IPv4 nor IPv6"
                return
            body = ETHER_DST + ETHER_SRC + struct.pack("!H", ethertype) + payload
            seconds = int(ts)
            f.write(struct.pack("<IIII", seconds, round((ts - seconds) * 1e9), len(body), len(body)) + body)
    capture.replay = converted
    capture.note = f"link types {sorted(kinds)} converted to Ethernet"
    same = classify_keys(capture.path) == classify_keys(converted)
    capture.note += " (classify gives the same rows)" if same else " (classify DIFFERS: not exact)"


def classify_keys(path: Path) -> set[str]:
    """classify's rows for a file, without what depends on the link header or the clock."""
    out = classify_output(path)
    return {json.dumps({k: v for k, v in json.loads(line).items() if k not in ("@timestamp", "source.mac")},
                       sort_keys=True) for line in out.splitlines() if line.startswith("{")}


def classify_output(path: Path) -> str:
    """This tree's `classify --format jsonl` of one file."""
    return subprocess.run([sys.executable, "-m", "monitor", "classify", "--format", "jsonl", str(path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout


def replay(capture: Capture, ns: str, inside: str, outside: str, label: str, extra: list[str],
           out: Path) -> None:
    """One real `sense` on the root end, one tcpreplay of the capture from the namespace end."""
    assert capture.replay is not None
    stem = f"{label}-{capture.path.parent.name}-{capture.path.name}"
    rows, err_path = out / f"{stem}.jsonl", out / f"{stem}.err"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "monitor", "sense", "-i", outside, "--format", "jsonl",
               "--stats-interval", str(STATS_INTERVAL), *extra]
    with open(rows, "w") as stdout, open(err_path, "w") as stderr:
        sensor = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "capturing on" not in err_path.read_text():
            if time.monotonic() > deadline or sensor.poll() is not None:
                raise RuntimeError(f"sense did not start: {err_path.read_text()[-300:]}")
            time.sleep(0.1)
        sent_out = sh("ip", "netns", "exec", ns, "tcpreplay", "-i", inside, "--topspeed", str(capture.replay),
                      check=False, timeout=REPLAY_TIMEOUT)
        text = sent_out.stdout + sent_out.stderr
        sent = int(m.group(1)) if (m := re.search(r"Successful packets:\s+(\d+)", text)) else 0
        failed = int(m.group(1)) if (m := re.search(r"Failed packets:\s+(\d+)", text)) else 0
        last, still, deadline = None, 0, time.monotonic() + MAX_SETTLE_SECONDS
        while still < SETTLE_ROUNDS and time.monotonic() < deadline:  # until the counter stops moving
            time.sleep(STATS_INTERVAL)
            counts = STATS.findall(err_path.read_text())
            now = counts[-1] if counts else None
            still = still + 1 if now == last and now is not None else 0
            last = now
        sensor.send_signal(signal.SIGTERM)
        sensor.wait(timeout=30)
    finally:
        if sensor.poll() is None:
            sensor.kill()
            sensor.wait()
    counts = STATS.findall(err_path.read_text())
    seen, drops = (int(counts[-1][0]), int(counts[-1][1])) if counts else (0, -1)
    capture.results[label] = {"sent": sent, "failed": failed, "seen": seen, "drops": drops, "rows": str(rows),
                              "exit": sensor.returncode}


def write_shims(work: Path, captures: list[Capture], label: str | None) -> Path:
    """A directory whose .venv/bin/social-monitor answers `classify --format jsonl PCAP`: this tree's
    real classify (label None), or the rows the live pass `label` gave for PCAP."""
    cwd = work / (label or "file")
    (cwd / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    shim = cwd / ".venv" / "bin" / "social-monitor"
    if label is None:
        shim.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m monitor \"$@\"\n")
    else:
        index = {str(c.path.resolve()): c.results[label]["rows"] if label in c.results else c.note
                 for c in captures}
        (cwd / "index.json").write_text(json.dumps(index))
        shim.write_text(f"""#!{sys.executable}
import json, os, sys
index = json.load(open({str(cwd / 'index.json')!r}))
rows = index.get(os.path.realpath(sys.argv[-1]))
if sys.argv[1:4] != ["classify", "--format", "jsonl"] or rows is None or not rows.endswith(".jsonl"):
    print(f"live shim: not replayed: {{sys.argv[-1]}}: {{rows}}", file=sys.stderr)
    sys.exit(3)
sys.stdout.write(open(rows).read())
""")
    shim.chmod(0o755)
    return cwd


def score(tools: Path, pcaps: Path, cwd: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Each scorer's summary line and its per-capture miss lines, run from `cwd` (the shim)."""
    runs = {"score_pcaps": [str(pcaps), str(pcaps / "expected.jsonl")],
            "score_bypass": [str(pcaps / "bypass"), str(pcaps / "bypass" / "expected-bypass.jsonl"),
                             "--also", str(pcaps)]}
    results = {}
    for name, args in runs.items():
        out = subprocess.run([sys.executable, str(tools / f"{name}.py"), *args], cwd=cwd, capture_output=True,
                             text=True, timeout=1800).stdout.splitlines()
        misses = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in out[:-1] if ":" in line}
        summary = re.sub(r", [\d.]+s$", "", out[-1]) if out else "(no output)"
        results[name] = (summary, misses)
    return results


def row_keys(path: Path) -> set[str]:
    """What the scorers can read off one capture's rows: hostname keys with the platform, and marks."""
    keys = set()
    for line in path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        host = next((row[k] for k in HOST_KEYS if row.get(k)), None)
        ends = tuple(sorted([f"{row.get('source.ip')}:{row.get('source.port')}",
                             f"{row.get('destination.ip')}:{row.get('destination.port')}"]))
        if host:
            keys.add(f"{'-'.join(ends)} {str(host).lower().rstrip('.')} = {row.get('social.platform')}")
        if row.get("social.obscured_by"):
            keys.add(f"{'-'.join(ends)} obscured_by {row['social.obscured_by']}")
    return keys


def setup(ns: str, inside: str, outside: str) -> None:
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
    sh("ip", "link", "set", inside, "netns", ns)
    for prefix, name in (([], outside), (["ip", "netns", "exec", ns], inside)):
        # no address and no IPv6: the only frames on the pair are the replayed ones (no router
        # solicitations or duplicate-address probes of its own); the largest MTU a veth takes,
        # for frames that segmentation offload made bigger than 1500 bytes
        sh(*prefix, "sysctl", "-q", "-w", f"net.ipv6.conf.{name}.disable_ipv6=1")
        sh(*prefix, "ip", "link", "set", name, "mtu", "65535", "up")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcaps", type=Path, default=ROOT.parent / "shared" / "pcaps")
    ap.add_argument("--tools", type=Path, default=ROOT.parent / "shared" / "tools")
    ap.add_argument("--passes", default="filter,no-filter",
                    help="live passes: filter, no-filter, no-ring (recvmsg, not the ring; with the filter)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the rows and logs in this folder")
    args = ap.parse_args()
    missing = [t for t in ("tcpreplay", "ip", "sysctl") if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        print(f"needs root, iproute2 and tcpreplay (missing: {', '.join(missing) or 'root'})")
        return 1
    passes = {"filter": [], "no-filter": ["--no-filter"], "no-ring": ["--no-ring"]}  # no-ring: recvmsg
    labels = [p for p in args.passes.split(",") if p in passes]
    unknown = [p for p in args.passes.split(",") if p not in passes]
    if unknown or not labels:
        print(f"--passes: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(passes)}")
        return 2
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="live-score-", dir=args.keep))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally blocks below still run
    try:
        pcaps = args.pcaps.resolve()
        captures = [Capture(p) for p in captures_scored(pcaps)]
        for capture in captures:
            make_replayable(capture, work)
        tag = uuid.uuid4().hex[:6]
        ns, outside, inside = f"smls{tag}", f"smlo{tag}", f"smli{tag}"
        try:
            setup(ns, inside, outside)
            for label in labels:
                for capture in captures:
                    if capture.replay is not None:
                        replay(capture, ns, inside, outside, label, passes[label], work)
        finally:  # the veth pair and the namespace go whatever happened
            sh("ip", "link", "del", outside, check=False)
            sh("ip", "netns", "del", ns, check=False)
        report(captures, labels, {label: score(args.tools, pcaps, write_shims(work, captures, label))
                                  for label in [None, *labels]})
    finally:
        if args.keep:
            print(f"rows and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(captures: list[Capture], labels: list[str], scores: dict) -> None:
    sys.path.insert(0, str(ROOT))
    from monitor.capture.triage import COMPILED

    print(f"{len(captures)} captures; sense from {ROOT} ({'compiled' if COMPILED else 'Python'} triage), "
          "tcpreplay --topspeed over a veth pair")
    for c in captures:
        if c.note:
            print(f"  {c.path.name}: {c.note}")
    for scorer in ("score_pcaps", "score_bypass"):
        print(f"\n{scorer}:")
        for label in [None, *labels]:
            name = "file (classify)" if label is None else f"live, {label}"
            print(f"  {name:<18} {scores[label][scorer][0]}")
    print("\nper capture: frames in the file; per live pass sent by tcpreplay (failed), seen by sense, drops")
    differs = []
    for c in captures:
        if c.replay is None:
            print(f"  {c.path.name}: NOT REPLAYABLE ({c.note})")
            continue
        cells = [f"{label}: {r['sent']} ({r['failed']}), {r['seen']}, {r['drops']}"
                 for label, r in c.results.items()]
        print(f"  {c.path.name:<40} {c.frames:>5}  " + "; ".join(cells))
        file_rows = work_rows(c)
        for label, r in c.results.items():
            scorer_lines = {scorer: (scores[None][scorer][1].get(c.path.name), scores[label][scorer][1].get(
                c.path.name)) for scorer in ("score_pcaps", "score_bypass")}
            changed = {s: v for s, v in scorer_lines.items() if v[0] != v[1]}
            live = row_keys(Path(r["rows"]))
            lost, gained = file_rows - live, live - file_rows
            if changed or lost or gained:
                differs.append((c, label, changed, lost, gained))
    for label in labels:
        done = [c.results[label] for c in captures if label in c.results]
        sent, seen = sum(r["sent"] for r in done), sum(r["seen"] for r in done)
        print(f"  all, {label}: {sent:,} frames sent, {seen:,} seen by sense, "
              f"{sum(max(r['drops'], 0) for r in done)} kernel drops")
    print("\ncaptures whose live result differs from the file result:" + ("" if differs else " none"))
    for c, label, changed, lost, gained in differs:
        r = c.results[label]
        why = []
        if r["failed"] or r["sent"] < c.frames:
            why.append(f"tcpreplay sent {r['sent']} of {c.frames} frames ({r['failed']} failed)")
        if r["drops"]:
            why.append(f"{r['drops']} kernel drops")
        if label == "no-filter" and r["seen"] < r["sent"]:
            why.append(f"sense saw {r['seen']} of {r['sent']} sent")
        other = [o for o in c.results if o != label]
        print(f"  {c.path.name} ({label}): " + "; ".join(why or ["every frame sent and seen"]))
        for scorer, (before, after) in changed.items():
            print(f"    {scorer}: file '{before or 'no miss'}' -> live '{after or 'no miss'}'")
        for key in sorted(lost)[:5]:
            print(f"    only from the file: {key}")
        for key in sorted(gained)[:5]:
            print(f"    only live: {key}")
        if len(lost) + len(gained) > 10:
            print(f"    ... {len(lost)} only from the file, {len(gained)} only live in all")
        if other:
            print(f"    (compare the {other[0]} pass above: a difference in both passes is not the filter)")


def work_rows(capture: Capture) -> set[str]:
    """The scorer-visible keys of classify's rows for the file itself."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(classify_output(capture.path))
    try:
        return row_keys(Path(f.name))
    finally:
        os.unlink(f.name)


if __name__ == "__main__":
    sys.exit(main())
