"""Live capture: counts handed to the sensor's counters, veth pairs where frames become observations,
and links that go down, go missing and come back while the other interfaces keep capturing."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from monitor.capture.counters import PlainCounters
from monitor.capture.live import DEFAULT_ROUTE, InterfaceState, LiveCapture
from monitor.capture.sensor import Sensor
from tests.capture_helpers import client_hello, tcp_frame, tls_records, udp_frame


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        ([{"eth1": 5}], {("packets", "eth1"): 5, ("packets", "eth2"): 0}),
        ([{"eth1": 5}, {"eth1": 8}], {("packets", "eth1"): 8, ("packets", "eth2"): 0}),  # deltas published
        ([{"eth1": 5, "eth2": 2}, {"eth1": 5, "eth2": 9}], {("packets", "eth1"): 5, ("packets", "eth2"): 9}),
        ([{}, {}], {("packets", "eth1"): 0, ("packets", "eth2"): 0}),
    ],
    ids=["first-stats", "second-stats-adds-the-difference", "per-interface", "nothing-read"],
)
def test_update_stats_publishes_packet_counts_to_the_counters(read, expected):
    counters = PlainCounters()
    capture = LiveCapture(Sensor(lambda o: None, counters=counters), ["eth1", "eth2"])
    for totals in read:
        capture.packets.update(totals)
        capture.update_stats()
    assert {k: v for k, v in counters.counts.items() if k[0] == "packets"} == expected


@pytest.mark.parametrize("names", [[], None], ids=["empty-list", "none"])
def test_no_interface_is_refused(names):
    with pytest.raises(ValueError, match="no interface"):
        LiveCapture(Sensor(lambda o: None), names)


@pytest.mark.parametrize(
    ("state", "said"),
    [
        (InterfaceState("gw-in", "gw-in", True), "up"),
        (InterfaceState("vlan999", "vlan999", False, "missing"), "down: missing"),
        (InterfaceState("default", "eth0", True), "up (eth0)"),
        (InterfaceState("default", None, False, "no_default_route"), "down: no_default_route"),
    ],
    ids=["up", "down", "default-route-up", "no-default-route"],
)
def test_interface_state_describe(state, said):
    assert state.describe() == said


@pytest.mark.parametrize(
    ("names", "follow", "labels"),
    [
        (["eth1", "eth2"], False, ["eth1", "eth2"]),
        (["eth1", "eth2", "eth1"], False, ["eth1", "eth2"]),  # named twice, captured once
        ([], True, [DEFAULT_ROUTE]),
        (None, True, [DEFAULT_ROUTE]),
    ],
    ids=["named", "duplicate", "default-route", "default-route-none"],
)
def test_labels_are_the_names_in_the_config(names, follow, labels):
    capture = LiveCapture(Sensor(lambda o: None), names, follow_default_route=follow)
    assert capture.names == labels
    assert list(capture.packets) == list(capture.dropped) == list(capture.states()) == labels


def test_names_and_the_default_route_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        LiveCapture(Sensor(lambda o: None), ["eth1"], follow_default_route=True)


@pytest.fixture
def veth():
    """A veth pair: one end captured on here, the other end written to with a raw socket."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"smA{tag}", f"smB{tag}"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    try:
        for name in (a, b):
            subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], check=False)


@pytest.mark.integration
@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2")
def test_live_capture_reports_sni_and_counts_packets(veth):
    import socket

    capture_on, send_on = veth
    seen = []
    capture = LiveCapture(Sensor(seen.append), [capture_on], stats_interval=0.2)
    capture.start()
    try:
        out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        out.bind((send_on, 0))
        out.send(tcp_frame(tls_records(client_hello("www.instagram.com"))))
        out.send(tcp_frame(flags="A", seq=5000))  # a pure ACK: dropped by the kernel pre-filter
        out.send(udp_frame(b"\x0d" + bytes(8) + b"Q043" + b"\x01" + bytes(12)
                           + b"CHLO\x01\x00\x00\x00SNI\x00\x0f\x00\x00\x00www.youtube.com"))
        out.send(bytes(Ether(src="00:11:22:33:44:66") / Dot1Q(vlan=77) / IP(src="10.7.0.9", dst="10.7.0.1")
                       / UDP(sport=5555, dport=53) / DNS(rd=1, qd=DNSQR(qname="www.tiktok.com"))))
        out.close()
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        capture.stop()
    assert sorted(o.hostname for o in seen) == ["www.instagram.com", "www.tiktok.com", "www.youtube.com"]
    # the kernel strips the 802.1Q tag into auxiliary data; the sensor puts it back
    assert next(o.vlan for o in seen if o.hostname == "www.tiktok.com") == 77
    assert capture.error is None
    assert capture.dropped[capture_on] == 0


# --- links that go down, go missing and come back ------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=30)


@pytest.fixture
def pairs():
    """Make veth pairs on demand (name captured on, name written to); all removed at the end."""
    made: list[str] = []

    def make(capture_on: str | None = None) -> tuple[str, str]:
        tag = uuid.uuid4().hex[:6]
        a, b = capture_on or f"smA{tag}", f"smB{tag}"
        ip("link", "add", a, "type", "veth", "peer", "name", b)
        made.append(a)
        for name in (a, b):
            ip("link", "set", name, "up")
        return a, b

    yield make
    for name in made:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True, timeout=30)


