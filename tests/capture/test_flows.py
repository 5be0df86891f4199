"""Bounded flow state, step by step: what is reported once, what DNS said, what a stream holds."""

from __future__ import annotations

import pytest

from monitor.capture.flows import (
    MAX_OUT_OF_ORDER,
    SEGMENT_OVERHEAD,
    STREAM_BYTES,
    DnsAnswers,
    FlowLives,
    PendingStream,
    TcpReassembly,
    flow_key,
)
from monitor.capture.tls import MAX_CLIENT_HELLO
from monitor.observation import Observation

A, B, C = ("10.0.0.1", 1), ("10.0.0.1", 2), ("10.0.0.1", 3)


def _sighting(name: str, ts: float, protocol: str = "tls") -> Observation:
    return Observation(ts, "10.0.0.1", 50000, "157.240.1.35", 443, "tcp", protocol, name)  # type: ignore[arg-type]


def _run(steps: list[tuple], cap: int = 2, idle_gap: float = 300.0) -> tuple[list[tuple[str, float]], int]:
    """Play steps on a table; the continuations it reported (name, time), and its size after."""
    out: list[Observation] = []
    lives = FlowLives(out.append, cap=cap, idle_gap=idle_gap)
    for step in steps:
        kind, *args = step
        if kind == "add":
            key, ts = args
            lives.add(key, _sighting(f"{key[1]}.example", ts))
        elif kind == "pkt":
            key, ts = args
            life = lives.get(key)
            if life is not None:
                lives.touch(key, life, ts)
        elif kind == "end":
            lives.end(*args)
        elif kind == "expire":
            lives.expire(*args)
        else:
            lives.close()
    assert all(o.continuation for o in out)
    return [(o.hostname, o.timestamp) for o in out], len(lives)


EVERY_10S = [("pkt", A, float(t)) for t in range(10, 201, 10)]


@pytest.mark.parametrize(
    ("steps", "reports", "left"),
    [
        ([("add", A, 0.0), *EVERY_10S, ("end", A, 205.0)],
         [("1.example", 60.0), ("1.example", 120.0), ("1.example", 180.0), ("1.example", 205.0)], 0),
        ([("add", A, 0.0), ("pkt", A, 0.5), ("close",)], [], 0),  # under a second: nothing to add
        ([("add", A, 0.0), ("pkt", A, 30.0), ("close",)], [("1.example", 30.0)], 0),  # end of input
        ([("add", A, 0.0), ("pkt", A, 59.0), ("pkt", A, 200.0)],
         [("1.example", 59.0), ("1.example", 200.0)], 1),  # a quiet spell: the burst before it ends at 59
        ([("add", A, 0.0), ("pkt", A, 10.0), ("pkt", A, 400.0)], [("1.example", 10.0)], 0),  # idle: over
        ([("add", A, 0.0), ("pkt", A, 299.0)], [("1.example", 299.0)], 1),  # just inside the timeout
        ([("add", A, 0.0), ("pkt", A, 10.0), ("add", B, 11.0), ("add", C, 12.0)],
         [("1.example", 10.0)], 2),  # cap 2: A evicted, its life reported as it ends
        ([("add", A, 0.0), ("pkt", A, 10.0), ("add", B, 100.0), ("expire", 311.0)],
         [("1.example", 10.0)], 1),  # A silent for the timeout: ended at its last packet
        ([("add", A, 0.0), *EVERY_10S, ("expire", 301.0)],
         [("1.example", 60.0), ("1.example", 120.0), ("1.example", 180.0)], 1),  # alive: requeued
        ([("add", A, 0.0), *EVERY_10S, ("expire", 301.0), ("expire", 602.0)],
         [("1.example", 60.0), ("1.example", 120.0), ("1.example", 180.0), ("1.example", 200.0)], 0),
        ([("add", A, 0.0), ("pkt", A, 5.0), ("end", B, 6.0)], [], 1),  # another flow's FIN
        ([("add", A, 0.0), ("pkt", A, 50.0), ("pkt", A, -5.0), ("close",)], [("1.example", 50.0)], 0),
    ],
    ids=["every-minute-then-fin", "short-flow", "end-of-input", "quiet-spell", "idle-ended",
         "inside-timeout", "evicted-reported", "expired-at-last", "live-requeued", "expired-late",
         "other-fin", "time-backwards"],
)
def test_flow_lives_report_continuations(steps, reports, left):
    assert _run(steps) == (reports, left)


