"""IP fragment reassembly: the table's rules one row at a time, then real DNS, TLS and QUIC Initials
split by scapy's `fragment` (IPv4) and by IPv6 fragment headers through the sensor, in order and not."""

from __future__ import annotations

import random

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from monitor.capture.counters import PlainCounters
from monitor.capture.fragments import IpFragments
from monitor.capture.quic import VERSION_1
from monitor.capture.sensor import Sensor
from tests.capture_helpers import client_hello, crypto_frames, observe, quic_initial, tls_records

KEY = ("src", "dst", 1, 17, None)
HEAD = b"H" * 34


def table(**caps) -> tuple[IpFragments, list[str]]:
    events: list[str] = []
    return IpFragments(
        on_evict=lambda: events.append("evict"), on_reject=lambda: events.append("reject"), **caps
    ), events


# (offset, data, more) per fragment; the datagram's data if it completes on the last one
ROWS = [
    (
        "in order",
        [(0, b"a" * 8, True), (8, b"b" * 8, True), (16, b"c", False)],
        b"a" * 8 + b"b" * 8 + b"c",
        [],
    ),
    (
        "out of order",
        [(16, b"c", False), (0, b"a" * 8, True), (8, b"b" * 8, True)],
        b"a" * 8 + b"b" * 8 + b"c",
        [],
    ),
    (
        "exact duplicate ignored",
        [(0, b"a" * 8, True), (0, b"a" * 8, True), (8, b"c", False)],
        b"a" * 8 + b"c",
        [],
    ),
    ("missing middle", [(0, b"a" * 8, True), (16, b"c", False)], None, []),
    ("overlap rejected", [(0, b"a" * 16, True), (8, b"X" * 8, True), (16, b"c", False)], None, ["reject"]),
    (
        "overlap then the rest: still rejected",
        [(0, b"a" * 16, True), (8, b"X" * 16, True), (16, b"b" * 8, True), (24, b"c", False)],
        None,
        ["reject"],
    ),
    (
        "same offset other bytes",
        [(0, b"a" * 8, True), (0, b"b" * 8, True), (8, b"c", False)],
        None,
        ["reject"],
    ),
    ("two different ends", [(8, b"c", False), (8, b"cc", False)], None, ["reject"]),
    ("data past the end", [(16, b"c", False), (16, b"c" * 8, True)], None, ["reject"]),
    ("beyond 65535 bytes", [(65528, b"x" * 16, False)], None, ["reject"]),
    ("non-final piece not a multiple of 8", [(0, b"a" * 7, True)], None, ["reject"]),
]


