"""`python -m tests.daemon_faults run ...`: the real daemon, with one fault a test switches on from outside.

Once the file named by $SOCIAL_MONITOR_TEST_WRITER_FAULT exists, the store
writer's thread raises (as a bug in it would) and ends. Everything else is the
unchanged `social-monitor` command, so what is tested is how the daemon notices.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FAULT_ENV = "SOCIAL_MONITOR_TEST_WRITER_FAULT"


def main() -> int:
    from monitor.metrics.multiprocess import cleanup_multiprocess, prepare_multiprocess

    metrics_dir = prepare_multiprocess()  # before prometheus_client is imported, as monitor.cli does
    try:
        from monitor import cli
        from monitor.store.writer import StoreWriter

        trigger = Path(os.environ[FAULT_ENV])
        purge_check = StoreWriter._maybe_purge  # called on every turn of the writer thread's loop

        def failing(self: StoreWriter) -> None:
            if trigger.exists():
                raise RuntimeError("injected fault in the store writer")
            purge_check(self)

        StoreWriter._maybe_purge = failing  # type: ignore[method-assign]
        return cli.main(sys.argv[1:])
    finally:
        if metrics_dir is not None:
            cleanup_multiprocess(metrics_dir)


if __name__ == "__main__":
    raise SystemExit(main())
