"""Structured logs: one JSON object per event, the same format for structlog and stdlib logging."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import structlog

from monitor import logsetup


@pytest.fixture
def stream():
    out = io.StringIO()
    logsetup.configure(out)
    yield out
    logsetup.configure(sys.stderr)  # what every command but `run` leaves behind


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_event_is_one_json_line(stream):
    structlog.get_logger("social_monitor.test").info("config_loaded", schools=3)
    [line] = lines(stream)
    assert (line["message"], line["level"], line["schools"]) == ("config_loaded", "info", 3)
    assert line["@timestamp"].endswith("Z")


def test_stdlib_warning_shares_the_format(stream):
    logging.getLogger("mitmproxy.proxy").warning("client disconnected")
    [line] = lines(stream)
    assert (line["message"], line["level"]) == ("client disconnected", "warning")
    assert line["logger"] == "mitmproxy.proxy"
    assert "@timestamp" in line


@pytest.mark.parametrize(
    ("emit", "logged"),
    [
        (lambda: structlog.get_logger().debug("noise"), False),
        (lambda: structlog.get_logger().info("event"), True),
        (lambda: structlog.get_logger().error("event"), True),
        (lambda: logging.getLogger("lib").info("chatter"), False),  # libraries: warnings and up
        (lambda: logging.getLogger("lib").error("broken"), True),
    ],
    ids=["structlog-debug", "structlog-info", "structlog-error", "stdlib-info", "stdlib-error"],
)
def test_levels(stream, emit, logged):
    emit()
    assert bool(stream.getvalue()) is logged


def test_context_variables_are_merged(stream):
    with structlog.contextvars.bound_contextvars(hook="request"):
        structlog.get_logger().info("addon_error")
    assert lines(stream)[0]["hook"] == "request"


def test_stdout_is_looked_up_at_each_write(capsys):
    """Tests and tools swap sys.stdout: the logger follows it rather than the object seen at set-up."""
    logsetup.configure(sys.stdout)
    try:
        structlog.get_logger().info("running")
        assert json.loads(capsys.readouterr().out)["message"] == "running"
    finally:
        logsetup.configure(sys.stderr)


# `configure()` in a fresh process that has not imported structlog (issue 22: commands that never
# log must not pay for it); each row: what the process does after configuring, what stderr holds.
DEFERRED = [
    ("import structlog; structlog.get_logger('t').info('first', n=1)",
     [{"message": "first", "level": "info", "n": 1}]),
    ("import structlog; structlog.get_logger('t').debug('noise')", []),
    ("logging.getLogger('lib').warning('from %s', 'stdlib')",
     [{"message": "from stdlib", "level": "warning", "logger": "lib"}]),
    ("logging.getLogger('lib').warning('w'); import structlog; structlog.get_logger().error('e')",
     [{"message": "w", "level": "warning"}, {"message": "e", "level": "error"}]),
    ("logsetup.configure(sys.stderr, logging.DEBUG); import structlog; structlog.get_logger().debug('d')",
     [{"message": "d", "level": "debug"}]),
    ("print('structlog' in sys.modules, file=sys.stderr)", "False"),
    ("log = logsetup.get_logger('lazy'); print('structlog' in sys.modules, file=sys.stderr)", "False"),
    ("logsetup.get_logger('lazy').warning('late', n=2)", [{"message": "late", "level": "warning", "n": 2}]),
    ("logsetup.get_logger('lazy').debug('noise')", []),
]


@pytest.mark.integration
@pytest.mark.parametrize(("then", "expected"), DEFERRED,
                         ids=["structlog-later", "structlog-debug-later", "stdlib-first",
                              "stdlib-then-structlog", "latest-configure-wins", "never-imported",
                              "lazy-logger-not-imported", "lazy-logger-logs", "lazy-logger-level"])
def test_structlog_is_configured_when_first_imported(then, expected):
    import subprocess

    code = f"import logging, sys\nfrom monitor import logsetup\nlogsetup.configure(sys.stderr)\n{then}\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    if isinstance(expected, str):
        assert run.stderr.strip() == expected
        return
    got = [json.loads(line) for line in run.stderr.splitlines()]
    assert [{k: line.get(k) for k in want} for line, want in zip(got, expected, strict=False)] == expected
    assert len(got) == len(expected)
    assert all("@timestamp" in line for line in got)
