"""The `social-monitor` command: one subcommand per module in `monitor/commands/`.

Each command module exposes `register(subparsers)`, which adds its parser and
sets `func` to a callable taking the parsed arguments and returning an exit
code. Errors a user can act on are raised as `UserError` and printed as one
line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from monitor.errors import UserError

# Order is the order of `social-monitor --help`.
COMMAND_MODULES = [
    "monitor.commands.daemon_commands",
    "monitor.commands.config_commands",
    "monitor.commands.store_commands",
    "monitor.commands.hold_commands",
    "monitor.commands.ship_commands",
    "monitor.commands.central_commands",
    "monitor.commands.capture_commands",
    "monitor.commands.export_commands",
    "monitor.commands.review_commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="social-monitor",
        description="Accountable monitoring of social-media access on a school trust's devices.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    daemon = bool(argv) and argv[0] == "run"
    metrics_dir = None
    if daemon:
        # before anything imports prometheus_client: the proxy child counts into the same files
        from monitor.metrics.multiprocess import prepare_multiprocess

        metrics_dir = prepare_multiprocess()
    from monitor import logsetup

    logsetup.configure(sys.stdout if daemon else sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    finally:
        if metrics_dir is not None:
            from monitor.metrics.multiprocess import cleanup_multiprocess

            cleanup_multiprocess(metrics_dir)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"social-monitor: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `social-monitor classify x.pcap | head` closes the pipe: not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