@pytest.mark.parametrize(
    ("idle_gap", "times", "reports"),
    [
        (300.0, [30.0, 70.0], [70.0]),  # every 60 s
        (60.0, [29.0, 31.0], [31.0]),  # every half the gap
        (60.0, [59.0, 61.0], [59.0]),  # a minute of silence ends the flow
        (600.0, [299.0, 600.0], [299.0]),  # never longer than Zeek's 5 minutes
    ],
    ids=["default", "short-gap", "short-gap-idle", "long-gap"],
)
def test_flow_lives_follow_the_idle_gap(idle_gap, times, reports):
    steps = [("add", A, 0.0), *[("pkt", A, t) for t in times]]
    assert [ts for _name, ts in _run(steps, idle_gap=idle_gap)[0]] == reports


@pytest.mark.parametrize(
    ("steps", "ask", "known"),
    [
        ([("tls", "a.example", 0.0)], ("tls", "a.example", 1.0), True),
        ([("tls", "a.example", 0.0)], ("tls", "b.example", 1.0), False),
        ([("tls", "a.example", 0.0)], ("dns", "a.example", 1.0), False),
        ([("tls", "a.example", 0.0)], ("tls", "a.example", 300.0), False),  # ended: a new sighting
        ([("tls", f"n{i}.example", 0.0) for i in range(9)], ("tls", "n8.example", 1.0), False),  # 8 a flow
        ([("tls", f"n{i}.example", 0.0) for i in range(9)], ("tls", "n7.example", 1.0), True),
    ],
    ids=["same-name", "other-name", "other-protocol", "after-timeout", "past-name-cap", "within-name-cap"],
)
def test_flow_lives_known(steps, ask, known):
    lives = FlowLives(lambda o: None)
    for protocol, name, ts in steps:
        if not lives.known(A, protocol, name, ts):
            lives.add(A, _sighting(name, ts, protocol))
    assert lives.known(A, *ask) is known


@pytest.mark.parametrize(
    ("flows", "cap", "evictions", "size"),
    [(1, 2, 0, 1), (2, 2, 0, 2), (3, 2, 1, 2), (3, 1, 2, 1), (10_000, 100, 9_900, 100)],
    ids=["one", "at-cap", "one-over", "cap-one", "flood"],
)
def test_flow_lives_cap_counts_evictions(flows, cap, evictions, size):
    evicted: list[int] = []
    lives = FlowLives(lambda o: None, cap=cap, on_evict=lambda: evicted.append(1))
    for i in range(flows):
        lives.add(("k", i), _sighting("a.example", float(i)))
    assert (len(evicted), len(lives)) == (evictions, size)


@pytest.mark.parametrize(
    ("src", "sport", "dst", "dport"),
    [(b"\x0a\0\0\1", 50000, b"\x9d\xf0\1\x23", 443), (b"\x0a\0\0\1", 53, b"\x0a\0\0\2", 53),
     (b"\x0a\0\0\2", 5353, b"\x0a\0\0\1", 5353)],
    ids=["client-server", "same-port", "same-port-reversed"],
)
def test_flow_key_is_the_same_both_ways(src, sport, dst, dport):
    assert flow_key(6, src, sport, dst, dport) == flow_key(6, dst, dport, src, sport)


ADDR = bytes([23, 45, 67, 89])


@pytest.mark.parametrize(
    ("answers", "asked_at", "name"),
    [
        ([("www.tiktok.com", 300)], 299.0, "www.tiktok.com"),
        ([("www.tiktok.com", 300)], 301.0, None),  # expired
        ([("www.tiktok.com", 0)], 59.0, "www.tiktok.com"),  # a TTL under a minute is kept a minute
        ([("www.tiktok.com", 0)], 61.0, None),
        ([("www.tiktok.com", 86400)], 3599.0, "www.tiktok.com"),  # kept an hour at most
        ([("www.tiktok.com", 86400)], 3601.0, None),
        ([("www.tiktok.com", 300), ("www.youtube.com", 300)], 10.0, "www.youtube.com"),  # the latest wins
    ],
    ids=["within-ttl", "past-ttl", "min-ttl-kept", "min-ttl-gone", "max-ttl-kept", "max-ttl-gone", "latest"],
)
def test_dns_answers_name_for(answers, asked_at, name):
    table = DnsAnswers()
    for qname, ttl in answers:
        table.remember(ADDR, qname, ttl, 0.0)
    assert table.name_for(ADDR, asked_at) == name


@pytest.mark.parametrize(
    ("addresses", "evictions", "oldest_kept"),
    [([b"\1", b"\2"], 0, True), ([b"\1", b"\2", b"\3"], 1, False), ([b"\1", b"\2", b"\1", b"\3"], 1, True)],
    ids=["at-cap", "oldest-evicted", "re-answered-moves-to-newest"],
)
def test_dns_answers_cap(addresses, evictions, oldest_kept):
    evicted = []
    table = DnsAnswers(cap=2, on_evict=lambda: evicted.append(1))
    for address in addresses:
        table.remember(address, "n.example", 300, 0.0)
    assert len(evicted) == evictions
    assert (table.name_for(b"\1", 1.0) is not None) is oldest_kept
    assert len(table) == 2


