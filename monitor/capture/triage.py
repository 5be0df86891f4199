"""Which frames `Sensor.feed` must read, decided from a few bytes in place: one rule for files and rings.

Most packets cannot carry a name: TCP segments of a connection already read
(TLS application data, acknowledgements), QUIC short headers, media over UDP.
For those `feed` would only move the life of the flow they belong to. A
`Triage` reads an untagged Ethernet frame with IPv4 (no options, not a
fragment) or IPv6 (TCP or UDP straight after the fixed header) where it lies
(a pcap block, a TPACKET_V3 ring), with no copy and no decode; only a frame
whose deciding bytes say it can matter (a SYN, FIN or RST, a held stream, a
payload that starts like TLS, HTTP, DNS, a VPN or QUIC's long header, a
DNS/DHCP/IKE/tunnel port) is copied and handed to `feed`, which reads it
exactly as before. Every other link type, header chain, fragment and tunnel
goes to `feed` too. The output is the same as feeding every frame
(`tests/capture/test_triage.py`, `test_pcap_feed.py`, `test_ring.py`).

`Triage` is the compiled twin (`_triage.pyx`, built by `pip install` when a C
compiler is there) unless it was not built or SOCIAL_MONITOR_PURE_TRIAGE=1;
`PureTriage` is this module's, and `COMPILED` says which one `Triage` is.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from typing import Final

from monitor.capture import http, server_cert, tls
from monitor.capture.bypass import FIRST_BYTES as BYPASS_FIRST
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
from monitor.capture.sources import MAX_RECORD, MAX_TIMESTAMP
from monitor.capture.tunnels import UDP_TUNNEL_PORTS

# First payload bytes of a TCP segment `feed` looks further at: a TLS record (0x16), and the
# characters an HTTP method token (RFC 9110 tchar) can begin with.
TCHARS: Final = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TCP_FIRST: Final = frozenset(TCHARS) | {0x16}
assert all(m[0] in TCP_FIRST for m in http.METHOD_PREFIXES)
# `feed` reads a segment as HTTP when its first 4 bytes (padding included) are a method prefix,
# or a method token and a space start its payload: both tried here, on any buffer (bytes, mmap).
METHOD_PREFIX: Final = re.compile(b"|".join(re.escape(m) for m in sorted(http.METHOD_PREFIXES)))
REQUEST_START: Final = http.REQUEST_START
SPAN: Final = http.MAX_METHOD + 1
TCP_END: Final = TCP_FIN | TCP_RST
TCP_OPEN_OR_END: Final = TCP_SYN | TCP_FIN | TCP_RST
CLIENT_HELLO: Final = tls.HANDSHAKE_CLIENT_HELLO
SERVER_HELLO: Final = server_cert.HANDSHAKE_SERVER_HELLO
# What a frame needs: `feed` it whole; or, read in place, only its flow's life moved (quiet), a
# client's stream opened (a bare SYN), its flow ended (a bare FIN or RST).
FEED, READ_ON, QUIET, QUIET_UNLESS_HELD, OPEN, END = range(6)
# From the Ethernet type on (frame offset 12): IPv4 version/IHL, total length, fragment field,
# protocol, addresses, then TCP ports, sequence number, data offset and flags (for UDP the
# "sequence number" is its length and checksum).
_V4 = struct.Struct("!HBxHxxHxB2x4s4sHHI4xBB").unpack_from
_V6 = struct.Struct("!HB3xHBx16s16sHHI4xBB").unpack_from  # version, payload length, next header
# struct tpacket3_hdr of a TPACKET_V3 ring: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len,
# tp_status, tp_mac, tp_net, then hv1: tp_rxhash, tp_vlan_tci, tp_vlan_tpid
TPACKET3_HDR: Final = struct.Struct("<IIIIIIHHIIH")
TP_STATUS_VLAN_VALID: Final = 0x10
Retag = Callable[[bytes, int, int, int], bytes]  # (frame, tp_status, tci, tpid): the tag put back

Handle = Callable[[float, object, int, int], None]


def frame_handler(sensor: Sensor) -> Handle:
    """`handle(ts, buf, fp, end)`: the Ethernet frame buf[fp:end] (a bytearray, bytes or mmap) fed to
    `sensor` or, when it can only open, extend or end its flow, that done in place (and counted in
    `sensor.packets` as `feed` would)."""
    feed = sensor.feed
    flow_life = sensor.flows.get
    touch = sensor.flows.touch
    pending_stream = sensor.tcp.streams.get
    drop_stream = sensor.tcp.drop
    open_stream = sensor.tcp.open
    end_flow = sensor.flows.end
    nameless = sensor.nameless.waiting  # (client, cport, server, sport) of hellos with no name
    method_prefix, request_start = METHOD_PREFIX.match, REQUEST_START.match
    tcp_first, bypass_first, ovpn = TCP_FIRST, BYPASS_FIRST, OVPN_TCP
    special, tunnels = SPECIAL_PORTS, UDP_TUNNEL_PORTS
    v4, v6 = _V4, _V6

    def handle(ts: float, buf, fp: int, end: int) -> None:
        caplen = end - fp
        action = FEED
        if caplen >= 54:
            ip = fp + 12  # the Ethernet type, then IP
            kind = buf[ip]
            if kind == 0x08:
                etype, b0, total, frag, proto, src, dst, sport, dport, seq, doff, flags = v4(buf, ip)
                if etype == 0x0800 and b0 == 0x45 and not frag & 0x3FFF:
                    stop = 14 + total if 20 <= total < caplen - 14 else caplen  # frame offsets
                    action = READ_ON
                    l4 = 34
            elif kind == 0x86 and caplen >= 74:
                etype, b0, total, proto, src, dst, sport, dport, seq, doff, flags = v6(buf, ip)
                if etype == 0x86DD and b0 >> 4 == 6:
                    stop = 54 + total if 0 < total < caplen - 54 else caplen
                    action = READ_ON
                    l4 = 54
        if action:
            action = FEED
            if proto == PROTO_TCP:
                start = l4 + ((doff >> 4) << 2)
                if doff < 0x50 or stop < start:
                    pass  # a header `decode` refuses
                elif stop == start:
                    if not flags & TCP_OPEN_OR_END:
                        action = QUIET
                    elif not flags & TCP_SYN:
                        action = END
                    elif not flags & TCP_END:
                        action = OPEN
                elif not flags & TCP_OPEN_OR_END:
                    at = fp + start
                    first = buf[at]
                    # a TLS record: only a ClientHello is read (`feed` reads its head to the frame's end),
                    # and a ServerHello answering a hello with no name (its certificate: server_cert.py)
                    if first == 0x16 and at + 1 < end and buf[at + 1] == 3:
                        shake = buf[at + 5] if stop - start > 5 else CLIENT_HELLO  # the handshake type
                        if shake != CLIENT_HELLO and not (
                                shake == SERVER_HELLO and nameless and (dst, dport, src, sport) in nameless):
                            action = QUIET_UNLESS_HELD
                    elif not (
                        first == 0x16 or sport == 53 or dport == 53
                        or (first in tcp_first and (
                            method_prefix(buf, at, min(end, at + 4))
                            or request_start(buf, at, min(fp + stop, at + SPAN))))
                        or (stop - start > 15 and buf[at + 2] in ovpn)
                    ):
                        action = QUIET_UNLESS_HELD
                if action == QUIET_UNLESS_HELD:
                    action = FEED if pending_stream((src, sport, dst, dport)) is not None else QUIET
            elif proto == PROTO_UDP and stop >= l4 + 8 and not (sport in tunnels or dport in tunnels):
                length = seq >> 16
                if 8 <= length < stop - l4:
                    stop = l4 + length
                at = fp + l4 + 8
                size = fp + stop - at
                action = QUIET
                if size >= 8:
                    first = buf[at]
                    if (sport in special or dport in special
                            or (first in bypass_first and (first > 4 or not buf[at + 1]))
                            or (first & 0x80 and (first & 0x40 or buf[at + 1 : at + 3] == b"Q0"))
                            or (not first & 0x80 and first & 0x01 and size >= 13
                                and buf[at + (9 if first & 0x08 else 1)] == 0x51)):  # gQUIC "Q0nn"
                        action = FEED
        if action == FEED:
            feed(ts, LINKTYPE_ETHERNET, bytes(buf[fp:end]))
            return
        # -- a packet that can only open, extend or end its flow: what `feed` does with it, in place
        sensor.packets += 1
        if ts >= sensor._next_expiry:
            sensor._expire(ts)
        if sport > dport or (sport == dport and src > dst):
            flow = (proto, src, sport, dst, dport)
        else:
            flow = (proto, dst, dport, src, sport)
        life = flow_life(flow)
        if action == END:  # a bare FIN or RST
            if life is not None:
                end_flow(flow, ts)
            drop_stream((src, sport, dst, dport))
            return
        if life is not None:
            if ts < life.due:
                if ts > life.last:
                    life.last = ts
            else:
                touch(flow, life, ts)
        if action == OPEN and not flags & TCP_ACK:  # a client's SYN: gather its stream
            open_stream((src, sport, dst, dport), (seq + 1) & 0xFFFFFFFF, ts)

    return handle


class PureTriage:
    """The triage in Python, bound to one sensor: a frame (read with recvmsg), a ring's block, or a