@pytest.mark.parametrize(
    ("pieces", "whole", "events"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_reassembly_rules(pieces, whole, events):
    fragments, seen = table()
    result = None
    for offset, data, more in pieces:
        result = fragments.add(KEY, offset, data, more, HEAD, 17, 0.0)
    assert (result[0][len(HEAD) :] if result else None) == whole
    assert seen == events
    if whole is not None:
        assert result == (HEAD + whole, len(HEAD), 17)
        assert len(fragments) == 0 and fragments.bytes == 0


def test_never_completed_datagrams_time_out_and_are_counted():
    fragments, events = table(timeout=30.0)
    fragments.add(KEY, 0, b"a" * 8, True, HEAD, 17, 100.0)
    fragments.expire(129.0)
    assert len(fragments) == 1
    fragments.expire(131.0)
    assert (len(fragments), fragments.bytes, events) == (0, 0, ["evict"])


def test_a_flood_of_datagrams_keeps_count_and_bytes_within_the_caps():
    fragments, events = table(cap=100, max_bytes=64 * 1024)
    for ident in range(10_000):
        fragments.add(("s", "d", ident, 17, None), 0, b"x" * 1480, True, HEAD, 17, 0.0)
        assert len(fragments) <= 100 and fragments.bytes <= 64 * 1024
    assert events.count("evict") == 10_000 - len(fragments)


def test_too_many_pieces_condemn_the_datagram():
    fragments, events = table(max_fragments=16)
    for i in range(40):
        fragments.add(KEY, i * 8, b"x" * 8, True, HEAD, 17, 0.0)
    assert events == ["reject"] and fragments.bytes == 0
    assert fragments.add(KEY, 320, b"end", False, HEAD, 17, 0.0) is None  # the rest is dropped too


def dns_query(name: str, v6: bool):
    ip = IPv6(src="2001:db8::7", dst="2001:db8::53") if v6 else IP(src="10.9.8.7", dst="10.0.0.53")
    # padded with additional-record bytes so the query needs several fragments
    return ip / UDP(sport=5555, dport=53) / DNS(rd=1, qd=DNSQR(qname=name)) / Raw(bytes(600))


def tls_segment(name: str, v6: bool):
    ip = IPv6(src="2001:db8::7", dst="2001:db8::53") if v6 else IP(src="10.9.8.7", dst="10.0.0.53")
    return ip / TCP(sport=50000, dport=443, flags="PA") / Raw(tls_records(client_hello(name, padding=900)))


def quic_datagram(name: str, v6: bool):
    ip = IPv6(src="2001:db8::7", dst="2001:db8::53") if v6 else IP(src="10.9.8.7", dst="10.0.0.53")
    payload = quic_initial(VERSION_1, bytes(range(8)), crypto_frames([(0, client_hello(name))]))
    return ip / UDP(sport=50000, dport=443) / Raw(payload)


def split(packet, v6: bool, size: int = 256) -> list[bytes]:
    if v6:  # as scapy's fragment6 would, in a fraction of its time
        raw = bytes(packet)
        data, ip = raw[40:], packet[IPv6]
        parts = [
            IPv6(src=ip.src, dst=ip.dst)
            / IPv6ExtHdrFragment(nh=raw[6], offset=at // 8, m=int(at + size < len(data)), id=7)
            / Raw(data[at : at + size])
            for at in range(0, len(data), size)
        ]
    else:
        parts = fragment(packet, fragsize=size)
    return [bytes(Ether(src="02:00:00:00:00:07", dst="02:00:00:00:00:01") / part) for part in parts]


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize(
    ("build", "protocol"),
    [(dns_query, "dns"), (tls_segment, "tls"), (quic_datagram, "quic")],
    ids=["dns", "tls", "quic-initial"],
)
@pytest.mark.parametrize("order", ["in order", "reversed", "shuffled"])
def test_fragmented_names_are_read_after_reassembly(build, protocol, v6, order):
    frames = split(build("fragmented.example.org", v6), v6)
    assert len(frames) >= 3
    if order == "reversed":
        frames.reverse()
    elif order == "shuffled":
        random.Random(5).shuffle(frames)
    seen = observe(frames)
    assert [(o.protocol, o.hostname) for o in seen] == [(protocol, "fragmented.example.org")]


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_a_missing_fragment_yields_nothing_and_a_counted_timeout(v6):
    counters = PlainCounters()
    sensor = Sensor(lambda o: None, counters=counters)
    frames = split(dns_query("lost.example.org", v6), v6)
    del frames[1]
    assert observe(frames, sensor=sensor) == []
    sensor.feed(1_700_000_100.0, 1, frames[0])  # a sweep a minute and a half later
    sensor.feed(1_700_000_200.0, 1, frames[0])
    assert counters.counts[("evictions", "ip_fragments")] >= 1


def test_a_hostile_fragment_flood_stays_within_the_sensor_byte_cap():
    sensor = Sensor(lambda o: None, fragment_cap=10_000, fragment_bytes=256 * 1024)
    rng = random.Random(1)
    for ident in range(3000):
        packet = IP(
            src="10.9.8.7", dst="10.0.0.53", id=ident, flags="MF", frag=rng.randrange(0, 8000), proto=17
        ) / Raw(bytes(1400))
        sensor.feed(1.0 + ident * 1e-4, 1, bytes(Ether(dst="02:00:00:00:00:01") / packet))
        assert sensor.fragments.bytes <= 256 * 1024
    assert len(sensor.fragments) < 3000
