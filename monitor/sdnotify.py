"""systemd's service notifications (sd_notify): READY, STOPPING, STATUS and watchdog pings.

With `Type=notify` systemd counts the service as started only when it says
READY=1, and with `WatchdogSec=` it restarts a service that stops sending
WATCHDOG=1 in time. A ping is a promise that the process works, not merely
that it runs: `Watchdog` sends one only while every component the daemon
watches is alive, so a process whose sensor or writer thread died (or whose
main loop hangs) is restarted instead of sitting there blind.

The protocol is one datagram to the AF_UNIX socket named in $NOTIFY_SOCKET
(`@name` is an abstract socket); a few lines, so no package for it. Outside
systemd the variable is unset and every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("social_monitor.sdnotify")

# What systemd hands its service; a child process must not inherit it (it would speak for the service).
NOTIFY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def notify_address(env: Mapping[str, str]) -> str | None:
    """The socket address to send to, from $NOTIFY_SOCKET: a path, or '@name' for an abstract socket."""
    name = env.get("NOTIFY_SOCKET", "")
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    return None  # unset, or a kind this daemon does not speak (vsock: is for virtual machines)


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one notification ("READY=1", "WATCHDOG=1", ...); False when not under systemd or it failed."""
    address = notify_address(os.environ if env is None else env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify_failed", state=state.split("=", 1)[0], error=repr(exc))
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of WatchdogSec=, as sd_watchdog_enabled advises), or None if off."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None  # meant for another process
    return usec / 2 / 1_000_000


class Watchdog:
    """Pings systemd from the daemon's main loop while every watched component is alive.

    `dead` returns the names of components that are not; a change of that list is
    logged once (`watchdog_withheld` / `watchdog_resumed`), not on every tick."""

    def __init__(self, dead: Callable[[], list[str]], env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.env = dict(os.environ if env is None else env)
        self.interval = watchdog_interval(self.env)
        self.dead = dead
        self.clock = clock
        self.next_ping = 0.0
        self.withheld_for: list[str] = []
        self.pings = 0

    def ready(self, status: str) -> bool:
        return notify(f"READY=1\nSTATUS={status}", self.env)

    def stopping(self) -> bool:
        return notify("STOPPING=1\nSTATUS=stopping", self.env)

    def tick(self) -> bool:
        """Called every loop turn: ping if one is due and nothing is dead; True when it pinged."""
        if self.interval is None:
            return False
        dead = self.dead()
        if dead != self.withheld_for:
            if dead:
                log.error("watchdog_withheld", dead=dead,
                          detail="systemd restarts the service when WatchdogSec= passes without a ping")
                notify(f"STATUS=not running: {', '.join(dead)}", self.env)
            else:
                log.info("watchdog_resumed")
            self.withheld_for = dead
        now = self.clock()
        if dead or now < self.next_ping:
            return False
        self.next_ping = now + self.interval
        self.pings += 1
        return notify("WATCHDOG=1", self.env)