@pytest.mark.parametrize(
    ("next_seq", "segments", "contiguous", "size"),
    [
        (1000, [(1000, b"abc"), (1003, b"def")], b"abcdef", 6),
        (1000, [(1003, b"def"), (1000, b"abc")], b"abcdef", 6),  # out of order
        (1000, [(1003, b"def")], b"", 3),  # the first bytes are still missing
        (1000, [(1000, b"abc"), (1010, b"xyz")], b"abc", 6),  # a hole: only what comes before it
        (1000, [(1000, b"ab"), (1000, b"abcd")], b"abcd", 4),  # a longer retransmission extends
        (1000, [(1000, b"abcd"), (1000, b"ab")], b"abcd", 4),  # a shorter one is ignored
        (1000, [(1000, b"abcd"), (1002, b"cdef")], b"abcdef", 6),  # overlapping segments
        (1000, [(1000, b"abc"), (999, b"zabc")], b"abc", 3),  # before the start: ignored
        (1000, [(1000, b"abc"), (1100, b"x")], b"abc", 3),  # at the byte limit: ignored
        (1000, [(1000, b"")], b"", 0),  # empty segment
        (0xFFFFFFFE, [(0xFFFFFFFE, b"ab"), (0, b"cd")], b"abcd", 4),  # sequence numbers wrap
        (1000, [(1098, b"wxyz")], b"", 2),  # a held segment is cut at the limit
        (1000, [(1096, b"wxyz"), (1000, bytes(96))], bytes(96) + b"wxyz", 100),  # filled up to the limit
        (1000, [(1005, b"fg"), (1003, b"de"), (1000, b"abc")], b"abcdefg", 7),  # two held, merged in order
        (1000, [(1003, b"d"), (1003, b"def"), (1000, b"abc")], b"abcdef", 6),  # the longer held one wins
        (1000, [(1002, b"cdef"), (1003, b"d"), (1000, b"abc")], b"abcdef", 6),  # held inside held
    ],
    ids=["in-order", "out-of-order", "first-missing", "hole", "longer-retransmission",
         "shorter-retransmission", "overlap", "before-start", "past-limit", "empty", "seq-wrap",
         "held-cut-at-limit", "up-to-limit", "two-held", "longer-held", "held-inside-held"],
)
def test_pending_stream(next_seq, segments, contiguous, size):
    stream = PendingStream(next_seq, 0.0)
    for seq, data in segments:
        assert stream.add(seq, data, limit=100) is not None
    assert (bytes(stream.data), stream.size) == (contiguous, size)


@pytest.mark.parametrize(
    ("segments", "refused_at"),
    [
        ([(1, bytes(60)), (2, bytes(60))], 1),  # segment 0 withheld: held bytes count too
        ([(10, bytes(50)), (10, bytes(60)), (20, bytes(50))], 2),  # a longer copy counts its growth
        ([(0, bytes(50)), (60, bytes(40)), (51, bytes(20))], 2),  # in order and held together
        ([(0, bytes(99)), (99, b"z")], None),  # exactly the limit
        ([(k, b"x") for k in range(2, 2 * MAX_OUT_OF_ORDER + 4, 2)], MAX_OUT_OF_ORDER),  # too many held
        ([(2, b"x")] * (2 * MAX_OUT_OF_ORDER), None),  # copies of one held segment are one segment
    ],
    ids=["withheld-start", "longer-copy", "in-order-plus-held", "exactly-limit", "segment-count",
         "same-segment-again"],
)
def test_pending_stream_refuses_bytes_over_its_limit(segments, refused_at):
    stream = PendingStream(0, 0.0)
    limit = 100 if len(segments) < MAX_OUT_OF_ORDER else 10_000
    results = [stream.add(seq, data, limit) for seq, data in segments]
    refused = results.index(None) if None in results else None
    assert refused == refused_at
    if refused is not None:  # a refused segment leaves the stream as it was
        before = stream.size
        assert (stream.add(*segments[refused], limit), stream.size) == (None, before)


def test_pending_stream_cost_counts_held_segments():
    stream = PendingStream(0, 0.0)
    changes = [stream.add(5, b"fgh", 100), stream.add(0, b"abcde", 100)]
    assert changes == [3 + SEGMENT_OVERHEAD, 5 - SEGMENT_OVERHEAD]  # 5 new bytes, one segment merged
    assert (stream.cost, stream.later) == (8, {})