block of pcap records."""

    def __init__(self, sensor: Sensor):
        self.sensor = sensor
        self._handle = frame_handler(sensor)

    def frame(self, ts: float, linktype: int, buf, fp: int, end: int) -> None:
        """The frame buf[fp:end] (bytes, bytearray or mmap) of link type `linktype`."""
        if linktype == LINKTYPE_ETHERNET:
            self._handle(ts, buf, fp, end)
        else:
            self.sensor.feed(ts, linktype, bytes(buf[fp:end]))

    def block(self, ring, at: int, count: int, linktype: int, retag: Retag) -> None:
        """The `count` frames of a TPACKET_V3 block whose first tpacket3_hdr is at ring[at:], each read
        where it lies; a frame whose VLAN tag the kernel took off gets it back from `retag`, copied."""
        unpack = TPACKET3_HDR.unpack_from
        handle = self._handle if linktype == LINKTYPE_ETHERNET else None
        feed = self.sensor.feed
        for _ in range(count):
            next_offset, sec, nsec, snaplen, _len, status, mac, _net, _hash, tci, tpid = unpack(ring, at)
            start = at + mac
            if status & TP_STATUS_VLAN_VALID or tci:
                feed(sec + nsec * 1e-9, linktype, retag(ring[start:start + snaplen], status, tci, tpid))
            elif handle is not None:
                handle(sec + nsec * 1e-9, ring, start, start + snaplen)
            else:
                feed(sec + nsec * 1e-9, linktype, bytes(ring[start:start + snaplen]))
            at += next_offset

    def records(self, buf: bytearray, pos: int, n: int, big_endian: bool, tick: float, linktype: int) -> int:
        """Every whole pcap record of buf[pos:n]; where the first record not read starts (a record cut
        by `n`), or -1 at a record longer than MAX_RECORD (the file is damaged from there)."""
        record = struct.Struct((">" if big_endian else "<") + "III4x").unpack_from
        handle = self._handle if linktype == LINKTYPE_ETHERNET else None
        feed = self.sensor.feed
        last_header = n - 16  # a record header starting after this is cut by the block's end
        while pos <= last_header:
            sec, frac, caplen = record(buf, pos)
            if caplen > MAX_RECORD:
                return -1
            fp = pos + 16  # the frame is buf[fp:end]
            end = fp + caplen
            if end > n:
                break
            pos = end
            if handle is not None:
                handle(sec + frac * tick, buf, fp, end)
            else:
                feed(sec + frac * tick, linktype, bytes(buf[fp:end]))
        return pos

    def packet_blocks(self, buf: bytearray, pos: int, n: int, big_endian: bool,
                      interfaces: list[tuple[int, float]]) -> tuple[int, int]:
        """The run of whole pcapng enhanced packet blocks from buf[pos:n] on, each frame read where it
        lies; (where the first block not read starts, the frames read). A block this does not read
        (another type, cut by `n`, damaged, an unknown interface, a time out of range) is left to
        `pcapng_feed`, which knows every rule."""
        head = struct.Struct((">" if big_endian else "<") + "IIIIII").unpack_from
        handle, feed = self._handle, self.sensor.feed
        frames = 0
        while pos + 32 <= n:
            block_type, total, iface, high, low, caplen = head(buf, pos)
            if block_type != 6 or not 32 <= total <= MAX_RECORD or pos + total > n:
                break
            if iface >= len(interfaces):
                break
            linktype, tick = interfaces[iface]
            ts = ((high << 32) | low) * tick
            if not 0.0 <= ts < MAX_TIMESTAMP:
                break
            fp, stop = pos + 28, pos + total - 4
            end = min(fp + caplen, stop)
            if linktype == LINKTYPE_ETHERNET:
                handle(ts, buf, fp, end)
            else:
                feed(ts, linktype, bytes(buf[fp:end]))
            frames += 1
            pos += total
        return pos, frames


Triage: type[PureTriage] = PureTriage
COMPILED = False
if os.environ.get("SOCIAL_MONITOR_PURE_TRIAGE") != "1":
    try:
        from monitor.capture._triage import Triage  # type: ignore[no-redef]  # noqa: F401

        COMPILED = True
    except ImportError:  # not built (no C compiler when installed): this module's, same output
        pass
