"""The sensor end to end on built frames: one observation per flow and signal, bounded state."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import CollectorRegistry
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from monitor.capture import http, tls
from monitor.capture.counters import PlainCounters
from monitor.capture.flows import MAX_OUT_OF_ORDER, SEGMENT_OVERHEAD
from monitor.capture.sensor import Sensor
from monitor.metrics.registry import Metrics, SensorMetrics
from tests import pcapgen
from tests.capture_helpers import CLIENT4, SERVER4, client_hello, observe, tcp_frame, tls_records, udp_frame


def big_hello_segments(sni: str, mss: int = 1400) -> list[bytes]:
    stream = tls_records(client_hello(sni, padding=2200))
    return [stream[i : i + mss] for i in range(0, len(stream), mss)]


def test_tls_sni_one_segment():
    [obs] = observe([tcp_frame(tls_records(client_hello("www.facebook.com")))])
    assert (obs.protocol, obs.transport, obs.hostname) == ("tls", "tcp", "www.facebook.com")
    assert (obs.client_ip, obs.client_port, obs.server_ip, obs.server_port) == (CLIENT4, 50000, SERVER4, 443)
    assert obs.client_mac == "00:11:22:33:44:55"


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_client_hello_spanning_segments(v6):
    parts = big_hello_segments("www.reddit.com")
    frames = [tcp_frame(flags="S", seq=999, v6=v6)]
    seq = 1000
    for part in parts:
        frames.append(tcp_frame(part, seq=seq, v6=v6))
        seq += len(part)
    [obs] = observe(frames)
    assert obs.hostname == "www.reddit.com"


def test_client_hello_segments_out_of_order_after_syn():
    parts = big_hello_segments("www.tumblr.com")
    seqs = [1000, 1000 + len(parts[0])]
    frames = [tcp_frame(flags="S", seq=999), tcp_frame(parts[1], seq=seqs[1]),
              tcp_frame(parts[0], seq=seqs[0])]
    [obs] = observe(frames)
    assert obs.hostname == "www.tumblr.com"


def test_client_hello_spanning_segments_without_syn():
    parts = big_hello_segments("www.snapchat.com")
    frames = [tcp_frame(parts[0], seq=5000), tcp_frame(parts[1], seq=5000 + len(parts[0]))]
    assert [o.hostname for o in observe(frames)] == ["www.snapchat.com"]


def test_retransmission_reports_once():
    frame = tcp_frame(tls_records(client_hello("www.facebook.com")))
    assert len(observe([frame, frame, frame])) == 1


def test_ech_outer_name_is_obscured_and_dns_answer_names_the_server():
    answer = Ether() / IP(src="8.8.8.8", dst=CLIENT4) / UDP(sport=53, dport=40000) / DNS(
        id=1, qr=1, qd=DNSQR(qname="www.instagram.com"), an=DNSRR(rrname="www.instagram.com", rdata=SERVER4))
    hello = tcp_frame(tls_records(client_hello("cloudflare-ech.com", ech=True)))
    dns_obs, outer, inferred = observe([bytes(answer), hello])
    assert (dns_obs.protocol, dns_obs.hostname) == ("dns", "www.instagram.com")
    assert (outer.hostname, outer.obscured) == ("cloudflare-ech.com", True)
    assert (inferred.hostname, inferred.attribution) == ("www.instagram.com", "dns-answer")


def test_client_hello_without_sni_is_attributed_from_dns():
    answer = Ether() / IPv6(src="2001:4860:4860::8888", dst="2001:db8::10") / UDP(sport=53, dport=4000) / DNS(
        qr=1, qd=DNSQR(qname="www.tiktok.com", qtype="AAAA"),
        an=DNSRR(rrname="www.tiktok.com", type="AAAA", rdata="2a03:2880:f10c:83:face:b00c:0:25de"))
    _dns, obs = observe([bytes(answer), tcp_frame(tls_records(client_hello(None)), v6=True)])
    assert (obs.hostname, obs.attribution, obs.protocol) == ("www.tiktok.com", "dns-answer", "tls")


@pytest.mark.parametrize(("request_head", "host"), [
    (b"GET /p/x HTTP/1.1\r\nHost: www.Instagram.com:8080\r\nAccept: */*\r\n\r\n", "www.instagram.com"),
    (b"GET http://m.facebook.com/home.php HTTP/1.1\r\nHost: proxy.local\r\n\r\n", "m.facebook.com"),
    (b"CONNECT www.youtube.com:443 HTTP/1.1\r\nHost: www.youtube.com:443\r\n\r\n", "www.youtube.com"),
    (b"POST /x HTTP/1.0\r\nhost: [2001:db8::1]:80\r\n\r\n", "2001:db8::1"),
])
def test_http_request_host(request_head, host):
    [obs] = observe([tcp_frame(request_head, dport=80)])
    assert (obs.protocol, obs.hostname) == ("http", host)


def test_http_head_split_before_host():
    head = b"GET /a HTTP/1.1\r\nUser-Agent: x\r\nHost: www.pinterest.com\r\n\r\n"
    frames = [tcp_frame(flags="S", seq=999, dport=80), tcp_frame(head[:30], dport=80),
              tcp_frame(head[30:], seq=1030, dport=80)]
    assert [o.hostname for o in observe(frames)] == ["www.pinterest.com"]


def test_dns_query_over_vlan_and_6in4():
    query = DNS(rd=1, qd=DNSQR(qname="www.linkedin.com"))
    vlan = Ether() / Dot1Q(vlan=120) / IP(src="10.1.2.3", dst="10.1.0.1") / UDP(sport=3333, dport=53) / query
    outer = IP(src="192.0.2.1", dst="192.0.2.2", proto=41)
    tunnel = Ether() / outer / IPv6(src="2001:db8::5", dst="2001:db8::53") / UDP(sport=4444, dport=53) / query
    a, b = observe([bytes(vlan), bytes(tunnel)])
    assert (a.hostname, a.vlan, a.client_ip) == ("www.linkedin.com", 120, "10.1.2.3")
    assert (b.hostname, b.client_ip, b.server_port) == ("www.linkedin.com", "2001:db8::5", 53)


def test_dhcp_ack_is_learned_with_the_hostname_from_the_request():
    bindings = []
    sensor = Sensor(lambda o: None, on_binding=bindings.append)
    mac = "aa:bb:cc:00:11:22"
    chaddr = bytes.fromhex(mac.replace(":", ""))
    request = Ether(src=mac) / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) / BOOTP(
        chaddr=chaddr) / DHCP(options=[("message-type", "request"), ("hostname", b"staff-laptop-7"), "end"])
    ack = Ether() / IP(src="10.0.0.1", dst="10.0.0.55") / UDP(sport=67, dport=68) / BOOTP(
        op=2, yiaddr="10.0.0.55", chaddr=chaddr) / DHCP(options=[("message-type", "ack"), "end"])
    observe([bytes(request), bytes(ack)], sensor=sensor)
    [binding] = bindings
    assert (binding.ip, binding.mac, binding.hostname) == ("10.0.0.55", mac, "staff-laptop-7")


def test_flow_table_is_capped_and_counts_evictions():
    registry = CollectorRegistry()
    sensor = Sensor(lambda o: None, counters=SensorMetrics(Metrics(registry)),
                    flow_cap=1000, reassembly_cap=500)
    syn, ack = tcp_frame(flags="S", seq=1), tcp_frame(flags="A", seq=2)
    hello = tcp_frame(tls_records(client_hello("www.facebook.com")), seq=2)

    def with_port(frame: bytes, port: int) -> bytes:  # TCP source port at 34 behind Ethernet/IPv4
        return frame[:34] + port.to_bytes(2, "big") + frame[36:]

    frames = []
    for i in range(5000):
        frames.append(with_port(syn, 1024 + i))
        frames.append(with_port(hello if i % 2 else ack, 1024 + i))
    observe(frames, sensor=sensor)
    assert len(sensor.flows) <= 1000 and len(sensor.tcp) <= 500
    flows = registry.get_sample_value("social_monitor_flow_evictions_total", {"table": "flows"})
    pending = registry.get_sample_value("social_monitor_flow_evictions_total", {"table": "tcp_reassembly"})
    assert flows == 2500 - 1000
    assert pending > 0


def test_malformed_payloads_are_counted_not_raised():
    registry = CollectorRegistry()
    sensor = Sensor(lambda o: None, counters=SensorMetrics(Metrics(registry)))
    pointer_loop = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c"
    bad_dns = Ether() / IP() / UDP(sport=5000, dport=53) / Raw(pointer_loop)
    session_id_too_long = b"\x16\x03\x01\x00\x2c\x01\x00\x00\x28" + b"\xff" * 40
    bad_tls = Ether() / IP() / TCP(sport=5000, dport=443) / Raw(session_id_too_long)
    observe([bytes(bad_dns), bytes(bad_tls)], sensor=sensor)
    assert registry.get_sample_value("social_monitor_parse_errors_total", {"protocol": "dns"}) == 1
    assert registry.get_sample_value("social_monitor_parse_errors_total", {"protocol": "tls"}) == 1


def test_quic_version_we_cannot_read_is_attributed_from_dns():
    answer = Ether() / IP(src="8.8.8.8", dst=CLIENT4) / UDP(sport=53, dport=40000) / DNS(
        qr=1, qd=DNSQR(qname="www.tiktok.com"), an=DNSRR(rrname="www.tiktok.com", rdata=SERVER4))
    unknown = b"\xc3" + (0x709A50C4).to_bytes(4, "big") + b"\x08" + bytes(8) + b"\x00" + bytes(1200)
    _dns, obs = observe([bytes(answer), udp_frame(unknown)])
    assert (obs.protocol, obs.hostname, obs.attribution) == ("quic", "www.tiktok.com", "dns-answer")


def test_a_flow_is_reported_again_after_it_went_idle():
    sensor = Sensor(lambda o: None)
    frame = tcp_frame(tls_records(client_hello("www.facebook.com")))
    seen = []
    sensor.on_observation = seen.append
    for ts in (0.0, 10.0, 10.0 + sensor.flows.idle_timeout + 1):
        sensor.feed(1_700_000_000.0 + ts, 1, frame)
    # reported, its life to 10 s reported as it ended, reported again
    assert [(o.timestamp - 1_700_000_000.0, o.continuation) for o in seen] == [
        (0.0, False), (10.0, True), (311.0, False)]


def test_dns_answer_damage_keeps_the_question():
    good = bytes(DNS(id=7, qr=1, qd=DNSQR(qname="www.reddit.com"), an=DNSRR(rrname="www.reddit.com",
                                                                          rdata="151.101.1.140")))
    frame = bytes(Ether() / IP(src="8.8.8.8", dst=CLIENT4) / UDP(sport=53, dport=40000) / Raw(good[:-3]))
    [obs] = observe([frame])
    assert obs.hostname == "www.reddit.com"


def test_a_failing_consumer_is_raised_not_counted_as_a_parse_error():
    from monitor.capture.sensor import SinkError

    def broken(obs):
        raise ValueError("disk full")

    sensor = Sensor(broken)
    with pytest.raises(SinkError, match="disk full"):
        sensor.feed(0.0, 1, tcp_frame(tls_records(client_hello("www.facebook.com"))))
    assert sum(sensor.error_counts.values()) == 0


def test_memory_stays_flat_under_a_flood_of_new_flows():
    import tracemalloc

    sensor = Sensor(lambda o: None, flow_cap=500, reassembly_cap=500, dns_cap=500)
    syn = tcp_frame(flags="S", seq=1)
    hello = tcp_frame(tls_records(client_hello("www.facebook.com", padding=1500))[:1000], seq=2)

    def flood(first: int, count: int) -> None:
        for i in range(first, first + count):
            port = (1024 + i % 60000).to_bytes(2, "big")
            address = i.to_bytes(4, "big")  # a new client address every time
            for frame in (syn, hello):  # each leaves a pending half ClientHello behind
                sensor.feed(i * 0.001, 1, frame[:26] + address + frame[30:34] + port + frame[36:])

    flood(0, 1000)
    tracemalloc.start()
    flood(1000, 1000)
    after_warmup, _ = tracemalloc.get_traced_memory()
    flood(2000, 4000)  # without the cap the pending ClientHellos alone would add about 6 MB
    after_flood, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert after_flood - after_warmup < 256 * 1024
    assert len(sensor.tcp) <= 500


# -- hostile clients: cost linear in the bytes sent, memory within the caps ---------------------

HOSTILE_CLIENT, HOSTILE_SERVER = "10.66.0.9", "198.51.100.7"


def _segments(payloads: list[tuple[int, bytes]], sport: int = 40000, isn: int = 1000) -> list[bytes]:
    """A SYN, then a segment per (offset from the first byte, payload), as raw frames."""
    frames = [pcapgen.tcp_frame(HOSTILE_CLIENT, HOSTILE_SERVER, sport, 443, isn, flags=0x02)]
    frames += [pcapgen.tcp_frame(HOSTILE_CLIENT, HOSTILE_SERVER, sport, 443, isn + 1 + offset, data)
               for offset, data in payloads]
    return frames


def _one_byte_at_a_time(stream: bytes, first: int = 0) -> list[tuple[int, bytes]]:
    """The first `first` bytes in one segment, then every byte in a segment of its own."""
    head = [(0, stream[:first])] if first else []
    return head + [(i, stream[i : i + 1]) for i in range(first, len(stream))]


def _counting(monkeypatch, owner, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def _feed(sensor: Sensor, frames: list[bytes]) -> None:
    for i, frame in enumerate(frames):
        sensor.feed(1_700_000_000.0 + i * 1e-4, 1, frame)


@pytest.mark.parametrize("segments", [100, 1000, 5000])
def test_one_byte_segments_after_a_64k_record_header_cost_no_parsing(monkeypatch, segments):
    """The record header says 16 KiB are coming: nothing is read again until they are there."""
    reads = _counting(monkeypatch, tls.HelloReader, "read")
    parses = _counting(monkeypatch, tls, "parse_client_hello")
    claim = b"\x16\x03\x01\x40\x00" + b"\x01\x00\xff\xf0"  # a 16 KiB record of a 65,524-byte hello
    stream = claim + bytes(segments)
    sensor = Sensor(lambda o: None)
    _feed(sensor, _segments(_one_byte_at_a_time(stream, first=len(claim))))
    assert (len(reads), len(parses)) == (1, 0)
    assert len(sensor.tcp) == 1 and sensor.tcp.total_bytes == len(stream)


@pytest.mark.parametrize(("padding", "record_size"), [(3000, 16384), (3000, 1000), (500, 100)],
                         ids=["one-record", "four-records", "many-records"])
def test_a_hello_sent_one_byte_at_a_time_is_read_once(monkeypatch, padding, record_size):
    reads = _counting(monkeypatch, tls.HelloReader, "read")
    parses = _counting(monkeypatch, tls, "parse_client_hello")
    stream = tls_records(client_hello("www.tiktok.com", padding=padding), record_size=record_size)
    records = -(-len(stream) // (record_size + 5))
    out: list = []
    _feed(Sensor(out.append), _segments(_one_byte_at_a_time(stream)))
    assert [o.hostname for o in out] == ["www.tiktok.com"]
    assert len(parses) == 1
    assert len(reads) <= 2 * records + 2  # a header and an end per record, not one per byte


@pytest.mark.parametrize("header_lines", [0, 50, 300])  # 300 lines: 6.3 KB of the 8 KiB read
def test_an_http_head_sent_one_byte_at_a_time_is_read_at_most_three_times(monkeypatch, header_lines):
    reads = _counting(monkeypatch, http, "request_host")
    head = (b"GET /index.html HTTP/1.1\r\n" + b"X-Padding: abcdefgh\r\n" * header_lines
            + b"Host: www.reddit.com\r\nAccept: */*\r\n\r\n")
    out: list = []
    _feed(Sensor(out.append), _segments(_one_byte_at_a_time(head)))
    assert [o.hostname for o in out] == ["www.reddit.com"]
    assert len(reads) <= 3  # the request line, the Host line; never once per byte


@pytest.mark.parametrize(
    ("payload", "overflows"),
    [(bytes(1400), 1), (b"\x16\x03\x01\x40\x00\x01\x00\xff\xf0" + bytes(1391), 1)],
    ids=["zeros", "looks-like-a-hello"],
)
def test_a_withheld_first_segment_keeps_the_stream_within_its_cap(payload, overflows):
    """Segment 0 never comes, later ones do, each one byte further: 84 MiB per stream before."""
    counters = PlainCounters()
    sensor = Sensor(lambda o: None, counters=counters)
    most = 0
    for i, frame in enumerate(_segments([(k, payload) for k in range(1, 200)])):
        sensor.feed(1_700_000_000.0 + i * 1e-4, 1, frame)
        most = max(most, sensor.tcp.total_bytes, *(s.size for s in sensor.tcp.streams.values()))
    assert most <= sensor.tcp.max_bytes + SEGMENT_OVERHEAD * MAX_OUT_OF_ORDER
    assert counters.counts[("evictions", "tcp_stream_bytes")] == overflows
    assert sensor.tcp.total_bytes == sum(s.cost for s in sensor.tcp.streams.values())


def test_many_withheld_streams_stay_within_the_table_budget_oldest_out_first():
    counters = PlainCounters()
    budget = 1 << 20
    sensor = Sensor(lambda o: None, counters=counters, reassembly_bytes=budget)
    frames = []
    for port in range(40000, 40100):  # 100 streams of 20 held segments: 3 MB without the budget
        frames += _segments([(k * 1400 + 1, bytes(1400)) for k in range(20)], sport=port)
    most = 0
    for i, frame in enumerate(frames):
        sensor.feed(1_700_000_000.0 + i * 1e-4, 1, frame)
        most = max(most, sensor.tcp.total_bytes)
    assert most <= budget
    kept = sorted(key[1] for key in sensor.tcp.streams)
    assert kept == list(range(40100 - len(kept), 40100))  # the newest streams are the ones left
    assert counters.counts[("evictions", "tcp_reassembly_bytes")] == 100 - len(kept)


@pytest.mark.parametrize(
    "head",
    [b"PROPFIND /dav/ HTTP/1.1\r\nHost: dav.example.org\r\nDepth: 1\r\n\r\n",
     b"BREW /pot HTTP/1.1\r\nHost: dav.example.org\r\n\r\n",
     b"GET HTTP/1.1\r\nHost: dav.example.org\r\n\r\n"],
    ids=["webdav-propfind", "unregistered-method", "no-uri"],
)
def test_http_request_with_any_method_is_read(head):
    seen = observe([tcp_frame(head, dport=80)])
    assert [(o.protocol, o.hostname) for o in seen] == [("http", "dav.example.org")]


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_tcp_fast_open_data_in_the_syn_starts_the_stream(v6):
    """The SYN carries the first part of the ClientHello (RFC 7413): its data starts at ISN + 1."""
    parts = big_hello_segments("www.fastopen.example")
    frames = [tcp_frame(parts[0], flags="S", seq=999, v6=v6),
              tcp_frame(parts[1], seq=1000 + len(parts[0]), v6=v6)]
    assert [o.hostname for o in observe(frames)] == ["www.fastopen.example"]


def test_tcp_fast_open_with_a_whole_request_in_the_syn():
    frame = tcp_frame(b"GET / HTTP/1.1\r\nHost: tfo.example.org\r\n\r\n", flags="S", seq=7, dport=80)
    assert [o.hostname for o in observe([frame])] == ["tfo.example.org"]


@pytest.mark.parametrize(
    "head",
    [b"BREW /pot HTTP/1.1\r\nX-Padding: abcdefgh\r\nHost: www.reddit.com\r\n\r\n",
     b"PROPFIND /dav/ HTTP/1.1\r\nDepth: 1\r\nHost: www.reddit.com\r\n\r\n",
     b"GET HTTP/1.1\r\nHost: www.reddit.com\r\n\r\n"],
    ids=["unregistered-method", "webdav", "no-target"],
)
def test_a_request_with_any_method_sent_one_byte_at_a_time_is_read_by_the_scanner(monkeypatch, head):
    """After a SYN the method is told from the first bytes as they come; the head is read at most
    three times, as for GET, never once per byte."""
    reads = _counting(monkeypatch, http, "request_host")
    out: list = []
    _feed(Sensor(out.append), _segments(_one_byte_at_a_time(head)))
    assert [o.hostname for o in out] == ["www.reddit.com"]
    assert len(reads) <= 3


@pytest.mark.parametrize(("stream", "kept"), [(b"A" * 40, 0), (b"ABCD", 1), (b"\x00" * 8, 0)],
                         ids=["token-longer-than-a-method", "token-under-way", "binary"])
def test_first_bytes_that_cannot_begin_a_request_drop_the_stream(stream, kept):
    sensor = Sensor(lambda o: None)
    _feed(sensor, _segments(_one_byte_at_a_time(stream)))
    assert len(sensor.tcp) == kept


def test_tcp_fast_open_data_opens_the_stream_at_isn_plus_one():
    sensor = Sensor(lambda o: None)
    data = b"\x16\x03\x01\x40\x00\x01"  # a record header and the hello's type: 16 KiB to come
    sensor.feed(1_700_000_000.0, 1, tcp_frame(data, flags="S", seq=999))
    [stream] = sensor.tcp.streams.values()
    assert (stream.next_seq, bytes(stream.data), sensor.tcp.total_bytes) == (1000, data, len(data))


@pytest.mark.parametrize(
    ("cuts", "order"),
    [((2, 17), [0, 1, 2]), ((2, 17), [0, 2, 1]), ((17, 30), [0, 2, 1]), ((20, 30), [0, 1, 2])],
    ids=["method-cut-in-the-syn", "method-cut-then-reordered", "line-cut-then-reordered",
         "request-line-in-the-syn"],
)
def test_tcp_fast_open_request_continued_after_the_syn(cuts, order):
    """The SYN's data is the stream's first bytes; the rest follows at ISN + 1 + its length."""
    head = b"BREW /pot HTTP/1.1\r\nHost: tfo.example.org\r\n\r\n"
    a, b = cuts
    frames = [tcp_frame(head[:a], flags="S", seq=999, dport=80),
              tcp_frame(head[a:b], seq=1000 + a, dport=80),
              tcp_frame(head[b:], seq=1000 + b, dport=80)]
    assert [o.hostname for o in observe([frames[i] for i in order])] == ["tfo.example.org"]


# -- a flow's life: continuations, through the real pipeline and store ---------------------------

TEACHER = "10.20.10.41"  # ash-sci1-teacher in the example trust: classrooms, P2 is 09:55-10:55
FB_SERVER = "157.240.1.35"


def long_tls_flow(start: float, times: list[float], end: str | None) -> list[tuple[float, bytes]]:
    """A scapy-built TLS connection: handshake at `start`, a server record at each of `times`
    (seconds after it), then FIN or RST (or nothing: the capture just stops)."""
    up = Ether(src="3c:52:82:20:00:02") / IP(src=TEACHER, dst=FB_SERVER)
    down = Ether(dst="3c:52:82:20:00:02") / IP(src=FB_SERVER, dst=TEACHER)
    packets = [up / TCP(sport=51000, dport=443, flags="S", seq=99),
               up / TCP(sport=51000, dport=443, flags="PA", seq=100)
               / Raw(tls_records(client_hello("www.facebook.com")))]
    for packet in packets:
        packet.time = start
    for at in times:
        packet = down / TCP(sport=443, dport=51000, flags="PA") / Raw(b"\x17\x03\x03\x00\x10" + bytes(16))
        packet.time = start + at
        packets.append(packet)
    if end is not None:
        packet = (up / TCP(sport=51000, dport=443, flags=end + "A"))
        packet.time = start + times[-1] + 0.5
        packets.append(packet)
    return [(float(p.time), bytes(p)) for p in packets]


def repeated_dns(start: float, seconds: float, every: float = 0.1) -> list[tuple[float, bytes]]:
    """One socket asking for the same name every `every` seconds, each answered."""
    query = bytes(Ether() / IP(src=TEACHER, dst="10.20.0.1") / UDP(sport=40000, dport=53) / DNS(
        id=7, qd=DNSQR(qname="www.facebook.com")))
    answer = bytes(Ether() / IP(src="10.20.0.1", dst=TEACHER) / UDP(sport=53, dport=40000) / DNS(
        id=7, qr=1, qd=DNSQR(qname="www.facebook.com"), an=DNSRR(rrname="www.facebook.com", rdata=FB_SERVER)))
    frames = []
    for i in range(round(seconds / every)):
        frames += [(start + i * every, query), (start + i * every + 0.01, answer)]
    return frames


def sessions_from_capture(tmp_path, config, frames: list[tuple[float, bytes]]) -> tuple[list, list]:
    """The capture written to a file, read back and fed to the sensor, its observations tagged and
    stored in a real SQLite store: the sessions stored, and what the sensor reported."""
    from monitor.capture.sources import read_frames
    from monitor.store.sqlite import open_store
    from monitor.store.writer import StoreWriter
    from monitor.tagging.gateway import NO_ADDRESSES
    from monitor.tagging.pipeline import Pipeline
    from monitor.tagging.tagger import Tagger

    pcap = tmp_path / "flow.pcap"
    pcapgen.write_pcap(pcap, frames)
    writer = StoreWriter(open_store(tmp_path / "s.db"), Metrics(), max_delay=0.01).start()
    pipeline = Pipeline(Tagger(config), sink=writer, metrics=Metrics(), gateway=NO_ADDRESSES)
    reported = []

    def submit(obs):
        reported.append(obs)
        return pipeline.submit(obs)

    sensor = Sensor(submit, idle_gap=config.model.store.idle_gap_seconds)
    for ts, linktype, frame in read_frames(pcap):
        sensor.feed(ts, linktype, frame)
    sensor.close()
    assert writer.flush(10) and writer.close(5)
    with open_store(tmp_path / "s.db") as store:
        assert store.verify().ok
        return [(s.platform, s.period, round(s.first_seen - frames[0][0], 1),
                 round(s.last_seen - frames[0][0], 1), s.observations) for s in store.sessions()], reported


EVERY_10S_20MIN = [float(t) for t in range(10, 1201, 10)]


@pytest.mark.parametrize(
    ("times", "end", "sessions"),
    [
        (EVERY_10S_20MIN, "F", [("facebook", "P2", 0.0, 1200.0, 1)]),  # the FIN came under a second later
        (EVERY_10S_20MIN[:-3], "F", [("facebook", "P2", 0.0, 1170.5, 1)]),  # to the FIN
        (EVERY_10S_20MIN[:-3], "R", [("facebook", "P2", 0.0, 1170.5, 1)]),  # to the RST
        (EVERY_10S_20MIN, None, [("facebook", "P2", 0.0, 1200.0, 1)]),  # to the last packet of the file
        ([float(t) for t in range(60, 1201, 60)], "F", [("facebook", "P2", 0.0, 1200.0, 1)]),  # 1 a minute
        ([10.0, 20.0, 250.0, 475.0], "F", [("facebook", "P2", 0.0, 475.0, 1)]),  # bursts under the idle gap
        ([10.0, 600.0, 610.0], "F", [("facebook", "P2", 0.0, 10.0, 1)]),  # silent 10 min: it ended at 10
        ([float(t) for t in range(10, 3001, 10)], "F",  # 10:00 to 10:50, then into the break
         [("facebook", "P2", 0.0, 3240.0, 1), ("facebook", "Break", 3300.0, 3900.0, 0)]),
    ],
    ids=["fin-at-once", "fin", "rst", "end-of-capture", "sparse", "bursts", "silent-too-long",
         "across-a-period"],
)
def test_a_long_tls_flow_keeps_its_session_alive(tmp_path, example_config, times, end, sessions):
    from tests.conftest import london

    start = london(2026, 11, 30, 10, 0)
    if len(times) == 300:  # the period-crossing row runs 10:00 to 11:05 (P2 ends 10:55)
        times = [float(t) for t in range(10, 3901, 10)]
    got, reported = sessions_from_capture(tmp_path, example_config, long_tls_flow(start, times, end))
    assert got == sessions
    assert sum(not o.continuation for o in reported) == 1  # one flow, one name: one observation
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(reported)]
    assert max(gaps, default=0.0) <= example_config.model.store.idle_gap_seconds


@pytest.mark.parametrize(
    ("seconds", "sessions", "reports"),
    [(480.0, [("facebook", "P2", 0.0, 479.9, 1)], 9), (0.5, [("facebook", "P2", 0.0, 0.0, 1)], 1)],
    ids=["8-minutes", "half-a-second"],
)
def test_dns_asked_every_tenth_of_a_second_extends_the_session(tmp_path, example_config, seconds,
                                                               sessions, reports):
    from tests.conftest import london

    got, reported = sessions_from_capture(tmp_path, example_config,
                                          repeated_dns(london(2026, 11, 30, 10, 0), seconds))
    assert got == sessions
    assert len(reported) == reports  # the first, one a minute and the last (a second or more on): not 4,800


def _with_port(frame: bytes, port: int, at: int = 34) -> bytes:
    """The frame with its TCP client port (at 34 behind Ethernet/IPv4; 36 in a reply) changed."""
    return frame[:at] + port.to_bytes(2, "big") + frame[at + 2 :]


@pytest.mark.parametrize(
    ("flows", "cap", "evicted", "continued"),
    [(100, 1000, 0, 100), (1000, 1000, 0, 1000), (3000, 1000, 2000, 1000), (5000, 10, 4990, 10)],
    ids=["few", "at-cap", "three-times-the-cap", "flood"],
)
def test_flow_lives_are_capped_and_evictions_counted(flows, cap, evicted, continued):
    """A device opening many named flows: the table holds `cap`, each eviction is counted and its
    flow's life so far reported; a minute later only the flows still held are continued."""
    registry = CollectorRegistry()
    out: list = []
    sensor = Sensor(out.append, counters=SensorMetrics(Metrics(registry)), flow_cap=cap)
    hello = tcp_frame(tls_records(client_hello("www.facebook.com")))
    data = tcp_frame(b"\x17\x03\x03\x00\x01\x00", reverse=True)  # the server's reply
    t0 = 1_700_000_000.0
    for i in range(flows):
        sensor.feed(t0 + i * 0.001, 1, _with_port(hello, 1024 + i))
    for i in range(flows):
        sensor.feed(t0 + 2 + i * 0.001, 1, _with_port(data, 1024 + i, 36))  # lives 2 s: evicted ones report
    for i in range(flows):
        sensor.feed(t0 + 70 + i * 0.001, 1, _with_port(data, 1024 + i, 36))
    assert len(sensor.flows) == min(flows, cap)
    evictions = registry.get_sample_value("social_monitor_flow_evictions_total", {"table": "flows"})
    assert (evictions or 0) == evicted
    first = sum(not o.continuation for o in out)
    assert first == flows  # every flow reported once, whatever was evicted
    assert sum(o.continuation and o.timestamp >= t0 + 70 for o in out) == continued


