"""CaptureCounters: the interface the sensor counts through, and its plain-integer implementation."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from monitor.capture.counters import CaptureCounters, PlainCounters
from monitor.capture.sensor import Sensor
from tests.capture_helpers import observe


def test_plain_counters_implement_the_interface():
    assert isinstance(PlainCounters(), CaptureCounters)


@pytest.mark.parametrize(
    ("bind", "calls", "expected"),
    [
        (lambda c: c.parse_error_counter("dns"), [()], {("parse_errors", "dns"): 1}),
        (lambda c: c.parse_error_counter("tls"), [(), (), ()], {("parse_errors", "tls"): 3}),
        (lambda c: c.eviction_counter("flows"), [(), ()], {("evictions", "flows"): 2}),
        (lambda c: c.packet_counter("eth1"), [(5,), (7,)], {("packets", "eth1"): 12}),
        (lambda c: c.dropped_setter("eth1"), [(5,), (3,)], {("kernel_dropped", "eth1"): 3}),
        (lambda c: c.eviction_counter("quic_initials"), [], {("evictions", "quic_initials"): 0}),
    ],
    ids=["one-error", "errors-add-up", "evictions", "packets-add-batches", "drops-are-a-total",
         "bound-label-starts-at-zero"],
)
def test_plain_counters_count(bind, calls, expected):
    counters = PlainCounters()
    count = bind(counters)
    for args in calls:
        count(*args)
    assert counters.counts == expected


def test_sensor_binds_every_label_when_built():
    """Every protocol and table starts at zero, so the daemon exports the series before the first error."""
    counters = PlainCounters()
    Sensor(lambda o: None, counters=counters)
    assert counters.counts == {
        **{("parse_errors", p): 0
           for p in ("dns", "tls", "quic", "http", "dhcp", "packet", "fragment", "tunnel")},
        **{("evictions", t): 0 for t in ("flows", "dns_answers", "tcp_reassembly", "tcp_stream_bytes",
                                         "tcp_reassembly_bytes", "quic_initials", "ip_fragments")},
    }


@pytest.mark.parametrize(
    ("frame", "protocol"),
    [
        # a DNS name whose compression pointer points at itself
        (bytes(Ether() / IP() / UDP(sport=5000, dport=53)
               / Raw(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c")), "dns"),
        # a ClientHello whose session id claims 40 bytes where 0..32 are allowed
        (bytes(Ether() / IP() / TCP(sport=5000, dport=443)
               / Raw(b"\x16\x03\x01\x00\x2c\x01\x00\x00\x28" + b"\xff" * 40)), "tls"),
        # a BOOTP header with the DHCP cookie but a 200-byte hardware address
        (bytes(Ether() / IP() / UDP(sport=68, dport=67)
               / Raw(b"\x01\x01\xc8" + bytes(233) + b"\x63\x82\x53\x63")), "dhcp"),
    ],
    ids=["dns", "tls", "dhcp"],
)
def test_sensor_counts_a_malformed_packet_under_its_protocol(frame, protocol):
    counters = PlainCounters()
    sensor = Sensor(lambda o: None, counters=counters)
    observe([frame], sensor=sensor)
    assert counters.counts[("parse_errors", protocol)] == 1
    assert sensor.error_counts[protocol] == 1
    assert sum(v for (kind, _), v in counters.counts.items() if kind == "parse_errors") == 1


def test_sensor_counts_evictions_from_a_full_flow_table():
    counters = PlainCounters()
    sensor = Sensor(lambda o: None, counters=counters, flow_cap=2)
    frames = [bytes(Ether() / IP(src="10.0.0.1") / UDP(sport=5000 + i, dport=53)
                    / DNS(rd=1, qd=DNSQR(qname=f"n{i}.example"))) for i in range(5)]
    observe(frames, sensor=sensor)
    assert counters.counts[("evictions", "flows")] == 3


def test_sensor_without_counters_counts_in_plain_integers():
    assert isinstance(Sensor(lambda o: None).counters, PlainCounters)
