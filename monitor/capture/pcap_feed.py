"""A classic pcap file fed to a `Sensor` straight from 4 MB blocks, the common packets in one loop.

Most packets of a capture cannot carry a name: TCP segments of a connection
already read (TLS application data, acknowledgements), QUIC short headers,
media over UDP. For those `Sensor.feed` would only move the last packet of
the flow they belong to. Here each record of an untagged Ethernet frame with
IPv4 (no options, not a fragment) or IPv6 (TCP or UDP straight after the
fixed header) is read in place with two precompiled structs, no frame copy,
no call; only a packet whose few deciding bytes say it can matter (a SYN,
FIN or RST, a held stream, a payload that starts like TLS, HTTP, DNS, a VPN
or QUIC's long header, a DNS/DHCP/IKE/tunnel port) is sliced and handed to
`Sensor.feed`, which reads it exactly as before. Every other link type,
header chain, fragment and tunnel goes to `feed` too. The output is the
same as feeding every frame: `tests/capture/test_pcap_feed.py` checks it on
the shared captures.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import BinaryIO, Final, cast

from monitor.capture import http, tls
from monitor.capture.bypass import FIRST_BYTES as _BYPASS_FIRST
from monitor.capture.packets import (
    LINKTYPE_ETHERNET,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
)
from monitor.capture.sensor import OVPN_TCP, SPECIAL_PORTS, Sensor
from monitor.capture.sources import CHUNK, MAX_RECORD, ReadStats, pcap_header
from monitor.capture.tunnels import UDP_TUNNEL_PORTS

# First payload bytes of a TCP segment `feed` looks further at: a TLS record (0x16), and the
# characters an HTTP method token (RFC 9110 tchar) can begin with.
_TCHARS: Final = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TCP_FIRST: Final = frozenset(_TCHARS) | {0x16}
assert all(m[0] in TCP_FIRST for m in http.METHOD_PREFIXES)
_TCP_END: Final = TCP_FIN | TCP_RST
_TCP_OPEN_OR_END: Final = TCP_SYN | TCP_FIN | TCP_RST
# What a record needs: `feed` it whole; or, read in place, only its flow's life moved (quiet), a
# client's stream opened (a bare SYN), its flow ended (a bare FIN or RST).
_FEED, _READ_ON, _QUIET, _QUIET_UNLESS_HELD, _OPEN, _END = range(6)
_CLIENT_HELLO: Final = tls.HANDSHAKE_CLIENT_HELLO
# An HTTP request line's start: a method token and a space (`http.request_start`), in place.
_SPAN: Final = http.MAX_METHOD + 1
# From the Ethernet type on (frame offset 12): IPv4 version/IHL, total length, fragment field,
# protocol, addresses, then TCP ports, sequence number, data offset and flags (for UDP the
# "sequence number" is its length and checksum).
_V4 = struct.Struct("!HBxHxxHxB2x4s4sHHI4xBB").unpack_from
_V6 = struct.Struct("!HB3xHBx16s16sHHI4xBB").unpack_from  # version, payload length, next header


def feed_pcap(sensor: Sensor, f: BinaryIO, magic: bytes, stats: ReadStats,
              progress: Callable[[int], None] | None = None) -> None:
    """Feed every record of the pcap `f` (its 4-byte `magic` already read) to `sensor`; closes `f`.

    The same records as `sources.read_frames`, the same `stats` (frames, a truncated tail)."""
    try:
        _feed(sensor, f, magic, stats, progress)
    finally:
        f.close()


def _feed(sensor: Sensor, f: BinaryIO, magic: bytes, stats: ReadStats,
          progress: Callable[[int], None] | None) -> None:
    opened = pcap_header(f, magic, stats)
    if opened is None:
        return
    order, tick, linktype = opened
    ethernet = linktype == LINKTYPE_ETHERNET
    record = struct.Struct(order + "III4x").unpack_from  # seconds, fraction, captured length
    max_record = MAX_RECORD
    feed = sensor.feed
    flow_life = sensor.flows.get
    touch = sensor.flows.touch
    pending_stream = sensor.tcp.streams.get
    drop_stream = sensor.tcp.drop
    open_stream = sensor.tcp.open
    end_flow = sensor.flows.end
    http_prefixes, request_start = tuple(http.METHOD_PREFIXES), http.REQUEST_START.match
    tcp_first, bypass_first, ovpn = TCP_FIRST, _BYPASS_FIRST, OVPN_TCP
    special, tunnels = SPECIAL_PORTS, UDP_TUNNEL_PORTS
    v4, v6 = _V4, _V6
    next_expiry = sensor._next_expiry
    buf = bytearray(CHUNK)  # read into again and again: no new pages per block
    view = memoryview(buf)
    n = pos = 0  # buf[:n] holds data, records from `pos` on are still to read
    fed_before = sensor.packets  # `feed` counts the frames it is given
    skipped = 0  # packets read here without `feed`: added to `sensor.packets`
    try:
        while True:
            rest = n - pos
            if pos:
                view[:rest] = view[pos:n]  # the record cut by the end of the last block, to the front
            elif rest == len(buf):  # one record larger than the buffer (at most MAX_RECORD): grow it
                view.release()
                buf += bytes(len(buf))
                view = memoryview(buf)
            got = cast(io.BufferedReader, f).readinto(view[rest:])  # open() in "rb" mode
            n, pos = rest + (got or 0), 0
            if not got:
                break
            if progress is not None:
                progress(sensor.packets - fed_before + skipped)
            last_header = n - 16  # a record header starting after this is cut by the block's end
            while pos <= last_header:
                sec, frac, caplen = record(buf, pos)
                if caplen > max_record:
                    stats.truncated = True
                    return
                fp = pos + 16  # the frame is buf[fp:end]
                end = fp + caplen
                if end > n:
                    break
                pos = end
                ts = sec + frac * tick
                # -- the few bytes that decide: what is not plainly one of the quiet kinds goes to `feed`
                action = _FEED
                if caplen >= 54 and ethernet:
                    ip = fp + 12  # the Ethernet type, then IP
                    kind = buf[ip]
                    if kind == 0x08:
                        etype, b0, total, frag, proto, src, dst, sport, dport, seq, doff, flags = v4(buf, ip)
                        if etype == 0x0800 and b0 == 0x45 and not frag & 0x3FFF:
                            stop = 14 + total if 20 <= total < caplen - 14 else caplen  # frame offsets
                            action = _READ_ON
                            l4 = 34
                    elif kind == 0x86 and caplen >= 74:
                        etype, b0, total, proto, src, dst, sport, dport, seq, doff, flags = v6(buf, ip)
                        if etype == 0x86DD and b0 >> 4 == 6:
                            stop = 54 + total if 0 < total < caplen - 54 else caplen
                            action = _READ_ON
                            l4 = 54
                if action:
                    action = _FEED
                    if proto == PROTO_TCP:
                        start = l4 + ((doff >> 4) << 2)
                        if doff < 0x50 or stop < start:
                            pass  # a header `decode` refuses
                        elif stop == start:
                            if not flags & _TCP_OPEN_OR_END:
                                action = _QUIET
                            elif not flags & TCP_SYN:
                                action = _END
                            elif not flags & _TCP_END:
                                action = _OPEN
                        elif not flags & _TCP_OPEN_OR_END:
                            at = fp + start
                            first = buf[at]
                            if first == 0x16 and buf[at + 1] == 3:  # a TLS record: only a ClientHello is read
                                if stop - start > 5 and buf[at + 5] != _CLIENT_HELLO:
                                    action = _QUIET_UNLESS_HELD
                            elif not (
                                first == 0x16 or sport == 53 or dport == 53
                                or (first in tcp_first and (
                                    buf.startswith(http_prefixes, at, end)
                                    or request_start(buf, at, min(fp + stop, at + _SPAN))))
                                or (stop - start > 15 and buf[at + 2] in ovpn)
                            ):
                                action = _QUIET_UNLESS_HELD
                        if action == _QUIET_UNLESS_HELD:
                            action = _FEED if pending_stream((src, sport, dst, dport)) is not None else _QUIET
                    elif proto == PROTO_UDP and stop >= l4 + 8 and not (sport in tunnels or dport in tunnels):
                        length = seq >> 16
                        if 8 <= length < stop - l4:
                            stop = l4 + length
                        at = fp + l4 + 8
                        size = fp + stop - at
                        action = _QUIET
                        if size >= 8:
                            first = buf[at]
                            if (sport in special or dport in special
                                    or (first in bypass_first and (first > 4 or not buf[at + 1]))
                                    or (first & 0x80 and (first & 0x40 or buf[at + 1 : at + 3] == b"Q0"))
                                    or (not first & 0x80 and first & 0x01 and size >= 13
                                        and buf[at + (9 if first & 0x08 else 1)] == 0x51)):  # gQUIC "Q0nn"
                                action = _FEED
                if action == _FEED:
                    feed(ts, linktype, bytes(view[fp:end]))
                    next_expiry = sensor._next_expiry
                    continue
                # -- a packet that can only open, extend or end its flow: what `feed` does with it, inline
                skipped += 1
                if ts >= next_expiry:
                    sensor._expire(ts)
                    next_expiry = sensor._next_expiry
                if sport > dport or (sport == dport and src > dst):
                    flow = (proto, src, sport, dst, dport)
                else:
                    flow = (proto, dst, dport, src, sport)
                life = flow_life(flow)
                if action == _END:  # a bare FIN or RST
                    if life is not None:
                        end_flow(flow, ts)
                    drop_stream((src, sport, dst, dport))
                    continue
                if life is not None:
                    if ts < life.due:
                        if ts > life.last:
                            life.last = ts
                    else:
                        touch(flow, life, ts)
                if action == _OPEN and not flags & TCP_ACK:  # a client's SYN: gather its stream
                    open_stream((src, sport, dst, dport), (seq + 1) & 0xFFFFFFFF, ts)
        stats.truncated = n > 0
    finally:
        sensor.packets += skipped
        stats.frames = sensor.packets - fed_before
