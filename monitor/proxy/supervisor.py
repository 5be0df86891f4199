"""The daemon's proxy child: started, watched, restarted with back-off, and "up" only while it listens.

A launched child is not a working proxy: mitmdump exits at once when its
port is taken (EADDRINUSE), and is restarted, and exits again. So
`component_up{component="proxy"}` reads 1 only once the child itself holds a
listening socket on its port (read from /proc, which also tells a child's
listener from another process's holding the same port), and 0 from the moment
it exits; the alert on that gauge can then fire during a crash loop.

All of it runs from the daemon's main loop, which must also be the thread that
starts the child: the child asks Linux to stop it when its parent dies
(monitor/proxy/launcher.py), and Linux means the parent *thread*.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import structlog

from monitor.backoff import Backoff
from monitor.config.loader import Config
from monitor.metrics.registry import Metrics
from monitor.sdnotify import NOTIFY_ENV

log = structlog.get_logger("social_monitor.daemon")

TCP_LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


def listen_tables(host: str) -> tuple[str, ...]:
    """Which of /proc/net/tcp and tcp6 a listener on `host` appears in: a dual-stack proxy is up
    only once both its IPv4 and its IPv6 sockets listen."""
    if ":" in host:
        return ("tcp6",)
    if host in ("", "*"):
        return ("tcp", "tcp6")
    return ("tcp",)


def listening_inodes(table: str, port: int) -> set[str]:
    """Socket inodes in LISTEN state on `port`, from the text of /proc/net/tcp or tcp6."""
    inodes = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(fields[9])
    return inodes


def process_listens(pid: int, port: int, proc: Path = Path("/proc"),
                    tables_named: tuple[str, ...] = ("tcp", "tcp6")) -> bool | None:
    """True if process `pid` holds a listening TCP socket on `port` (in one of `tables_named`);
    None when there is no /proc. A process that is gone (or not ours to read) holds nothing: False."""
    if not (proc / "self" / "fd").is_dir():
        return None
    try:
        tables = [(proc / str(pid) / "net" / name).read_text() for name in tables_named
                  if (proc / str(pid) / "net" / name).exists()]
        fds = proc / str(pid) / "fd"
        names = os.listdir(fds)
    except OSError:
        return False
    owned = set()
    for fd in names:
        try:
            owned.add(os.readlink(fds / fd))
        except OSError:
            continue  # closed meanwhile
    wanted = {f"socket:[{inode}]" for table in tables for inode in listening_inodes(table, port)}
    return bool(wanted & owned)


def accepts_connections(host: str, port: int, timeout: float = 0.2) -> bool:
    """Where /proc cannot tell (not Linux): does anything accept a connection on the address?"""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def forget_process(pid: int) -> None:
    """A dead child's live gauges (queue depth, component up) must leave the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def child_environment() -> dict[str, str]:
    """The daemon's environment, without systemd's notify socket, plus its pid (die with it)."""
    from monitor.proxy.launcher import PARENT_PID_ENV

    env = {k: v for k, v in os.environ.items() if k not in NOTIFY_ENV}
    env[PARENT_PID_ENV] = str(os.getpid())
    return env


