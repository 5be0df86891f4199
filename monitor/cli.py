"""The `social-monitor` command: one subcommand per module in `monitor/commands/`.

Each command module exposes `register(subparsers)`, which adds its parsers and
sets `func` to a callable taking the parsed arguments and returning an exit
code. Errors a user can act on are raised as `UserError` and printed as one
line, never as a traceback.

Start-up is paid by every command, so only the chosen command's module is
imported: `COMMANDS` names each command's module and help line, which is all
`social-monitor --help` needs (tests/test_cli.py holds the table to the modules).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.errors import UserError


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


_DAEMON = "monitor.commands.daemon_commands"
_CONFIG = "monitor.commands.config_commands"
_STORE = "monitor.commands.store_commands"
_HOLD = "monitor.commands.hold_commands"
_SHIP = "monitor.commands.ship_commands"
_CENTRAL = "monitor.commands.central_commands"
_CAPTURE = "monitor.commands.capture_commands"
_EXPORT = "monitor.commands.export_commands"
_REVIEW = "monitor.commands.review_commands"

# Order is the order of `social-monitor --help`; each help line is the one its module registers.
COMMANDS = [
    Command("run", _DAEMON, "run the daemon: sensor, proxy, store writer and metrics"),
    Command("proxy", _DAEMON, "run only the proxy (mitmdump with the addon built in), in the foreground"),
    Command("check-config", _CONFIG, "validate a trust config and list every error"),
    Command("explain", _CONFIG, "tag one access and print it as a JSON event"),
    Command("platforms", _CONFIG, "list the platform catalog in scope"),
    Command("verify", _STORE, "check the store's hash chain and name the first record at fault"),
    Command("signing-key", _STORE, "print the gateway's public signing key (who should hold it: "
            "docs/exports.md)"),
    Command("purge", _STORE, "remove sessions older than retention_days, keeping a checkpoint"),
    Command("events", _STORE, "list stored sessions with ECS and social.* names, under aliases "
            "unless --identified --reason"),
    Command("hold", _HOLD, "legal hold: keep one device's or person's sessions past retention "
            "until released (recorded in the chain and the export log)"),
    Command("ship", _SHIP, "send this gateway's records to the trust's central store"),
    Command("central", _CENTRAL, "the trust's central store: schema, gateways, status and checks"),
    Command("classify", _CAPTURE, "read pcap/pcapng files and print one line per observation"),
    Command("sense", _CAPTURE, "capture live and print one line per observation"),
    Command("export", _EXPORT, "write an audit export (CSV, JSON lines, HTML report, manifest), or "
            "an investigation's (--device or --staff, with --case and --reason)"),
    Command("export-log", _EXPORT, "list every export and subject access request ever made"),
    Command("privacy-notice", _EXPORT, "the privacy notice for staff, generated from the config"),
    Command("sar", _EXPORT, "subject access request: everything stored about one person"),
    Command("verify-export", _EXPORT, "check an export directory against its manifest"),
    Command("review", _REVIEW, "record what was done about a flagged session (kept in the hash chain)"),
]
COMMAND_MODULES = list(dict.fromkeys(c.module for c in COMMANDS))
ALL = "*"


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` names (its first argument not starting with '-'), if it is one of ours."""
    names = {c.name for c in COMMANDS}
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in names else None
    return None


def build_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    """The parser; the full one for `command` (every command's for ALL), a help line for the rest.

    A command's module registers all of its commands; those it registers replace the placeholders,
    which keep their place in the help listing."""
    parser = argparse.ArgumentParser(
        prog="social-monitor",
        description="Accountable monitoring of social-media access on a school trust's devices.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for c in COMMANDS:
        sub.add_parser(c.name, help=c.help)
    modules = COMMAND_MODULES if command == ALL else [c.module for c in COMMANDS if c.name == command]
    for module in modules:
        scratch = argparse.ArgumentParser(prog=parser.prog).add_subparsers()
        importlib.import_module(module).register(scratch)
        sub.choices.update(scratch.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    daemon = bool(argv) and argv[0] == "run"
    metrics_dir = None
    if daemon:
        # before anything imports prometheus_client: the proxy child counts into the same files
        from monitor.metrics.multiprocess import prepare_multiprocess

        metrics_dir = prepare_multiprocess()
    parser = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)  # --help and argument errors exit here, before logging is set up
    from monitor import logsetup

    logsetup.configure(sys.stdout if daemon else sys.stderr)
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
