"""Central store benchmark: how far the central store lags 10 gateways under a steady load.

    PYTHONPATH=. .venv/bin/python bench/central_lag_bench.py [--gateways 10] [--rate 200] [--seconds 60]
        [--interval 5]

Starts its own PostgreSQL server (as tests/pg_server.py does) and one process per
simulated gateway. Each records `--rate` observations a second into its own
SQLite store through the real write path (sessions merged and chained, a write
every 0.25 s, 300 devices, so most observations extend a session: a new version,
a new record) while its shipper runs as the daemon runs it (`Shipper.run`, a
thread, every `--interval` seconds once caught up). For `--seconds` (after a 10 s
warm-up) the main process samples every gateway once a second: its lag in records
(the local chain head minus the central cursor) and in seconds (how long the
oldest record the central store does not hold has waited), as
`social_monitor_ship_lag_records` / `…_lag_seconds` would show. Reports the
records/s written and shipped, and the median, 95th percentile and largest lag
over all samples; the floor is the shipping interval itself (a record waits up
to one interval for the next round).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import queue
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from monitor.store.postgres.central import CentralStore  # noqa: E402
from monitor.store.postgres.shipper import ShipMetrics, Shipper  # noqa: E402
from monitor.store.sqlite import SQLiteSessionStore  # noqa: E402
from tests import pg_server as pg  # noqa: E402
from tests.store_helpers import event  # noqa: E402

TICK = 0.25  # seconds between writes (the daemon's writer batches about as often)
DEVICES = 300


def _gateway(store: str, dsn: str, gateway: str, rate: int, interval: float, stop: Any, done: Any) -> None:
    """Record `rate` observations/s and ship them as the daemon does, until `stop` is set; reports how
    many shipping attempts failed (each one a backoff, which the lag shows)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    rng = random.Random(gateway)
    registry = CollectorRegistry()
    shipper = Shipper(store, dsn, gateway, metrics=ShipMetrics(registry))
    ship_stop = threading.Event()
    with SQLiteSessionStore(store) as local:
        local.write([event(time.time(), device=f"{gateway.upper()}-0000")])
        ship = threading.Thread(target=shipper.run, args=(ship_stop,), kwargs={"interval": interval})
        ship.start()
        per_tick, due = rate * TICK, time.monotonic()
        while not stop.is_set():
            now = time.time()
            local.write([event(now, device=f"{gateway.upper()}-{rng.randrange(DEVICES):04d}")
                         for _ in range(int(per_tick))])
            due += TICK
            time.sleep(max(0.0, due - time.monotonic()))
    ship_stop.set()
    ship.join()
    done.put(registry.get_sample_value("social_monitor_ship_failures_total") or 0.0)


def _lag(store: Path, central_seq: int, now: float) -> tuple[int, float]:
    """(records the central store does not hold, seconds the oldest of them has waited) for one gateway."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        head = con.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0]
        oldest = con.execute("SELECT recorded_at FROM records WHERE id = ?", (central_seq + 1,)).fetchone()
    finally:
        con.close()
    return max(0, head - central_seq), (max(0.0, now - oldest[0]) if oldest else 0.0)


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200, help="observations/s per gateway")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=5.0, help="the shipper's interval once caught up")
    args = parser.parse_args()
    if reason := pg.missing_reason():
        print(f"skipped: {reason}")
        return 1
    server = pg.start_server()
    ctx = mp.get_context("spawn")  # fresh interpreters: nothing of this process's state forked into them
    stop, done = ctx.Event(), ctx.Queue()
    procs: list[Any] = []
    try:
        with tempfile.TemporaryDirectory(prefix="central-lag-") as tmp:
            name = server.create_database("lag")
            gateways = [f"gw{i:02d}" for i in range(args.gateways)]
            with CentralStore(server.dsn(dbname=name)) as owner:
                owner.migrate()
                for g in gateways:
                    owner.register_gateway(g, f"{name}_{g}")
            stores = {g: Path(tmp) / f"{g}.db" for g in gateways}
            procs = [ctx.Process(target=_gateway, args=(str(stores[g]), server.dsn(f"{name}_{g}", name), g,
                                                       args.rate, args.interval, stop, done))
                     for g in gateways]
            for p in procs:
                p.start()
            time.sleep(10.0)  # warm-up: every gateway writing and shipping
            records, seconds = [], []
            central = psycopg.connect(server.dsn(dbname=name), autocommit=True)
            start_seq = dict(central.execute("SELECT gateway_id, last_seq FROM gateways").fetchall())
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.seconds:
                cursors = dict(central.execute("SELECT gateway_id, last_seq FROM gateways").fetchall())
                now = time.time()
                for g in gateways:
                    lag_records, lag_seconds = _lag(stores[g], cursors[g], now)
                    records.append(lag_records)
                    seconds.append(lag_seconds)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t0) % 1.0))
            elapsed = time.monotonic() - t0
            end_seq = dict(central.execute("SELECT gateway_id, last_seq FROM gateways").fetchall())
            central.close()
            stop.set()
            reports = []
            with contextlib.suppress(queue.Empty):
                for _ in procs:
                    reports.append(done.get(timeout=60))
            failures = sum(reports)
            if len(reports) < len(procs):
                print(f"warning: {len(procs) - len(reports)} gateway(s) did not finish within 60 s")
            for p in procs:
                p.join(timeout=60)
            shipped = sum(end_seq[g] - start_seq[g] for g in gateways)
        print(f"{args.gateways} gateways x {args.rate} observations/s for {elapsed:.0f} s, shipper every "
              f"{args.interval:g} s once caught up: {shipped / elapsed:,.0f} records/s shipped in total "
              f"({len(records)} samples, {failures:.0f} failed shipping attempts)")
        print(f"  lag in records: median {statistics.median(records):,.0f}, p95 {_pct(records, 0.95):,.0f}, "
              f"max {max(records):,}")
        print(f"  lag in seconds: median {statistics.median(seconds):.1f}, p95 {_pct(seconds, 0.95):.1f}, "
              f"max {max(seconds):.1f} (floor: the {args.interval:g} s interval)")
    finally:
        stop.set()
        for p in procs:
            if p.is_alive():
                p.terminate()
        pg.remove_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
