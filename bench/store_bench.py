"""Store benchmark: observations/s through session merging into the store, and a month's flagged listing.

    .venv/bin/python bench/store_bench.py [--observations 300000] [--sessions 1000000] [--rebuild]

1. Throughput: pre-built AccessEvents (a school day of 2,000 devices on ten
   platforms, each access seen as DNS, TLS, QUIC and proxy observations) go
   through `StoreWriter.submit` -> merge -> hash chain -> SQLite, timed to the
   last commit. Side by side, in the same run: a bare `executemany` of one row
   per observation into an unindexed SQLite table (what storing every
   observation would cost, with no merging and no hashing), and a bare
   `executemany` of the resulting session rows. Reported as ratios.
2. Listing: a store of `--sessions` sessions (three schools, 90 days) is built
   once through the real write path (kept in /tmp for reruns), then
   `social-monitor events --flagged --school ash-secondary` for one month is
   run as a real process and timed, and the same query in-process.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.metrics.registry import Metrics  # noqa: E402
from monitor.observation import AccessEvent  # noqa: E402
from monitor.store.filter import SessionFilter  # noqa: E402
from monitor.store.schema import SESSION_COLUMNS  # noqa: E402
from monitor.store.sessions import Session  # noqa: E402
from monitor.store.sqlite import open_store  # noqa: E402
from monitor.store.writer import StoreWriter  # noqa: E402
from tests.store_helpers import CONTACT, PUPILS, event  # noqa: E402

DAY0 = 1_788_940_800.0  # 2026-09-09 00:00 UTC
SCHOOLS = ("oak-primary", "ash-secondary", "central-office")
ZONES = ("classrooms", "staff-room", "school-office", "hall")
PERIODS = (("Lesson 1", "contact"), ("Break", "non-contact"), ("Lesson 2", "contact"),
           ("Lunch", "non-contact"), ("Lesson 3", "contact"), ("Lesson 4", "contact"))
PLATFORMS = ("facebook", "instagram", "youtube", "tiktok", "twitter", "linkedin", "reddit", "whatsapp",
             "snapchat", "pinterest")
SIGNALS = (("dns", "sensor"), ("tls", "sensor"), ("quic", "sensor"), ("http", "proxy"))


def day_of_events(n: int, rng: random.Random) -> list[AccessEvent]:
    """About n observations: accesses of 4-16 observations each, in time order."""
    out: list[AccessEvent] = []
    t = DAY0 + 8 * 3600
    while len(out) < n:
        t += rng.expovariate(1 / 0.05)
        dev = rng.randrange(2000)
        school = SCHOOLS[dev % 3]
        zone = ZONES[dev % 4]
        period, kind = PERIODS[int((t - DAY0 - 8 * 3600) / 3600) % len(PERIODS)]
        flags = tuple(f for f, on in ((CONTACT, kind == "contact"), (PUPILS, zone == "classrooms")) if on)
        platform = PLATFORMS[rng.randrange(len(PLATFORMS))]
        for k in range(rng.randrange(4, 17)):
            protocol, source = SIGNALS[k % 4]
            mac = f"3c:52:82:{dev >> 8 & 255:02x}:{dev & 255:02x}:01"
            out.append(event(t + k * 2.0, device=f"DEV-{dev:05d}", mac=mac, platform=platform,
                             school=school, zone=zone, period=period,
                             period_kind=kind, protocol=protocol, source=source, flags=flags,
                             owner=f"staff-{dev:05d}", local_date="2026-09-09",
                             hostname=f"www.{platform}.com" if k % 3 else f"static.{platform}.com"))
    return out[:n]


def bench_throughput(n: int, workdir: Path) -> None:
    rng = random.Random(5)
    print(f"building {n:,} observations ...", flush=True)
    events = day_of_events(n, rng)

    db = workdir / "throughput.db"
    metrics = Metrics()
    writer = StoreWriter(open_store(db), metrics, queue_size=n + 1, batch_size=20000, max_delay=0.5).start()
    started, cpu0 = time.perf_counter(), time.process_time()
    for e in events:
        writer.submit(e)
    assert writer.flush(600), "flush timed out"
    ours = time.perf_counter() - started
    ours_cpu = time.process_time() - cpu0
    writer.close()
    with open_store(db) as store:
        sessions = store.count()
        versions = store.chain_head().record_id
        assert store.verify().ok
    dropped = metrics.registry.get_sample_value("social_monitor_store_queue_dropped_total")

    # peer 1: one row per observation, bare executemany, no merge, no hash, no index
    peer_db = workdir / "peer.db"
    con = sqlite3.connect(peer_db, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("CREATE TABLE obs (ts REAL, device TEXT, mac TEXT, platform TEXT, school TEXT, zone TEXT, "
                "period TEXT, period_kind TEXT, protocol TEXT, hostname TEXT, owner TEXT, flags TEXT)")
    started, cpu0 = time.perf_counter(), time.process_time()
    rows = ((e.observation.timestamp, e.asset_tag, e.device_mac, e.platform, e.school, e.zone, e.period,
             e.period_kind, e.observation.signal, e.observation.hostname, e.owner,
             ",".join(f.name for f in e.flags)) for e in events)
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) == 20000:
            con.execute("BEGIN")
            con.executemany("INSERT INTO obs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            con.execute("COMMIT")
            batch = []
    if batch:
        con.execute("BEGIN")
        con.executemany("INSERT INTO obs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
        con.execute("COMMIT")
    peer_obs = time.perf_counter() - started
    peer_obs_cpu = time.process_time() - cpu0

    # peer 2: the resulting session rows, bare executemany into the same columns, no index
    src = sqlite3.connect(db)
    session_rows = src.execute(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions").fetchall()
    src.close()
    con.execute(f"CREATE TABLE sess ({', '.join(SESSION_COLUMNS)})")
    started = time.perf_counter()
    con.execute("BEGIN")
    con.executemany(f"INSERT INTO sess VALUES ({', '.join('?' * len(SESSION_COLUMNS))})", session_rows)
    con.execute("COMMIT")
    peer_sess = time.perf_counter() - started
    con.close()

    print()
    print("throughput (one process, writer thread, batches of 20,000, synchronous=FULL)")
    print(f"  social-monitor store   {n / ours:>12,.0f} obs/s   {n:,} obs -> {sessions:,} sessions, "
          f"{versions:,} chained versions in {ours:.2f} s, dropped {dropped:.0f}")
    print(f"  peer: executemany obs  {n / peer_obs:>12,.0f} rows/s  one row per observation, "
          f"no merge/hash/index (ours takes {ours / peer_obs:.1f}x its time, and stores "
          f"{n / max(sessions, 1):.1f}x fewer rows)")
    print(f"  peer: executemany sess {len(session_rows) / peer_sess:>12,.0f} rows/s  the resulting session "
          f"rows alone, bare: {peer_sess:.2f} s = {peer_sess / ours:.0%} of our end-to-end time")
    print(f"  CPU time (robust on a shared machine): ours {ours_cpu:.2f} s = {n / ours_cpu:,.0f} obs per "
          f"CPU-second; peer {peer_obs_cpu:.2f} s = {n / peer_obs_cpu:,.0f} rows per CPU-second")
    print(f"  target >= 50,000 obs/s: {'MET' if n / ours >= 50000 else 'NOT MET'} (wall), "
          f"{'MET' if n / ours_cpu >= 50000 else 'NOT MET'} (per CPU-second)")


def build_million(db: Path, total: int) -> None:
    """`total` sessions over 90 days and three schools, through `write_sessions` (lookup, chain, indexes)."""
    rng = random.Random(6)
    store = open_store(db)
    started = time.perf_counter()
    chunk: list[Session] = []
    written = 0
    per_day = total // 90
    for i in range(total):
        day = min(i // per_day, 89)
        dev = rng.randrange(6000)
        school = SCHOOLS[dev % 3]
        zone = ZONES[rng.randrange(4)]
        p = rng.randrange(len(PERIODS))
        period, kind = PERIODS[p]
        t = DAY0 + day * 86400 + 8 * 3600 + p * 3600 + rng.random() * 3000
        flags = tuple(f for f, on in ((CONTACT, kind == "contact"), (PUPILS, zone == "classrooms")) if on)
        flags = flags if rng.random() < 0.5 else ()  # about a third of sessions end up flagged
        platform = PLATFORMS[rng.randrange(len(PLATFORMS))]
        local_date = time.strftime("%Y-%m-%d", time.gmtime(t))
        chunk.append(Session(
            device=f"DEV-{dev:05d}", platform=platform, school=school, zone=zone, period=period,
            local_date=local_date, first_seen=t, last_seen=t + rng.random() * 600,
            observations=rng.randrange(1, 40), signals=("dns", "quic", "tls"),
            hostnames=(f"www.{platform}.com",), flags=flags, period_kind=kind, week="A",
            pupil_area=zone == "classrooms", owner=f"staff-{dev:05d}", asset_tag=f"DEV-{dev:05d}",
            device_mac="3c:52:82:00:00:01", device_kind="laptop", platform_name=platform.title(),
            category="social", zone_kind="classroom",
        ))
        if len(chunk) == 20000:
            written += store.write_sessions(chunk, now=t)
            chunk = []
            if written % 200000 == 0:
                rate = written / (time.perf_counter() - started)
                print(f"  {written:,} sessions ({rate:,.0f}/s)", flush=True)
    if chunk:
        written += store.write_sessions(chunk)
    store.close()
    print(f"  built {written:,} sessions in {time.perf_counter() - started:.1f} s; "
          f"{db.stat().st_size / 1e6:,.0f} MB")


def bench_listing(total: int, rebuild: bool, workdir: Path, verify: bool) -> None:
    db = Path(tempfile.gettempdir()) / f"social-monitor-bench-{total}.db"
    if rebuild or not db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        print(f"building a store of {total:,} sessions in {db} (once; --rebuild to redo) ...", flush=True)
        build_million(db, total)
    folder = workdir / "config"
    shutil.copytree(REPO / "config", folder)
    config = folder / "example.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["store"]["path"] = str(db)
    config.write_text(yaml.safe_dump(raw))
    argv = [str(REPO / ".venv" / "bin" / "social-monitor"), "events", "--config", str(config),
            "--flagged", "--school", "ash-secondary", "--since", "2026-10-01", "--until", "2026-10-31",
            "--format", "jsonl", "--identified", "--reason", "store_bench: the SQL json_object path"]
    subprocess.run(argv, capture_output=True, check=True)  # warm the page cache once
    times, cpus, lines = [], [], 0
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        lines = done.stdout.count(b"\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([argv[0], "check-config", str(config)], capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    startup_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    with open_store(db, create=False) as store:
        total_rows = store.count()
        started = time.perf_counter()
        month = SessionFilter(school="ash-secondary", flagged=True, since=1_790_809_200.0,
                              until=1_793_487_600.0)
        n = sum(1 for _ in store.sessions(month))
        inproc = time.perf_counter() - started
        started, cpu0 = time.perf_counter(), time.process_time()
        n_json = sum(1 for _ in store.ecs_json(month))
        inproc_json = time.perf_counter() - started
        inproc_json_cpu = time.process_time() - cpu0
        # peer: the same query as bare SQL, rows fetched, no objects built
        con = sqlite3.connect(db)
        started, cpu0 = time.perf_counter(), time.process_time()
        bare = len(con.execute("SELECT * FROM sessions WHERE school = ? AND flagged = 1 AND first_seen >= ? "
                               "AND first_seen < ?", ("ash-secondary", 1_790_809_200.0, 1_793_487_600.0))
                   .fetchall())
        bare_s = time.perf_counter() - started
        bare_cpu = time.process_time() - cpu0
        con.close()
    print()
    print(f"listing one school's month of flagged sessions among {total_rows:,} stored sessions")
    print(f"  social-monitor events --flagged --identified (process, jsonl)  best {min(times):.3f} s  "
          f"median {sorted(times)[1]:.3f} s  {lines:,} sessions; CPU {min(cpus):.2f} s, of which "
          f"interpreter, imports and config {startup_cpu:.2f} s (check-config)")
    print(f"  SessionStore.sessions() in-process              {inproc:.3f} s  {n:,} Session objects")
    print(f"  SessionStore.ecs_json() in-process              {inproc_json:.3f} s  {n_json:,} JSON lines; "
          f"CPU {inproc_json_cpu:.2f} s")
    print(f"  peer: bare SELECT fetchall                      {bare_s:.3f} s  {bare:,} rows; CPU "
          f"{bare_cpu:.2f} s (ecs_json is {inproc_json_cpu / bare_cpu:.1f}x its CPU)")
    print(f"  target < 1 s: {'MET' if min(times) < 1 else 'NOT MET'} (process), "
          f"{'MET' if inproc_json < 1 else 'NOT MET'} (query and JSON lines in-process), "
          f"{'MET' if inproc_json_cpu < 1 else 'NOT MET'} (their CPU time)")
    if verify:
        with open_store(db, create=False) as store:
            started = time.perf_counter()
            result = store.verify()
            print(f"  verify of the whole store: {time.perf_counter() - started:.1f} s: {result.summary()}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--observations", type=int, default=300_000)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the listing store")
    parser.add_argument("--skip-listing", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--verify", action="store_true", help="also time verify of the large store")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and up
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        if not args.skip_throughput:
            bench_throughput(args.observations, Path(tmp))
        if not args.skip_listing:
            bench_listing(args.sessions, args.rebuild, Path(tmp), args.verify)
    print(f"\n(cpu: {os.cpu_count()} cores; rerun: .venv/bin/python bench/store_bench.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
