"""Benchmark (not a test): export a month of a large school's data, beside a plain sqlite3 dump.

    .venv/bin/python bench/export_bench.py [--sessions 100000] [--keep DIR]

Writes N sessions for Ash Grove Academy over the school days of November
2026 (1,500 devices, 1,200 staff, the example trust's zones and periods,
about a third flagged, some exempt) into a fresh store, then times:

* `export`: the whole `run_export` (pseudonyms, sessions.csv, sessions.jsonl,
  report.html, manifest with SHA-256, export log entry);
* the peer: Debian's `sqlite3 -csv` CLI dumping the same rows (all columns of
  the sessions table, same WHERE and ORDER BY) to a CSV file, and `sqlite3 -json`
  to a JSON file (the export writes both kinds);
* for the breakdown: reading the sessions through the store API alone.

and prints seconds and the ratio export / peer.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config.loader import load_config
from monitor.exports.dates import day_bounds
from monitor.exports.export import run_export
from monitor.exports.request import ExportRequest
from monitor.observation import Exemption, Flag
from monitor.store.filter import SessionFilter
from monitor.store.sessions import Session
from monitor.store.sqlite import open_store

REPO = Path(__file__).resolve().parents[1]
CONTACT = Flag("contact_time", "4.3", "personal social-media activity must be restricted to non-contact time")
PUPILS = Flag("pupil_area", "4.3", "personal social-media activity must be restricted to areas where pupils "
              "are not present")
MARKETING = Exemption("marketing-team", "The marketing team posts to the schools' own accounts.", "4.1")
ZONES = [("classrooms", "classroom", True), ("media-suite", "classroom", True), ("library", "library", True),
         ("staff-room", "staff-room", False), ("offices", "office", False), ("sports-hall", "hall", True)]
PERIODS = [("Tutor", "08:35", "contact"), ("P1", "08:55", "contact"), ("P2", "09:55", "contact"),
           ("Break", "10:55", "non-contact"), ("P3", "11:15", "contact"), ("Lunch", "12:15", "non-contact"),
           ("P4", "13:00", "contact"), ("P5", "14:00", "contact")]
PLATFORMS = [("youtube", "YouTube", "video", 30), ("facebook", "Facebook", "social-network", 14),
             ("instagram", "Instagram", "social-network", 12), ("tiktok", "TikTok", "video", 10),
             ("linkedin", "LinkedIn", "professional", 8), ("twitter", "X (Twitter)", "microblog", 8),
             ("reddit", "Reddit", "forum", 6), ("whatsapp", "WhatsApp", "messaging", 6),
             ("pinterest", "Pinterest", "image", 3), ("snapchat", "Snapchat", "messaging", 3)]


def school_days(first: date, last: date) -> list[date]:
    days = []
    d = first
    while d <= last:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def make_sessions(n: int, first: date, last: date, tz: ZoneInfo, seed: int = 7) -> list[Session]:
    rnd = random.Random(seed)
    days = school_days(first, last)
    weights = [w for *_, w in PLATFORMS]
    out = []
    for i in range(n):
        dev = rnd.randrange(1500)
        day = rnd.choice(days)
        zone, kind, pupils = rnd.choice(ZONES)
        name, start, pkind = rnd.choice(PERIODS)
        hh, mm = map(int, start.split(":"))
        from datetime import datetime
        t0 = datetime(day.year, day.month, day.day, hh, mm, tzinfo=tz).timestamp() + rnd.randrange(3000)
        platform, pname, cat, _ = rnd.choices(PLATFORMS, weights)[0]
        flags = tuple(f for f, on in ((CONTACT, pkind == "contact"), (PUPILS, pupils)) if on)
        flags = flags if rnd.random() < 0.5 else ()  # staff timetables make many periods free
        exemption = MARKETING if flags and dev < 30 and platform in ("facebook", "linkedin") else None
        out.append(Session(
            device=f"ASH-LT-{dev:05d}", platform=platform, school="ash-secondary", zone=zone, period=name,
            local_date=day.isoformat(), first_seen=t0, last_seen=t0 + rnd.randrange(10, 900),
            observations=rnd.randrange(1, 40), signals=("dns", "tls"),
            hostnames=(f"www.{platform}.com", f"static.{platform}.com"), flags=flags, exemption=exemption,
            period_kind=pkind, week="A" if (day.isocalendar()[1] % 2) else "B", pupil_area=pupils,
            owner=f"S{20000 + dev % 1200}" if dev % 10 else None, asset_tag=f"ASH-LT-{dev:05d}",
            device_mac=f"3c:52:82:{dev >> 8 & 255:02x}:{dev & 255:02x}:{i % 256:02x}", device_kind="laptop",
            platform_name=pname, category=cat, zone_kind=kind,
        ))
    # distinct keys: sessions of one device, platform, zone, period and day are one session in the store
    seen = set()
    unique = []
    for s in out:
        if s.key not in seen:
            seen.add(s.key)
            unique.append(s)
    return unique


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--keep", help="keep the store and exports in this directory (and reuse its store)")
    args = ap.parse_args()
    config = load_config(REPO / "config" / "example.yaml")
    tz = ZoneInfo(config.trust.timezone)
    first, last = date(2026, 11, 2), date(2026, 11, 29)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "store.db"
    if db.exists() and open_store(db, create=False).count() == args.sessions:
        store = open_store(db, create=False)  # --keep DIR from an earlier run: reuse its store
        print(f"store: reusing {store.count():,} sessions in {db}")
    else:
        for p in work.glob("store.db*"):
            p.unlink()
        sessions = make_sessions(int(args.sessions * 1.02), first, last, tz)[: args.sessions]
        t = time.perf_counter()
        store = open_store(db)
        for i in range(0, len(sessions), 10_000):
            store.write_sessions(sessions[i : i + 10_000])
        print(f"store: {store.count():,} sessions written in {time.perf_counter() - t:.1f} s ({db})")
    for p in work.glob("store.db.exports.jsonl"):
        p.unlink()

    since, until = day_bounds(first, last, tz)
    t = time.perf_counter()
    n = sum(1 for _ in store.sessions(SessionFilter(school="ash-secondary", since=since, until=until)))
    read_s = time.perf_counter() - t
    store.close()  # a fresh connection for the export, as the CLI has
    store = open_store(db, create=False)

    out = work / "export"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    cpu = time.process_time()
    result = run_export(config, store, ExportRequest("ash-secondary", first, last, out),
                        log_path=work / "store.db.exports.jsonl")
    export_s = time.perf_counter() - t
    export_cpu = time.process_time() - cpu
    store.close()

    sqlite3 = shutil.which("sqlite3")
    peer_s = None
    if sqlite3:
        sql = (f"SELECT * FROM sessions WHERE school = 'ash-secondary' AND first_seen >= {since.timestamp()} "
               f"AND first_seen < {until.timestamp()} ORDER BY first_seen, id;")
        peer_out = work / "peer.csv"
        t = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with peer_out.open("w") as fh:
            subprocess.run([sqlite3, "-readonly", "-csv", "-header", str(db), sql], stdout=fh, check=True)
        peer_s = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        peer_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        peer_rows = sum(1 for _ in peer_out.open()) - 1
        # and the same rows as JSON too, since the export writes both a CSV and a JSON file
        t = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with (work / "peer.json").open("w") as fh:
            subprocess.run([sqlite3, "-readonly", "-json", str(db), sql], stdout=fh, check=True)
        peer_json_s = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        peer_json_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    print(f"read through the store API: {n:,} sessions in {read_s:.2f} s")
    print(f"export (csv + jsonl + report.html + manifest, pseudonymised): {result.sessions:,} sessions, "
          f"{result.flagged:,} flagged, in {export_s:.2f} s (CPU {export_cpu:.2f} s); files: "
          + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items())))
    if peer_s is not None:
        print(f"peer `sqlite3 -csv` dump of the same rows: {peer_rows:,} rows in {peer_s:.2f} s "
              f"(CPU {peer_cpu:.2f} s)")
        print(f"peer `sqlite3 -json` dump of the same rows: {peer_json_s:.2f} s (CPU {peer_json_cpu:.2f} s)")
        both_s, both_cpu = peer_s + peer_json_s, peer_cpu + peer_json_cpu
        print(f"ratio export / (sqlite3 -csv + sqlite3 -json): {export_s / both_s:.1f}x wall, "
              f"{export_cpu / max(both_cpu, 1e-3):.1f}x CPU")
        cpu_ratio = export_cpu / max(peer_cpu, 1e-3)
        print(f"ratio export / sqlite3 dump: {export_s / peer_s:.1f}x wall, {cpu_ratio:.1f}x CPU "
              "(the export also writes JSON lines, the HTML report, hashes and pseudonyms)")
    else:
        print("sqlite3 CLI not installed: no peer figure")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
