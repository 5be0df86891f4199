"""Live capture: counts handed to the sensor's counters, and a veth pair where frames become observations."""

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
from monitor.capture.live import LiveCapture
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
