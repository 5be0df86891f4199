"""The proxy child's supervision: back-off, and "up" only while the child itself listens.

The listening checks run against real processes and real sockets: a child that
listens, a child that does not while another process holds its port (the
EADDRINUSE crash loop), and a process that is gone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.config.loader import load_config
from monitor.metrics.registry import Metrics
from monitor.proxy.launcher import PARENT_PID_ENV
from monitor.proxy.supervisor import (
    ProxyChild,
    accepts_connections,
    child_environment,
    listen_tables,
    listening_inodes,
    process_listens,
)
from tests.conftest import EXAMPLE
from tests.proxy_helpers import wait_for_port

# Listens on argv[1] once the file argv[2] exists (or at once without it), then sleeps.
LISTENER = textwrap.dedent("""
    import os, socket, sys, time
    while len(sys.argv) > 2 and not os.path.exists(sys.argv[2]):
        time.sleep(0.05)
    s = socket.socket()
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen()
    time.sleep(60)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def held_port() -> Iterator[tuple[socket.socket, int]]:
    """A port this test process listens on (another process, to a child)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock, sock.getsockname()[1]
    sock.close()


TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 11111 1
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 22222 1
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 33333 1
   3: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 44444 1
"""
TCP6_TABLE = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 55555 1
"""  # noqa: E501 -- the kernel's own line length


@pytest.mark.parametrize(
    ("table", "port", "inodes"),
    [
        (TCP_TABLE, 8080, {"11111", "22222"}),  # both listeners on 8080; the established one is not
        (TCP_TABLE, 80, {"44444"}),
        (TCP_TABLE, 443, set()),
        (TCP6_TABLE, 8080, {"55555"}),
        (TCP_TABLE.splitlines()[0], 8080, set()),  # header only
    ],
)
def test_listening_inodes(table: str, port: int, inodes: set[str]) -> None:
    assert listening_inodes(table, port) == inodes


@pytest.mark.integration
def test_process_listens_tells_the_child_from_the_port_holder(held_port) -> None:
    """The EADDRINUSE case: the port accepts connections, but not the child's socket."""
    _sock, port = held_port
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    own = free_port()
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, str(own)])
    try:
        deadline = time.monotonic() + 20
        while not process_listens(listener.pid, own) and time.monotonic() < deadline:
            time.sleep(0.05)
        # (pid, port, listens?)
        rows = [
            (listener.pid, own, True),
            (listener.pid, port, False),
            (idle.pid, port, False),  # the port is taken, by someone else
            (os.getpid(), port, True),
        ]
        assert [(pid, p, process_listens(pid, p)) for pid, p, _ in rows] == rows
        assert accepts_connections("127.0.0.1", port) is True  # why a connect probe is not enough
    finally:
        idle.kill()
        listener.kill()
        idle.wait()
        listener.wait()
    assert process_listens(listener.pid, own) is False  # gone: holds nothing


def test_process_listens_without_proc_cannot_tell(tmp_path: Path) -> None:
    assert process_listens(os.getpid(), 1, proc=tmp_path) is None


@pytest.mark.parametrize(("host", "listening"), [("127.0.0.1", True), ("0.0.0.0", True), ("", True)])
def test_accepts_connections(held_port, host: str, listening: bool) -> None:
    _sock, port = held_port
    assert accepts_connections(host, port) is listening


def test_accepts_connections_on_a_closed_port() -> None:
    assert accepts_connections("127.0.0.1", free_port()) is False


@pytest.mark.parametrize(
    ("name", "passed"),
    [
        ("NOTIFY_SOCKET", False),  # the child must not speak for the service
        ("WATCHDOG_USEC", False),
        ("WATCHDOG_PID", False),
        ("PATH", True),
    ],
)
def test_child_environment(monkeypatch, name: str, passed: bool) -> None:
    monkeypatch.setenv(name, "x")
    env = child_environment()
    assert (name in env) is passed
    assert env[PARENT_PID_ENV] == str(os.getpid())


