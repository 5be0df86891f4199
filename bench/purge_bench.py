"""Purge benchmark: what secure delete and giving pages back cost, beside the purge without them.

    .venv/bin/python bench/purge_bench.py [--sessions 100000]

Builds a store of `--sessions` sessions (one a minute, 500 devices) through the real
write path, copies it, and in the same run:

1. purges the older half with the store's own purge (secure_delete on, incremental
   vacuum, WAL truncated), and the same purge on a plain connection with secure
   delete off and no vacuum (what a build without secure delete did before): time,
   file size after, and whether a purged hostname is still in the file's bytes;
2. converts a copy made as an earlier release left it (auto_vacuum NONE) with the
   one VACUUM its first purge runs: seconds per 100 MB.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.store import reclaim, retention
from monitor.store.chain import GENESIS, ChainHead
from monitor.store.sqlite import DAY, open_store
from tests.store_helpers import T0, event


def build(path: Path, n: int) -> None:
    with open_store(path) as store:
        for b in range(0, n, 5000):
            store.write([event(T0 + i * 60, device=f"OAK-{i % 500:04d}", hostname=f"h{i}.purged.example")
                         for i in range(b, min(b + 5000, n))])


def size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def still_there(path: Path, purged_below: int) -> int:
    """How many purged sessions' hostnames can still be read in the file's and the WAL's bytes."""
    wal = path.with_name(path.name + "-wal")
    data = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    return len({int(i) for i in re.findall(rb"h(\d+)\.purged\.example", data) if int(i) < purged_below})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=100000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="purge-bench-"))
    try:
        base = tmp / "base.db"
        build(base, args.sessions)
        cutoff_now = T0 + args.sessions * 30 + 90 * DAY  # the older half is past a 90-day retention
        ours, plain = tmp / "ours.db", tmp / "plain.db"
        shutil.copy(base, ours)
        shutil.copy(base, plain)
        started = time.perf_counter()
        with open_store(ours, create=False) as store:
            result = store.purge(90, now=cutoff_now)
            ours_s = time.perf_counter() - started
            ours_size, ours_left = size(ours), still_there(ours, args.sessions // 2)
        started = time.perf_counter()
        con = sqlite3.connect(plain, isolation_level=None)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA secure_delete = OFF")
        con.execute("BEGIN IMMEDIATE")
        retention.purge_before(con, cutoff_now - 90 * DAY, ChainHead(0, GENESIS), cutoff_now, str(plain))
        con.execute("COMMIT")
        plain_s = time.perf_counter() - started
        plain_size, plain_left = size(plain), still_there(plain, args.sessions // 2)
        con.close()
        print(f"store of {args.sessions} sessions, {base.stat().st_size / 1e6:.1f} MB; "
              f"purge removes {result.sessions_removed}")
        print(f"  store purge (secure delete, incremental vacuum, WAL truncated): {ours_s:.2f} s, "
              f"{ours_size / 1e6:.1f} MB after, purged hostnames still readable: {ours_left}")
        print(f"  plain purge (secure delete off, no vacuum):                   {plain_s:.2f} s, "
              f"{plain_size / 1e6:.1f} MB after, purged hostnames still readable: {plain_left}")
        print(f"  ratio: {ours_s / plain_s:.2f}x the time, {ours_size / plain_size:.2f}x the size")
        old = tmp / "old.db"
        shutil.copy(base, old)
        con = sqlite3.connect(old, isolation_level=None)
        con.execute("PRAGMA auto_vacuum = NONE")
        con.execute("VACUUM")
        con.execute("PRAGMA journal_mode = WAL")
        mb = old.stat().st_size / 1e6
        started = time.perf_counter()
        converted = reclaim.reclaim(con, str(old)).converted
        took = time.perf_counter() - started
        con.close()
        print(f"  converting an earlier release's {mb:.1f} MB store (one VACUUM, converted={converted}): "
              f"{took:.2f} s, {took / mb * 100:.2f} s per 100 MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
