"""A small writer process for the store's reliability tests (run as `python tests/store_proc.py`).

`burst`: chunks of events for one new device each; after each chunk is
committed (writer.flush) it prints `committed <chunk> <events>` so the parent
knows exactly what must survive a kill -9.
`steady`: a fixed number of events over shared keys, from one source
(sensor or proxy), for the two-writer test; prints `done <events> <dropped>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.metrics.registry import Metrics
from monitor.store.sqlite import open_store
from monitor.store.writer import StoreWriter
from tests.store_helpers import T0, event


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["burst", "steady"])
    parser.add_argument("db")
    parser.add_argument("--chunks", type=int, default=100000)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--source", choices=["sensor", "proxy"], default="sensor")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout is the protocol
    writer = StoreWriter(open_store(args.db), Metrics(), queue_size=100000, batch_size=args.batch_size,
                         max_delay=0.01).start()
    if args.mode == "burst":
        for chunk in range(args.chunks):
            for i in range(args.chunk_size):
                writer.submit(event(T0 + i, device=f"D{chunk:06d}"))
            if not writer.flush(10):
                return 2
            print(f"committed {chunk} {args.chunk_size}", flush=True)
        return 0
    protocol = "tls" if args.source == "sensor" else "http"
    offset = 0.0 if args.source == "sensor" else 0.01
    for i in range(args.events):
        e = event(T0 + i * 0.05 + offset, device=f"D{i % args.devices:03d}", protocol=protocol,
                  source=args.source)
        for _ in range(100):  # the test wants every event: back off instead of dropping (bounded)
            if writer.submit(e):
                break
            writer.flush(1)
        else:
            return 4
    ok = writer.close(timeout=30)
    print(f"done {args.events} {writer.dropped}", flush=True)
    return 0 if ok else 3


if __name__ == "__main__":
    raise SystemExit(main())
