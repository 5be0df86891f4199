"""The command line: its subcommands, and how a command's failure becomes an exit code and one line."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest

from monitor.cli import COMMAND_MODULES, _dispatch, build_parser, main
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