class ScriptChild(ProxyChild):
    """The supervisor as the daemon runs it, with a small listener script instead of mitmdump."""

    def __init__(self, port: int, trigger: Path, metrics: Metrics):
        config = load_config(EXAMPLE)
        super().__init__(f"127.0.0.1:{port}", config, metrics, EXAMPLE)
        self.port, self.trigger = port, trigger

    def command(self) -> list[str]:
        return [sys.executable, "-c", LISTENER, str(self.port), str(self.trigger),
                "--mode", f"regular@127.0.0.1:{self.port}"]


@pytest.mark.integration
def test_up_only_while_the_child_listens(tmp_path: Path) -> None:
    metrics = Metrics()
    trigger = tmp_path / "listen-now"
    child = ScriptChild(free_port(), trigger, metrics)

    def up() -> float | None:
        return metrics.registry.get_sample_value("social_monitor_component_up", {"component": "proxy"})

    def supervise_until(predicate, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            child.supervise()
            time.sleep(0.05)

    child.start()
    try:
        assert up() == 0  # launched is not up
        for _ in range(10):
            child.supervise()
            time.sleep(0.05)
        assert up() == 0  # running, not yet listening
        trigger.touch()
        supervise_until(lambda: up() == 1)
        assert child.process is not None
        child.process.kill()
        supervise_until(lambda: child.process is None)
        assert up() == 0  # exited: down at once, restart pending
        assert child.restart_at is not None
    finally:
        child.stop()
    assert up() == 0


@pytest.mark.parametrize(("host", "tables"), [
    ("127.0.0.1", ("tcp",)),
    ("0.0.0.0", ("tcp",)),
    ("::", ("tcp6",)),
    ("::1", ("tcp6",)),
    ("", ("tcp", "tcp6")),
])
def test_listen_tables(host: str, tables: tuple[str, ...]) -> None:
    assert listen_tables(host) == tables


def child_for(proxy: str | list[str], mode: str = "regular", override: str | None = None) -> ProxyChild:
    config = load_config(EXAMPLE)
    listen = config.model.listen.model_copy(update={"proxy": proxy, "proxy_mode": mode})
    config.model = config.model.model_copy(update={"listen": listen})
    child = ProxyChild(override, config, Metrics(), EXAMPLE)
    child.running_command = child.command()
    return child


@pytest.mark.parametrize(("proxy", "override", "addresses", "text"), [
    ("127.0.0.1:8080", None, [("127.0.0.1", 8080)], "127.0.0.1:8080"),
    (["0.0.0.0:8080", "[::]:8080"], None, [("0.0.0.0", 8080), ("::", 8080)], "0.0.0.0:8080, [::]:8080"),
    (["0.0.0.0:8080", "[::]:8080"], "127.0.0.1:3128", [("127.0.0.1", 3128)], "127.0.0.1:3128"),
])
def test_child_listens_on_every_configured_address(proxy, override, addresses, text) -> None:
    child = child_for(proxy, override=override)
    assert (child.addresses, child.listen_text) == (addresses, text)


@pytest.mark.integration
def test_a_reload_that_moves_the_proxy_restarts_it_and_says_so(tmp_path: Path) -> None:
    """The real launcher: same listen, SIGHUP ("signalled"); a new port, restarted now, logged as such."""
    from structlog.testing import capture_logs

    first, second = free_port(), free_port()
    child = child_for(f"127.0.0.1:{first}")
    child.start()
    try:
        deadline = time.monotonic() + 30
        while not child.listening:
            assert time.monotonic() < deadline, "the proxy never listened"
            child.supervise()
            time.sleep(0.1)
        old_pid = child.process.pid if child.process else None
        same = child_for(f"127.0.0.1:{first}").config
        moved = child_for(f"127.0.0.1:{second}").config
        with capture_logs() as logs:
            results = [child.reload(same, EXAMPLE), child.reload(moved, EXAMPLE)]
        assert results == ["signalled", "restarted"]
        restarted = [e for e in logs if e["event"] == "proxy_restarted"]
        assert len(restarted) == 1 and "restarted on it now" in restarted[0]["detail"]
        assert (restarted[0]["listen_before"], restarted[0]["listen"]) == (
            f"127.0.0.1:{first}", f"127.0.0.1:{second}")
        assert child.process is not None and child.process.pid != old_pid
        wait_for_port(second, proc=child.process)
    finally:
        child.stop()
