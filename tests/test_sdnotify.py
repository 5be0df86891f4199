"""sd_notify over a real AF_UNIX datagram socket (path and abstract), and the watchdog's ping rule."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from monitor.sdnotify import Watchdog, notify, notify_address, watchdog_interval


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket, as systemd's, and the $NOTIFY_SOCKET value that names it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify.sock")
        sock.bind(name)
    else:
        name = f"@social-monitor-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name[1:])
    sock.settimeout(2)
    yield sock, name
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, without blocking."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(2)


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@/org/freedesktop/systemd1/notify/123", "\0/org/freedesktop/systemd1/notify/123"),
        ("", None),
        ("vsock:2:1234", None),  # a virtual machine's socket kind: not spoken here
        ("relative/path", None),
    ],
)
def test_notify_address(value: str, address: str | None) -> None:
    assert notify_address({"NOTIFY_SOCKET": value}) == address


def test_notify_address_unset() -> None:
    assert notify_address({}) is None


@pytest.mark.parametrize("state", ["READY=1", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopping"])
def test_notify_reaches_the_socket(listener, state: str) -> None:
    sock, name = listener
    assert notify(state, {"NOTIFY_SOCKET": name}) is True
    assert sock.recv(4096).decode() == state


@pytest.mark.parametrize(
    ("env", "logged"),
    [
        ({}, False),  # not under systemd: silently nothing
        ({"NOTIFY_SOCKET": "/nonexistent/notify.sock"}, True),  # under systemd but unreachable: said
    ],
)
def test_notify_without_a_listener_returns_false(env: dict, logged: bool) -> None:
    with capture_logs() as logs:
        assert notify("READY=1", env) is False
    assert any(e["event"] == "sd_notify_failed" for e in logs) is logged


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict, interval: float | None) -> None:
    assert watchdog_interval(env) == interval


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_watchdog_pings_every_interval_only_while_nothing_is_dead(listener) -> None:
    sock, name = listener
    dead: list[str] = []
    clock = Clock()
    dog = Watchdog(lambda: list(dead), {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "2000000"}, clock)
    # (advance clock by, components dead, pinged?)
    steps = [
        (0.0, [], True),  # the first turn pings at once
        (0.5, [], False),  # not due: 1 s between pings
        (0.6, [], True),
        (1.5, ["writer"], False),  # due, but the writer died
        (5.0, ["writer"], False),
        (0.0, [], True),  # back: pinged at once, the ping was overdue
        (0.2, [], False),
    ]
    with capture_logs() as logs:
        for advance, now_dead, pinged in steps:
            clock.now += advance
            dead[:] = now_dead
            assert dog.tick() is pinged, (advance, now_dead)
    datagrams = received(sock)
    assert datagrams.count("WATCHDOG=1") == 3
    assert "STATUS=not running: writer" in datagrams
    assert [e["event"] for e in logs] == ["watchdog_withheld", "watchdog_resumed"]  # once per change
    assert logs[0]["dead"] == ["writer"]


def test_watchdog_off_outside_systemd_sends_nothing() -> None:
    calls = []
    dog = Watchdog(lambda: calls.append(1) or [], {})
    assert dog.interval is None
    assert dog.tick() is False
    assert calls == []  # the components are not even asked
    assert dog.ready("running") is False and dog.stopping() is False


def test_ready_and_stopping_carry_a_status(listener) -> None:
    sock, name = listener
    dog = Watchdog(lambda: [], {"NOTIFY_SOCKET": name})
    assert dog.ready("running, metrics on 127.0.0.1:9") and dog.stopping()
    assert received(sock) == ["READY=1\nSTATUS=running, metrics on 127.0.0.1:9",
                              "STOPPING=1\nSTATUS=stopping"]