@pytest.mark.parametrize(
    ("times", "most"),
    [
        ([i * 0.001 for i in range(20_000)], 0),  # a packet a millisecond for 20 s: nothing more
        ([i * 59.9 for i in range(40)], 19),  # just under a minute apart: every other packet
        ([i * 60.0 for i in range(40)], 39),  # a minute apart: each one, never more
        ([i * 299.0 for i in range(10)], 9),  # silent just under the timeout each time: each one
        ([(i % 2) * 120.0 for i in range(100)], 1),  # time going back and forth: once
    ],
    ids=["dense", "just-under-a-minute", "a-minute", "quiet-spells", "back-and-forth"],
)
def test_a_flow_reports_at_most_once_a_minute(times, most):
    """Whatever the timing a device chooses, reports stay bounded by the packets and the minutes."""
    out: list = []
    sensor = Sensor(out.append)
    hello = tcp_frame(tls_records(client_hello("www.facebook.com")))
    data = tcp_frame(b"\x17\x03\x03\x00\x01\x00", reverse=True)
    t0 = 1_700_000_000.0
    sensor.feed(t0, 1, hello)
    for at in times[1:]:
        sensor.feed(t0 + at, 1, data)
    continued = [o for o in out if o.continuation]
    assert len(continued) == most
    assert len(sensor.flows) == 1
