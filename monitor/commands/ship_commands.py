"""`ship`: send this gateway's records to the trust's central store (`store.central`), once or until stopped.

The daemon ships in a thread of its own; this command is for the first catch-up after
setting `store.central`, for a cron job on a gateway run without the daemon, and for
seeing the lag at a glance.
"""

from __future__ import annotations

import argparse
import signal
import threading

from monitor.commands.config_commands import add_config_argument, load_chosen_config
from monitor.errors import UserError


def ship(args: argparse.Namespace) -> int:
    config = load_chosen_config(args.config)
    if not config.model.store.central:
        raise UserError(f"{config.path}: store.central is not set: this gateway keeps its records in "
                        f"{config.store_path} only")
    import psycopg

    from monitor.store.postgres.connect import shown
    from monitor.store.postgres.shipper import shipper_for

    shipper = shipper_for(config)
    assert shipper is not None
    where = shown(shipper.central_params) if not isinstance(shipper.central_params, str) else "central"
    if not args.once:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        shipper.run(stop, interval=args.interval)
        return 0
    try:
        report = shipper.ship_once()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"central store {where}: {first}") from None
    except LookupError as exc:
        raise UserError(f"central store {where}: {exc.args[0]}") from None
    finally:
        shipper.close()
    print(f"gateway {shipper.gateway_id}: shipped {report.sent} records to {where}; the central store "
          f"holds through record {report.central.record_id} of {report.local_head}; lag "
          f"{report.lag_records} records ({report.lag_seconds:.0f} s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ship", help="send this gateway's records to the trust's central store",
                       description="Send the hash-chained records the central store (store.central) does not "
                       "hold yet, in order, from its cursor; safe to interrupt and run again.")
    add_config_argument(p)
    p.add_argument("--once", action="store_true", help="catch up once and exit (default: keep shipping)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between rounds when caught up")
    p.set_defaults(func=ship)
