"""A shipper in a process of its own, for tests that SIGKILL it mid-batch: ships until told to stop."""

from __future__ import annotations

import sys

from monitor.store.postgres.shipper import Shipper


def main(store: str, dsn: str, gateway: str, batch_size: str) -> None:
    shipper = Shipper(store, dsn, gateway, batch_size=int(batch_size))
    print("ready", flush=True)
    while shipper.ship_once().lag_records:
        pass


if __name__ == "__main__":
    main(*sys.argv[1:])
