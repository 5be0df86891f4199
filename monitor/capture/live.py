"""Live capture in a thread: each interface captured on its own, and reopened when it comes back.

`LiveCapture(sensor, ["gw-in", "vlan20"]).start()` opens every interface with
the kernel pre-filter and reads them all from one thread (select over their
sockets), so the sensor, which is not thread-safe, sees one caller. An
interface that is missing at start, goes down (`ip link set gw-in down`), is
deleted, or whose socket fails is closed and tried again with back-off (0.5 s
doubling, at most 9 s apart, looked at twice a second), while the others keep
capturing; a link that comes back is captured again within 10 s. With no
interface named, the capture follows the interface of the default route, and
moves with it (label "default").

Every change of an interface's state (up, or down with a reason) is handed to
`on_change` once, from the thread that saw it: the daemon turns it into the
`social_monitor_capture_up{interface}` gauge, the outage counter and one log
line. The sensor's callbacks (observations, DHCP bindings) run in the capture
thread, so they must hand work over (a queue) rather than block. Packets read
and kernel drops (PACKET_STATISTICS, kept across reopenings) go to the
sensor's `CaptureCounters` every `stats_interval`.

Each interface is read through a memory-mapped TPACKET_V3 ring (`monitor.capture.ring`) unless
`ring=False`, or unless the kernel cannot give one (then `LiveInterface`, a `recvmsg` per packet,
and one log line); `method` says which each interface uses.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import structlog

from monitor.backoff import Backoff
from monitor.capture.bpf import capture_filter
from monitor.capture.links import default_route_interface, link_state
from monitor.capture.ring import RingInterface, RingSize, RingUnavailable
from monitor.capture.sensor import Sensor
from monitor.capture.sources import LiveInterface
from monitor.capture.triage import Triage
from monitor.errors import UserError

log = structlog.get_logger("monitor.capture")

DEFAULT_ROUTE: Final = "default"
"""The label of the one interface captured when none is named: whichever carries the default route."""

_REASONS: Final = {"missing": "missing", "down": "link_down", "invalid": "invalid_name"}
_DETAILS: Final = {
    "missing": "no such interface", "link_down": "interface is down", "invalid_name": "not an interface name",
    "no_default_route": "no default route",
}
_BURST: Final = 4096  # frames read from one socket before looking at the others and the stop flag

# retries start again from the first delay once an interface has been captured this long (seconds)
CAPTURE_HELD: Final = 30.0


@dataclass(frozen=True, slots=True)
class InterfaceState:
    """One interface's capture at a change: what the gauge, the outage counter and the log say."""

    interface: str  # the label: a name from the config, or "default"
    device: str | None  # the kernel interface captured or waited for (None: no default route)
    up: bool
    reason: str = ""  # when down: missing, link_down, invalid_name, no_default_route, error
    detail: str = ""  # when down: the kernel's or scapy's words
    down_seconds: float | None = None  # when back up: how long capture was out

    def describe(self) -> str:
        where = f" ({self.device})" if self.device != self.interface and self.device else ""
        return f"up{where}" if self.up else f"down{where}: {self.reason}"


@dataclass(slots=True, eq=False)
class _Slot:
    """One configured interface: its socket when open, its state, its counts across reopenings."""

    label: str
    device: str | None
    backoff: Backoff
    source: LiveInterface | RingInterface | None = None
    up: bool | None = None  # None until the first attempt
    reason: str = ""
    detail: str = ""
    retry_at: float = 0.0
    opened_at: float = 0.0
    down_since: float = 0.0
    dropped_before: int = 0  # kernel drops on sockets already closed
    freezes_before: int = 0  # ring full, on rings already closed

    def state(self, down_seconds: float | None = None) -> InterfaceState:
        return InterfaceState(self.label, self.device, bool(self.up), self.reason, self.detail, down_seconds)