def send_dns(interface: str, name: str) -> None:
    import socket

    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as out:
        out.bind((interface, 0))
        out.send(bytes(Ether(src="00:11:22:33:44:66") / IP(src="10.7.0.9", dst="10.7.0.1")
                       / UDP(sport=5555, dport=53) / DNS(rd=1, qd=DNSQR(qname=name))))


def wait_until(predicate, timeout: float, what: str) -> float:
    """Seconds it took for `predicate` to hold (polled every 50 ms, at most `timeout`)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def names_seen(seen) -> set[str]:
    return {o.hostname for o in list(seen)}


def changes_of(changes: list[InterfaceState], label: str) -> list[tuple[bool, str]]:
    return [(c.up, c.reason) for c in changes if c.interface == label]


@pytest.mark.integration
@pytest.mark.netns
@needs_root
def test_a_flapped_link_is_captured_again_while_the_other_kept_capturing(pairs):
    (flapped, flapped_peer), (steady, steady_peer) = pairs(), pairs()
    seen, changes = [], []
    capture = LiveCapture(Sensor(seen.append), [flapped, steady], on_change=changes.append,
                          stats_interval=0.2)
    capture.start()
    try:
        send_dns(flapped_peer, "before.instagram.com")
        wait_until(lambda: "before.instagram.com" in names_seen(seen), 5, "a query before the flap")
        ip("link", "set", flapped, "down")
        wait_until(lambda: not capture.states()[flapped].up, 5, "the outage to be noticed")
        for i in range(20):  # the other interface, all through the outage (2 s)
            send_dns(steady_peer, f"during{i}.youtube.com")
            time.sleep(0.1)
        ip("link", "set", flapped, "up")
        resumed = wait_until(lambda: capture.states()[flapped].up, 15, "capture to resume")
        send_dns(flapped_peer, "after.tiktok.com")
        wait_until(lambda: "after.tiktok.com" in names_seen(seen), 5, "a query after the flap")
    finally:
        capture.stop()
    assert resumed < 10
    assert {f"during{i}.youtube.com" for i in range(20)} <= names_seen(seen)
    assert changes_of(changes, flapped) == [(True, ""), (False, "link_down"), (True, "")]
    assert changes_of(changes, steady) == [(True, "")]
    assert changes[-1].down_seconds is not None and changes[-1].down_seconds >= 2
    assert capture.error is None


@pytest.mark.integration
@pytest.mark.netns
@needs_root
def test_an_interface_missing_at_start_is_captured_once_it_exists(pairs):
    present, present_peer = pairs()
    missing = f"smM{uuid.uuid4().hex[:6]}"
    seen, changes = [], []
    capture = LiveCapture(Sensor(seen.append), [present, missing], on_change=changes.append)
    capture.start()
    try:
        said = {k: s.describe() for k, s in capture.states().items()}
        assert said == {present: "up", missing: "down: missing"}
        send_dns(present_peer, "present.instagram.com")
        wait_until(lambda: "present.instagram.com" in names_seen(seen), 5, "the present interface")
        time.sleep(2)  # a few retries of the missing one: still one report
        _, late_peer = pairs(missing)
        wait_until(lambda: capture.states()[missing].up, 12, "the late interface to be captured")
        send_dns(late_peer, "late.tiktok.com")
        wait_until(lambda: "late.tiktok.com" in names_seen(seen), 5, "a query on the late interface")
    finally:
        capture.stop()
    assert changes_of(changes, missing) == [(False, "missing"), (True, "")]
    assert changes_of(changes, present) == [(True, "")]


@pytest.mark.integration
@pytest.mark.netns
@needs_root
def test_an_interface_deleted_and_created_again_is_captured_again(pairs):
    """The new interface has a new index: the old socket is dead, a new one is opened."""
    name, _ = pairs()
    seen, changes = [], []
    capture = LiveCapture(Sensor(seen.append), [name], on_change=changes.append)
    capture.start()
    try:
        ip("link", "del", name)
        wait_until(lambda: not capture.states()[name].up, 5, "the deletion to be noticed")
        _, peer = pairs(name)
        wait_until(lambda: capture.states()[name].up, 12, "the new interface to be captured")
        send_dns(peer, "again.instagram.com")
        wait_until(lambda: "again.instagram.com" in names_seen(seen), 5, "a query on the new interface")
    finally:
        capture.stop()
    assert changes_of(changes, name) == [(True, ""), (False, "missing"), (True, "")]


@pytest.mark.integration
@pytest.mark.netns
@needs_root
@pytest.mark.parametrize(("name", "reason"), [("bad/name", "invalid_name"), ("smNone" + "x" * 9, "missing")])
def test_an_interface_that_cannot_be_captured_is_reported_down(name, reason):
    changes: list[InterfaceState] = []
    capture = LiveCapture(Sensor(lambda o: None), [name], on_change=changes.append)
    capture.open()
    capture.close()
    assert changes_of(changes, name) == [(False, reason)]
