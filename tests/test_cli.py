"""The command line: its subcommands, and how a command's failure becomes an exit code and one line."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest

from monitor.cli import ALL, COMMAND_MODULES, COMMANDS, _dispatch, build_parser, chosen_command, main
from monitor.errors import ConfigError, UserError
from tests.conftest import REPO

SUBCOMMANDS = ["run", "proxy", "check-config", "explain", "platforms", "events", "verify", "signing-key",
               "purge", "hold", "ship", "central", "classify", "sense", "export", "export-log",
               "privacy-notice", "sar", "verify-export", "review"]


def test_help_lists_the_subcommands_in_module_order():
    choices = list(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert sorted(choices) == sorted(SUBCOMMANDS)
    assert choices[:2] == ["run", "proxy"]  # daemon_commands first, as COMMAND_MODULES orders them
    assert COMMAND_MODULES[0] == "monitor.commands.daemon_commands"


def registered_by_modules() -> dict[str, tuple[str, str]]:
    """Each command as its module registers it: name -> (module, help line)."""
    import importlib

    found: dict[str, tuple[str, str]] = {}
    for module in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        helps = {a.dest: a.help for a in sub._choices_actions}
        found.update({name: (module, helps[name]) for name in sub.choices})
    return found


def test_the_command_table_is_what_the_modules_register():
    """`--help` is printed from COMMANDS without importing the modules: it must say what they say."""
    assert {c.name: (c.module, c.help) for c in COMMANDS} == registered_by_modules()


@pytest.mark.parametrize(
    ("argv", "chosen"),
    [(["events", "--flagged"], "events"), (["--help"], None), ([], None), (["no-such-command"], None),
     (["-h", "platforms"], "platforms"), (["check-config", "events"], "check-config")],
    ids=["command-then-options", "help-only", "nothing", "unknown", "option-first", "first-word-wins"],
)
def test_chosen_command_is_the_first_word(argv, chosen):
    assert chosen_command(argv) == chosen


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_a_parser_built_for_one_command_parses_it_like_the_full_one(name):
    """The chosen command's parser is its module's own: same options and function as with every
    module imported (its --help therefore too)."""
    only = build_parser(name)._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
    full = build_parser(ALL)._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
    assert only.format_help() == full.format_help()
    pairs = [(only, full)]
    if only._subparsers is not None:  # actions of their own (`central migrate`, ...): each has the func
        nested, full_nested = (p._subparsers._group_actions[0].choices for p in (only, full))  # type: ignore
        pairs = [(nested[action], full_nested[action]) for action in nested]
    for one, every in pairs:
        func, full_func = one.get_default("func"), every.get_default("func")
        assert func is not None and func.__qualname__ == full_func.__qualname__  # some are made per call


# Heavy libraries no quick command may import: scapy (the sensor), mitmproxy (the proxy),
# prometheus_client (metrics) and psycopg (the central store).
HEAVY = ("scapy", "mitmproxy", "prometheus_client", "psycopg")


# What a command that never logs, signs or reads the store does not need either: structlog (and
# the asyncio it pulls in; monitor.logsetup configures it when first imported) and cryptography.
UNUSED = ("structlog", "asyncio", "cryptography")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("argv", "needs_store", "also_unused"),
    [(["--help"], False, UNUSED), (["platforms"], False, UNUSED), (["check-config"], False, UNUSED),
     (["events"], True, ()),  # opening the store (monitor.store.sqlite) needs both
     (["explain", "--client", "10.0.0.1", "--host", "www.facebook.com"], False, UNUSED),
     (["classify", "--help"], False, UNUSED), (["run", "--help"], False, UNUSED),
     (["export", "--help"], False, UNUSED)],
    ids=["help", "platforms", "check-config", "events", "explain", "classify-help", "run-help",
         "export-help"],
)
def test_quick_commands_do_not_import_the_heavy_libraries(tmp_path, argv, needs_store, also_unused):
    """Start-up is paid by every command (issue 22): a command that does not capture, proxy, serve
    metrics or reach the central store must not import what does. Checked on the modules the
    process really imported (`-X importtime`), not on timing."""
    import shutil

    cfg = tmp_path / "cfg"
    shutil.copytree(REPO / "config", cfg)
    if needs_store:
        from monitor.store.sqlite import open_store

        (tmp_path / "var").mkdir()
        open_store(tmp_path / "var" / "social-monitor.db").close()
    config_args = [] if "--help" in argv else ["--config", str(cfg / "example.yaml")]
    imported = imported_by(["-m", "monitor", *argv, *config_args])
    assert "monitor.cli" in imported  # the check can see our own imports
    assert heavy(imported) == []
    assert heavy(imported, also_unused) == []


def imported_by(args: list[str]) -> set[str]:
    """Every module a `python ARGS` process imported, from its `-X importtime` lines."""
    run = subprocess.run([sys.executable, "-X", "importtime", *args],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr[-500:]
    return {line.rpartition("|")[2].strip() for line in run.stderr.splitlines()
            if line.startswith("import time:")}


def heavy(imported: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted({m.split(".")[0] for m in imported} & set(names))


@pytest.mark.integration
@pytest.mark.parametrize("module", ["monitor.metrics.registry", "monitor.proxy.addon"])
def test_the_heavy_import_check_sees_a_heavy_import(module):
    """The check above is not blind: a process importing the metrics or the proxy is caught."""
    assert heavy(imported_by(["-c", f"import {module}"])) != []


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["--help"], 0), ([], 2), (["no-such-command"], 2), (["explain"], 2)],
    ids=["help", "no-command", "unknown-command", "missing-required-option"],
)
def test_argument_errors_exit_like_argparse(capsys, argv, code):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == code


def raising(exc: BaseException):
    def func(_args: argparse.Namespace) -> int:
        raise exc

    return func


@pytest.mark.parametrize(
    ("func", "code", "stderr"),
    [
        (lambda _a: 0, 0, ""),
        (lambda _a: None, 0, ""),
        (lambda _a: 3, 3, ""),
        (raising(UserError("trust.yaml: cannot read")), 1, "social-monitor: trust.yaml: cannot read\n"),
        (raising(ConfigError(["a: bad", "b: bad"])), 1, "social-monitor: a: bad\nb: bad\n"),
        (raising(KeyboardInterrupt()), 130, ""),
    ],
    ids=["ok", "none-is-ok", "own-code", "user-error", "config-error", "interrupted"],
)
def test_dispatch_turns_outcomes_into_exit_codes(capsys, func, code, stderr):
    assert _dispatch(argparse.Namespace(func=func)) == code
    assert capsys.readouterr().err == stderr


def test_unexpected_error_is_not_hidden():
    with pytest.raises(ZeroDivisionError):
        _dispatch(argparse.Namespace(func=raising(ZeroDivisionError())))


@pytest.mark.integration
def test_python_dash_m_runs_the_command_line():
    run = subprocess.run([sys.executable, "-m", "monitor", "--help"], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("usage: social-monitor")


def test_closed_pipe_is_not_an_error(monkeypatch):
    """`social-monitor classify x.pcap | head`: the reader went away; exit 0, and stderr is closed so
    that Python's own flush at exit prints no second error."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert _dispatch(argparse.Namespace(func=raising(BrokenPipeError()))) == 0
    assert stderr.closed