def test_tcp_reassembly_cap_counts_evictions_and_drops_the_oldest():
    evicted = []
    table = TcpReassembly(cap=2, on_evict=lambda: evicted.append(1))
    for port in (1, 2, 3):
        table.open(("c", port), 0, 0.0)
    assert (len(evicted), list(k[1] for k in table.streams)) == (1, [2, 3])


@pytest.mark.parametrize(
    ("opened", "kept"),
    [([1, 2, 3, 4], [3, 4]), ([1, 2, 1, 3], [1, 3]), ([1, 2, 3, 2, 4], [2, 4])],
    ids=["first-in-first-out", "reopened-is-newest", "reopened-after-eviction"],
)
def test_tcp_reassembly_evicts_in_opening_order(opened, kept):
    table = TcpReassembly(cap=2)
    for port in opened:
        table.open(("c", port), 0, 0.0)
    assert [k[1] for k in table.streams] == kept


@pytest.mark.parametrize(
    ("streams", "kept", "bytes_evictions"),
    [
        ([(1, 40_000), (2, 40_000)], [1, 2], 0),
        ([(1, 40_000), (2, 40_000), (3, 40_000)], [2, 3], 1),  # the oldest goes to make room
        ([(1, 40_000), (2, 40_000), (1, 50_000)], [2, 1], 0),  # reopened: it is the newest
        ([(1, 20_000), (2, 20_000), (3, 20_000), (4, 65_000)], [3, 4], 2),
    ],
    ids=["fits", "oldest-out", "reopened", "big-newcomer"],
)
def test_tcp_reassembly_total_byte_budget(streams, kept, bytes_evictions):
    counts = {"bytes": 0, "overflow": 0}
    table = TcpReassembly(max_total_bytes=STREAM_BYTES + SEGMENT_OVERHEAD * MAX_OUT_OF_ORDER + 10_000,
                          on_bytes_evict=lambda: counts.__setitem__("bytes", counts["bytes"] + 1),
                          on_overflow=lambda: counts.__setitem__("overflow", counts["overflow"] + 1))
    for port, size in streams:
        stream = table.open(("c", port), 0, 0.0)
        assert table.add(("c", port), stream, 0, bytes(size))
    assert [k[1] for k in table.streams] == kept
    assert counts == {"bytes": bytes_evictions, "overflow": 0}
    assert table.total_bytes == sum(s.cost for s in table.streams.values()) <= table.max_total_bytes


def test_tcp_reassembly_drops_and_counts_a_stream_over_its_cap():
    overflows = []
    table = TcpReassembly(on_overflow=lambda: overflows.append(1))
    stream = table.open(("c", 1), 0, 0.0)
    kept = []
    for offset in range(1, 60):  # segment 0 never comes; each later one overlaps the last
        kept.append(table.add(("c", 1), stream, offset, bytes(1400)))
        if not kept[-1]:
            break
    assert len(kept) - 1 == STREAM_BYTES // 1400
    assert (overflows, len(table), table.total_bytes) == ([1], 0, 0)


@pytest.mark.parametrize(
    ("last_seen", "now", "left"),
    [([0.0, 10.0], 25.0, 2), ([0.0, 10.0], 35.0, 1), ([0.0, 10.0], 41.0, 0)],
    ids=["none-idle", "one-idle", "both-idle"],
)
def test_tcp_reassembly_expire(last_seen, now, left):
    table = TcpReassembly(idle_timeout=30.0)
    for port, at in enumerate(last_seen):
        stream = table.open(("c", port), 0, at)
        table.add(("c", port), stream, 0, b"abc")
    table.expire(now)
    assert (len(table), table.total_bytes) == (left, 3 * left)


def test_tcp_reassembly_holds_a_whole_client_hello():
    """The byte budget per stream fits the largest ClientHello and its record headers."""
    assert TcpReassembly().max_bytes >= MAX_CLIENT_HELLO + 5 * 4


@pytest.mark.parametrize(
    ("segments", "contiguous", "held"),
    [
        ([(0, 3, 6)], b"abc", {}),  # the payload part of a frame, not its headers or trailer
        ([(3, 3, 6), (0, 3, 6)], b"abcabc", {}),  # held, then merged
        ([(5, 3, 6)], b"", {5: b"abc"}),  # held: only the payload bytes are kept
        ([(0, 3, 6), (1, 3, 6)], b"abcc", {}),  # overlapping: only the new byte is copied
    ],
    ids=["in-order", "held-then-merged", "held", "overlap"],
)
def test_pending_stream_takes_the_payload_out_of_a_frame(segments, contiguous, held):
    frame = b"HDRabcTRAILER"
    stream = PendingStream(0, 0.0)
    for seq, start, stop in segments:
        stream.add(seq, frame, 100, start, stop)
    assert (bytes(stream.data), stream.later or {}) == (contiguous, held)
