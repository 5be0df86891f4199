"""Central store benchmark: records shipped per second from 10 gateways into one PostgreSQL, against COPY.

    PYTHONPATH=. .venv/bin/python bench/central_bench.py [--gateways 10] [--sessions 10000] [--batch 5000]

Starts its own PostgreSQL server (as tests/pg_server.py does: initdb into a
temporary directory, a Unix socket only), builds one SQLite store per simulated
gateway through the real write path (`--sessions` sessions each, every one
extended once: two chained records per session), then, in the same run:

1. ship: one process per gateway runs `Shipper.ship_once` (its own role, batches of
   `--batch`, each one transaction checked by the arrival trigger: consecutive ids,
   links, hashes recomputed, body digests, the sessions table kept in step), all at
   once; timed from the start signal until the last gateway is caught up;
2. COPY (the peer): one process per gateway COPYs the same rows in the same batch
   sizes into a plain unpartitioned table with no trigger, no check and no index.

Reports records/s in total for each and the ratio, and the CPU each spent per record
(the server backends' from /proc, the shipping processes' own): on a machine shared
with other work the wall clock follows the other work, CPU per record much less.
The issue's target is 50,000/s in total.

On the 2-core reference machine (shared, load average 2-9, PostgreSQL 15, 2026-11-30),
10 gateways x 20,000 records, schema 3 and schema 4 run alternately twice with this
command (a checkout of commit ebeeaa6 with this script, and this tree): before 15,024
and 18,601 records/s, 52.7 and 53.1 us of CPU per record; after 35,922 and 35,727
records/s, 36.6 and 35.5 us (54,600-56,300 records/s on two cores of its own); plain
COPY 47,000-116,000 records/s, ~7 us. What changed and where the time goes:
docs/central.md, "Throughput"; monitor/store/postgres/arrival.py.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.store.postgres.central import CentralStore  # noqa: E402
from monitor.store.postgres.shipper import Shipper  # noqa: E402
from tests import pg_server as pg  # noqa: E402
from tests.central_helpers import fill, local_records  # noqa: E402
from tests.store_helpers import T0  # noqa: E402

PLAIN = ("CREATE TABLE plain_records (gateway_id TEXT, seq BIGINT, session_id BIGINT, version INTEGER, "
         "recorded_at DOUBLE PRECISION, body TEXT, body_sha256 TEXT, prev_hash TEXT, hash TEXT)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (a server backend: the server runs on this machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ship(store: str, dsn: str, gateway: str, batch: int, start: Any, done: Any) -> None:
    shipper = Shipper(store, dsn, gateway, batch_size=batch)
    start.wait()
    client = time.process_time()
    report = shipper.ship_once()
    client = time.process_time() - client
    end = time.perf_counter()
    assert shipper._central is not None
    server = cpu_seconds(shipper._central.con.info.backend_pid)  # a backend of its own, started for this
    shipper.close()
    done.put((gateway, report.sent, end, server, client))


def _copy(store: str, dsn: str, gateway: str, batch: int, start: Any, done: Any) -> None:
    import psycopg

    rows = local_records(Path(store))
    con = psycopg.connect(dsn, autocommit=True)
    start.wait()
    client = time.process_time()
    for first in range(0, len(rows), batch):
        with con.transaction(), con.cursor().copy("COPY plain_records FROM STDIN") as copy:
            for r in rows[first:first + batch]:
                copy.write_row((gateway, *r))
    client = time.process_time() - client
    end = time.perf_counter()
    server = cpu_seconds(con.info.backend_pid)
    con.close()
    done.put((gateway, len(rows), end, server, client))


@dataclass(frozen=True)
class Race:
    records: int
    seconds: float  # from the start signal until the last process finished
    server_cpu: float  # CPU seconds of the server backends doing it
    client_cpu: float  # CPU seconds of the shipping processes (reading SQLite, preparing, sending)

    @property
    def per_second(self) -> float:
        return self.records / self.seconds

    def cpu_us(self) -> tuple[float, float]:
        return 1e6 * self.server_cpu / self.records, 1e6 * self.client_cpu / self.records


def _race(target: Any, jobs: list[tuple[str, str, str]], batch: int) -> Race:
    """Run one process per job, release them together."""
    start, done = mp.Event(), mp.Queue()  # type: ignore[var-annotated]
    procs = [mp.Process(target=target, args=(*job, batch, start, done)) for job in jobs]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every process connected and waiting
    t0 = time.perf_counter()
    start.set()
    results = [done.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    return Race(sum(r[1] for r in results), max(r[2] for r in results) - t0, sum(r[3] for r in results),
                sum(r[4] for r in results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=10000, help="sessions per gateway (2 records each)")
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if reason := pg.missing_reason():
        print(f"skipped: {reason}")
        return 1
    server = pg.start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="central-bench-") as tmp:
            gateways = [f"gw{i:02d}" for i in range(args.gateways)]
            t = time.perf_counter()
            stores = {}
            for i, g in enumerate(gateways):
                stores[g] = Path(tmp) / f"{g}.db"
                fill(stores[g], args.sessions, start=T0 + i * 86400.0 * 3, device=g.upper(), per_write=500)
            print(f"built {len(gateways)} gateway stores of {2 * args.sessions} records in "
                  f"{time.perf_counter() - t:.1f} s")
            name = server.create_database("bench")
            with CentralStore(server.dsn(dbname=name)) as admin:
                admin.migrate()
                for g in gateways:
                    admin.register_gateway(g, f"{name}_{g}")
                admin.con.execute(PLAIN)
            ship_jobs = [(str(stores[g]), server.dsn(f"{name}_{g}", name), g) for g in gateways]
            ship = _race(_ship, ship_jobs, args.batch)
            copy_jobs = [(str(stores[g]), server.dsn(dbname=name), g) for g in gateways]
            copy = _race(_copy, copy_jobs, args.batch)
            with CentralStore(server.dsn(dbname=name)) as admin:
                assert admin.count("records") == ship.records, "the central store holds every record shipped"
                sessions = admin.count("sessions")
            print(f"ship (checked, partitioned, sessions kept): {ship.records} records from {len(gateways)} "
                  f"gateways in {ship.seconds:.2f} s = {ship.per_second:,.0f} records/s "
                  f"({sessions} sessions)")
            print(f"plain COPY (no checks, one table):          {copy.records} records in "
                  f"{copy.seconds:.2f} s = {copy.per_second:,.0f} records/s")
            print(f"ship / COPY: {ship.per_second / copy.per_second:.2f}")
            # wall time follows whatever else the machine runs; CPU per record does not (much)
            for label, race in (("ship", ship), ("COPY", copy)):
                server_us, client_us = race.cpu_us()
                print(f"{label} CPU per record: server {server_us:.1f} us + shippers {client_us:.1f} us = "
                      f"{server_us + client_us:.1f} us: {2e6 / (server_us + client_us):,.0f} records/s "
                      "on 2 cores of its own")
    finally:
        pg.remove_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
