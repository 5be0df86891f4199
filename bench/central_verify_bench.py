"""Peak memory of walking one gateway's central chain (`central verify`, `verify DIR --against central`).

    PYTHONPATH=. .venv/bin/python bench/central_verify_bench.py [--sessions 500000] [--rounds 2]

Starts its own PostgreSQL server (as tests/pg_server.py does), builds one gateway's
SQLite store through the real write path (`--sessions` sessions, each extended once:
two chained records per session) and ships it with the real `Shipper`. Then, in the
same run, alternately `--rounds` times, a fresh process walks the whole central chain
with `CentralStore.verify_gateway` two ways:

- before: the previous `CentralStore.records` (commit 99845d1): a client-side cursor,
  `fetchmany(5000)` over a result libpq had already received whole;
- after: this tree's `records`, a server-side cursor read `chain_batch` (5,000)
  records per round trip.

Each process reports its resident set after connecting (baseline), its peak (VmHWM)
and the seconds the walk took; printed side by side with the ratio of the peaks and
of the growth above the baseline.

On the 2-core reference machine (shared, PostgreSQL 15, 2026-11-30), `--sessions 500000`
(1,000,000 records), 2 rounds: before, a peak of 1,050 MiB (+1,004 MiB while walking),
8.0-11.3 s; after, 65 MiB (+19 MiB: one batch), 8.6-11.4 s. Peak RSS 16.1x lower, growth
53x lower, the same time; the growth before is linear in the chain (+52 MiB at 40,000
records), after it is one batch whatever the length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import structlog  # noqa: E402

from monitor.store.postgres.central import CentralStore  # noqa: E402
from monitor.store.postgres.retention import CHAIN_SQL  # noqa: E402
from tests import pg_server as pg  # noqa: E402
from tests.central_helpers import fill  # noqa: E402
from tests.store_helpers import T0  # noqa: E402

GATEWAY = "oak"


def kib(field: str) -> int:
    """A VmRSS/VmHWM line of /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _client_side_records(self: CentralStore, gateway_id: str, after: int = 0) -> Iterator[Any]:
    """`CentralStore.records` as it was before (commit 99845d1), the peer."""
    cur = self.con.cursor()
    cur.execute(CHAIN_SQL, (gateway_id, after))
    while batch := cur.fetchmany(5000):
        yield from batch


def child(mode: str, dsn: str) -> None:
    """One walk in this process; prints JSON: mode, records held, fault, baseline and peak KiB, seconds."""
    if mode == "before":
        CentralStore.records = _client_side_records  # type: ignore[method-assign,assignment]
    with CentralStore(dsn) as central:
        central.cursor(GATEWAY)  # connected, a first round trip: the baseline includes the connection
        baseline = kib("VmRSS")
        started = time.perf_counter()
        held, fault = central.verify_gateway(GATEWAY)
        seconds = time.perf_counter() - started
    print(json.dumps({"mode": mode, "held": held, "fault": str(fault) if fault else None,
                      "baseline_kib": baseline, "peak_kib": kib("VmHWM"), "seconds": seconds}))


def walk(mode: str, dsn: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--dsn", dsn], check=True,
                         capture_output=True, text=True, cwd=REPO).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500_000, help="sessions (2 records each)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=["before", "after"], help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if args.child:
        child(args.child, args.dsn)
        return 0
    if reason := pg.missing_reason():
        print(f"skipped: {reason}")
        return 1
    from monitor.store.postgres.shipper import Shipper

    server = pg.start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="central-verify-bench-") as tmp:
            t = time.perf_counter()
            store = Path(tmp) / "oak.db"
            records = fill(store, args.sessions, start=T0, per_write=500)
            print(f"built a store of {records:,} records in {time.perf_counter() - t:.1f} s")
            name = server.create_database("verify")
            with CentralStore(server.dsn(dbname=name)) as admin:
                admin.migrate()
                admin.register_gateway(GATEWAY, f"{name}_{GATEWAY}")
            t = time.perf_counter()
            shipper = Shipper(str(store), server.dsn(f"{name}_{GATEWAY}", name), GATEWAY, batch_size=20_000)
            sent = shipper.ship_once().sent
            shipper.close()
            print(f"shipped {sent:,} records in {time.perf_counter() - t:.1f} s")
            dsn = server.dsn(dbname=name)
            runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
            for _ in range(args.rounds):
                for mode in ("before", "after"):
                    result = walk(mode, dsn)
                    assert result["held"] == records and result["fault"] is None, result
                    runs[mode].append(result)
                    print(f"{mode:6}: {result['held']:,} records walked in {result['seconds']:.1f} s; RSS "
                          f"{result['baseline_kib'] / 1024:.0f} MiB after connecting, peak "
                          f"{result['peak_kib'] / 1024:.0f} MiB (+{growth(result) / 1024:.0f} MiB)")
            before, after = (max(runs[m], key=lambda r: r["peak_kib"]) for m in ("before", "after"))
            print(f"peak RSS before / after: {before['peak_kib'] / after['peak_kib']:.1f}x; growth while "
                  f"walking before / after: {growth(before) / max(growth(after), 1):.0f}x")
    finally:
        pg.remove_server(server)
    return 0


def growth(result: dict[str, Any]) -> int:
    return int(result["peak_kib"]) - int(result["baseline_kib"])


if __name__ == "__main__":
    sys.exit(main())
