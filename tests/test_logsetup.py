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