class ProxyChild:
    """mitmdump with the addon, restarted with back-off when it exits unasked."""

    recheck_every = 5.0  # seconds between checks that a listening child still listens

    def __init__(self, listen_override: str | None, config: Config, metrics: Metrics, config_file: Path):
        self.listen_override = listen_override  # `--proxy-listen`, else the config's listen.proxy
        self.config = config
        self.config_file = config_file  # the daemon's snapshot of the last valid config
        self.metrics = metrics
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.backoff = Backoff()
        self.restarts = 0
        self.running_command: list[str] = []
        self.listening = False
        self.next_check = 0.0

    def command(self) -> list[str]:
        from monitor.proxy.launcher import proxy_arguments

        listen = self.listen_override or self.config.model.listen.proxy_addresses
        mode = self.config.model.listen.proxy_mode
        # mitmdump with the addon built in (monitor/proxy/launcher.py says why not `mitmdump -s`)
        return [sys.executable, "-m", "monitor.proxy.launcher", "--quiet",
                *proxy_arguments(listen, mode, self.config_file)]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each `--mode mode@host:port` the running child was given."""
        cmd = self.running_command
        specs = [cmd[i + 1] for i, arg in enumerate(cmd[:-1]) if arg == "--mode"]
        return [(host, int(port)) for host, _, port in
                (spec.partition("@")[2].rpartition(":") for spec in specs)]

    @property
    def listen_text(self) -> str:
        return ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.addresses)

    def start(self) -> None:
        self.running_command = self.command()
        self.process = subprocess.Popen(self.running_command, stdin=subprocess.DEVNULL,
                                        env=child_environment())
        self.started_at = self.next_check = time.monotonic()
        self.restart_at = None
        self._set_listening(False)  # launched is not up: up once it listens
        log.info("proxy_started", pid=self.process.pid, listen=self.listen_text,
                 mode=self.config.model.listen.proxy_mode)

    def supervise(self) -> None:
        """Called from the main loop: notice a dead child, restart it when its back-off is over,
        and tell whether a running one listens (every turn until it does, then every few seconds)."""
        now = time.monotonic()
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            forget_process(self.process.pid)
            ran_for = now - self.started_at
            delay = self.backoff.next_delay(ran_for)
            self._set_listening(False)
            log.error("proxy_exited", code=code, ran_seconds=round(ran_for, 1), restart_in=delay)
            self.process = None
            self.restart_at = now + delay
        if self.process is None and self.restart_at is not None and now >= self.restart_at:
            self.restarts += 1
            self.metrics.child_restarts.labels("proxy").inc()
            self.start()
        if self.process is not None and now >= self.next_check:
            self.next_check = now + (self.recheck_every if self.listening else 0.0)
            self._set_listening(self.child_listens())

    def child_listens(self) -> bool:
        assert self.process is not None
        pid = self.process.pid
        if not self.addresses:
            return False  # nothing to listen on: never up
        for host, port in self.addresses:
            owned = process_listens(pid, port, tables_named=listen_tables(host))
            if not (accepts_connections(host, port) if owned is None else owned):
                return False
        return True

    def _set_listening(self, listening: bool) -> None:
        if listening != self.listening and self.process is not None:
            if listening:
                log.info("proxy_listening", pid=self.process.pid,
                         after_seconds=round(time.monotonic() - self.started_at, 2))
            elif self.process.poll() is None:
                log.error("proxy_not_listening", pid=self.process.pid)
        self.listening = listening
        self.metrics.up.labels("proxy").set(1 if listening else 0)

    def reload(self, config: Config, config_file: Path) -> str:
        """A new config: SIGHUP, and the child's addon swaps it in while the proxy keeps serving.

        Only a change of listen address or mode restarts the child, at once (a brief gap
        in proxy service), and the log says so; a child waiting to be restarted reads the
        new one. Returns what happened: "signalled", "restarted" or "waiting"."""
        self.config = config
        self.config_file = config_file
        if self.process is None:
            return "waiting"  # in back-off: it starts on the new config
        if self.process.poll() is None and self.command() == self.running_command:
            self.process.send_signal(signal.SIGHUP)
            log.info("proxy_reload_signalled", pid=self.process.pid)
            return "signalled"
        before, old_pid = self.listen_text, self.process.pid
        self.stop()
        self.start()
        log.warning("proxy_restarted", old_pid=old_pid, new_pid=self.process.pid, listen_before=before,
                    listen=self.listen_text, mode=config.model.listen.proxy_mode,
                    detail="listen.proxy or listen.proxy_mode changed: the proxy restarted on it now "
                    "(connections open through it were closed)")
        return "restarted"

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        self.restart_at = None
        self._set_listening(False)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        forget_process(proc.pid)