class LiveCapture:
    def __init__(self, sensor: Sensor, interfaces: list[str] | None, *, follow_default_route: bool = False,
                 extra_filter: str | None = None, use_filter: bool = True, stats_interval: float = 10.0,
                 on_stats: Callable[[LiveCapture], None] | None = None,
                 on_change: Callable[[InterfaceState], None] | None = None,
                 backoff: tuple[float, float] = (0.5, 9.0), poll_seconds: float = 0.5,
                 route_check_seconds: float = 2.0, ring: bool = True, ring_size: RingSize | None = None):
        if interfaces and follow_default_route:
            raise ValueError("name interfaces or follow the default route, not both")
        if not interfaces and not follow_default_route:
            raise ValueError("no interface to capture on")
        self.sensor = sensor
        self.follow_default_route = follow_default_route
        self.names = list(dict.fromkeys(interfaces)) if interfaces else [DEFAULT_ROUTE]
        self.extra_filter = extra_filter
        self.use_filter = use_filter
        self.stats_interval = stats_interval
        self.poll_seconds = poll_seconds
        self.route_check_seconds = route_check_seconds
        self.on_stats = on_stats
        self.on_change = on_change
        self.ring = ring
        self.ring_size = ring_size
        self.method: dict[str, str] = {}  # label -> "ring" or "recvmsg", once opened
        self.freezes: dict[str, int] = dict.fromkeys(self.names, 0)
        self.packets: dict[str, int] = dict.fromkeys(self.names, 0)
        self.dropped: dict[str, int] = dict.fromkeys(self.names, 0)
        self._published: dict[str, int] = {}
        self._slots = [_Slot(name, None if follow_default_route else name,
                                Backoff(*backoff, healthy_after=CAPTURE_HELD))
                       for name in self.names]
        self._by_fd: dict[int, _Slot] = {}
        self._fds: list[int] = []
        self._opened = False
        self._next_route_check = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    # --- life cycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """First attempt on every interface; one that fails is retried by run(), never raised.

        Raises UserError only when no interface could ever be captured: no permission for
        packet sockets (root or CAP_NET_RAW)."""
        try:
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
        except PermissionError as exc:
            raise UserError(f"cannot capture: packet sockets need root or CAP_NET_RAW ({exc.strerror})") \
                from None
        self._opened = True
        now = time.monotonic()
        self._follow_route(now)
        for slot in self._slots:
            self._attempt(slot, now)

    def run(self) -> None:
        """Capture until stop() (or a signal handler setting it); call from any one thread."""
        if not self._opened:
            self.open()
        # the frames that can matter go to the sensor's `feed`; the rest only move their flow's life
        triage = Triage(self.sensor)
        frame_sink = triage.frame
        stop = self._stop
        packets = self.packets
        poll = self.poll_seconds
        now = time.monotonic()
        next_tick, next_stats = now + poll, now + self.stats_interval
        try:
            while not stop.is_set():
                fds, by_fd = self._fds, self._by_fd
                if fds:
                    try:
                        ready = select.select(fds, [], [], poll)[0]
                    except InterruptedError:
                        continue
                else:
                    ready = []
                    stop.wait(poll)
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + poll
                    self._tick(now)
                    if now >= next_stats:
                        next_stats = now + self.stats_interval
                        self.update_stats()
                for fd in ready:
                    slot = by_fd.get(fd)
                    if slot is None or slot.source is None:
                        continue  # closed by this round's tick
                    source = slot.source
                    count = 0
                    failure: OSError | None = None
                    if isinstance(source, RingInterface):
                        try:
                            count = source.drain(triage, _BURST)
                        except OSError as exc:  # ENETDOWN: the link went down or away
                            failure = exc
                    else:
                        recv = source.recv
                        for _ in range(_BURST):
                            try:
                                ts, linktype, frame = recv()
                            except (BlockingIOError, InterruptedError):
                                break
                            except OSError as exc:  # ENETDOWN: the link went down or away
                                failure = exc
                                break
                            count += 1
                            frame_sink(ts, linktype, frame, 0, len(frame))
                    packets[slot.label] += count
                    if failure is not None:
                        self._lost(slot, failure, now)
        finally:
            self.update_stats()
            self.close()
            self.sensor.close()  # capture stopped: each live flow's last report

    def start(self) -> None:
        """Open now (so the caller can report each interface's state), then capture in a daemon thread."""
        self.open()

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # kept for the supervisor to read
                self.error = exc

        self._thread = threading.Thread(target=target, name="sensor-capture", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def request_stop(self) -> None:
        """Safe from a signal handler: the loop notices within its poll interval."""
        self._stop.set()

    def close(self) -> None:
        """Close every socket (no state change reported: the capture is ending, not failing)."""
        for slot in self._slots:
            self._close_socket(slot)

    # --- state ----------------------------------------------------------------------------------

    def states(self) -> dict[str, InterfaceState]:
        """Each interface's state now, by label (for the `running` line and tests)."""
        return {slot.label: slot.state() for slot in self._slots}

    def update_stats(self) -> None:
        # The packet counters are plain ints on the hot path, published here (a Prometheus
        # counter takes a lock on every inc()).
        counters = self.sensor.counters
        for name, count in self.packets.items():
            counters.packet_counter(name)(count - self._published.get(name, 0))
            self._published[name] = count
        for slot in self._slots:
            dropped = slot.dropped_before + (slot.source.statistics()[1] if slot.source is not None else 0)
            self.dropped[slot.label] = dropped
            self.freezes[slot.label] = slot.freezes_before + getattr(slot.source, "freezes", 0)
            counters.dropped_setter(slot.label)(dropped)
        if self.on_stats is not None:
            self.on_stats(self)

    def _tick(self, now: float) -> None:
        """Twice a second, off the hot path: follow the default route, retry what is down."""
        self._follow_route(now)
        for slot in self._slots:
            if not slot.up and now >= slot.retry_at:
                self._attempt(slot, now)

    def _follow_route(self, now: float) -> None:
        if not self.follow_default_route or now < self._next_route_check:
            return
        self._next_route_check = now + self.route_check_seconds
        slot = self._slots[0]
        device = default_route_interface()
        if device == slot.device:
            return
        slot.device = device
        self._close_socket(slot)
        if slot.up:
            slot.up = None  # neither up nor down until the new device is tried: say which it is
        slot.retry_at = now

    def _attempt(self, slot: _Slot, now: float) -> None:
        if slot.device is None:
            self._down(slot, "no_default_route", _DETAILS["no_default_route"], now)
            return
        try:
            state = link_state(slot.device)
        except OSError as exc:
            self._down(slot, "error", f"cannot read the link state: {exc.strerror or exc}", now)
            return
        if state != "up":
            reason = _REASONS[state]
            self._down(slot, reason, _DETAILS[reason], now)
            return
        try:
            slot.source = self._open_source(slot)
        except UserError as exc:
            self._down(slot, "error", str(exc), now)
            return
        slot.opened_at = now
        fd = slot.source.fileno()
        self._by_fd = {**self._by_fd, fd: slot}  # a new dict: run() holds the old one for this round
        self._fds = list(self._by_fd)
        down_seconds = round(now - slot.down_since, 1) if slot.up is False else None
        slot.up, slot.reason, slot.detail = True, "", ""
        self._emit(slot.state(down_seconds))

    def _open_source(self, slot: _Slot) -> LiveInterface | RingInterface:
        """The ring when asked for and the kernel gives one; else a socket read a packet at a time."""
        assert slot.device is not None
        if self.ring:
            try:
                source: LiveInterface | RingInterface = RingInterface(slot.device, self._bpf,
                                                                      size=self.ring_size)
                self.method[slot.label] = "ring"
                return source
            except RingUnavailable as exc:
                if self.method.get(slot.label) != "recvmsg":
                    log.warning("capture_ring_unavailable", interface=slot.label, detail=str(exc))
        _forget_stale_index(slot.device)
        self.method[slot.label] = "recvmsg"
        return LiveInterface(slot.device, self._bpf)

    def _lost(self, slot: _Slot, error: OSError, now: float) -> None:
        """A socket failed: say why in the kernel's terms (the link is down, or gone), then retry."""
        detail = error.strerror or repr(error)
        try:
            state = link_state(slot.device) if slot.device else "missing"
        except OSError:
            state = "up"
        reason = "error" if state == "up" else _REASONS[state]
        self._down(slot, reason, detail if reason == "error" else f"{_DETAILS[reason]} ({detail})", now)

    def _down(self, slot: _Slot, reason: str, detail: str, now: float) -> None:
        held_for = now - slot.opened_at if slot.source is not None else 0.0
        self._close_socket(slot)
        slot.retry_at = now + slot.backoff.next_delay(held_for)
        if slot.up is False:
            return  # still down: one transition, one report
        slot.up, slot.reason, slot.detail, slot.down_since = False, reason, detail, now
        self._emit(slot.state())

    def _close_socket(self, slot: _Slot) -> None:
        source, slot.source = slot.source, None
        if source is None:
            return
        slot.dropped_before += source.statistics()[1]
        slot.freezes_before += getattr(source, "freezes", 0)
        self._by_fd = {fd: s for fd, s in self._by_fd.items() if s is not slot}
        self._fds = list(self._by_fd)
        source.close()

    def _emit(self, state: InterfaceState) -> None:
        if self.on_change is not None:
            self.on_change(state)

    def _bpf(self, linktype: int) -> str | None:
        return capture_filter(linktype, self.extra_filter) if self.use_filter else None


def _forget_stale_index(name: str) -> None:
    """scapy caches interface indexes (`conf.ifaces`) and sets promiscuous mode by the cached one:
    an interface deleted and created again under the same name has a new index, and opening it
    would fail with ENODEV until the cache is reloaded."""
    import scapy.arch  # noqa: F401 - fills conf.ifaces for this platform
    from scapy.config import conf

    try:
        index = socket.if_nametoindex(name)
        cached: int | None = conf.ifaces.dev_from_networkname(name).index
    except (OSError, ValueError):
        return  # unknown to the kernel (the open says so) or to scapy (which reloads by itself)
    if cached != index:
        conf.ifaces.reload()
