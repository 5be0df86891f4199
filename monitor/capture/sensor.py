"""The packet sensor: frames in, observations out.

`Sensor.feed(timestamp, linktype, frame)` is the whole hot path. It decodes
headers from bytes (`packets.decode`), looks only at the payloads that can
carry a name (DNS, a TLS ClientHello, an HTTP request head, a QUIC or gQUIC
client Initial, DHCP), builds an `Observation` only when a name is found, and
hands it to a callback. A malformed packet is counted (`error_counts`, and
the `CaptureCounters` it was given: `parse_errors{protocol}` in the daemon)
and never raises; a failing callback raises `SinkError`. The daemon runs it
on live interfaces with `live.LiveCapture` (in a thread), or feeds it frames
from any source in `sources.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from monitor.capture import bypass, dhcp, dns, http, quic, server_cert, tls
from monitor.capture.counters import CaptureCounters, PlainCounters
from monitor.capture.emit import observation_key, observation_of
from monitor.capture.error_labels import parser_meant
from monitor.capture.flows import TABLE_BYTES, DnsAnswers, FlowLives, PendingStream, TcpReassembly
from monitor.capture.fragments import IpFragments
from monitor.capture.packets import (
    MAX_TUNNELS,
    PROTO_ESP,
    PROTO_FRAGMENT,
    PROTO_TCP,
    PROTO_TOO_DEEP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    decode,
    packed_ip_text,
    resume,
)
from monitor.capture.packets import mac_text as _mac
from monitor.observation import Observation

DNS_PORTS: Final = dns.PORTS  # DNS, mDNS, LLMNR
DHCP_PORTS: Final = dhcp.PORTS
_HTTP_PREFIXES: Final = http.METHOD_PREFIXES
_HTTP_REQUEST_START = http.request_start  # any other method token and a space: tried as HTTP too
_BYPASS_FIRST: Final = bypass.FIRST_BYTES  # a VPN's first byte: only these go to bypass.udp_protocol
SPECIAL_PORTS: Final = DNS_PORTS | DHCP_PORTS | bypass.IKE_PORTS
OVPN_TCP: Final = frozenset({7 << 3, 8 << 3, 10 << 3})  # OpenVPN resets after TCP's 2-byte length
_EXPIRE_EVERY: Final = 10.0  # seconds of packet time between sweeps of idle state

ObservationSink = Callable[[Observation], object]  # what it returns (the tagged event, if any) is unused
BindingSink = Callable[[dhcp.DHCPBinding], None]


class SinkError(RuntimeError):
    """A callback raised: propagated, so a broken consumer is loud rather than a parse error."""


class Sensor:
    """Turns captured frames into observations, with bounded state and counted failures."""

    def __init__(
        self,
        on_observation: ObservationSink,
        on_binding: BindingSink | None = None,
        counters: CaptureCounters | None = None,
        *,
        flow_cap: int = 65536,
        reassembly_cap: int = 16384,
        reassembly_bytes: int = TABLE_BYTES,
        dns_cap: int = 65536,
        quic_cap: int = 4096,
        fragment_cap: int = 1024,
        fragment_bytes: int = 4 << 20,
        idle_gap: float = 300.0,
        strict: bool = False,
        bypass_catalog: bypass.BypassCatalog | None = None,
    ):
        self.on_observation = on_observation
        self.bypass = bypass_catalog if bypass_catalog is not None else bypass.default_catalog()
        self.nameless = server_cert.NamelessHellos()  # hellos with no name: their server's certificate
        # strict: let an unexpected exception out instead of counting it (fuzz tests use this
        # to tell a parser bug from a counted malformed packet).
        self.strict = strict
        self.on_binding = on_binding
        self.counters = counters if counters is not None else PlainCounters()
        c = self.counters
        self._errors = {p: c.parse_error_counter(p) for p in ("dns", "tls", "quic", "http", "dhcp", "packet",
                                                                  "fragment", "tunnel")}
        self.error_counts: dict[str, int] = dict.fromkeys(self._errors, 0)
        # continued within the store's idle gap (`store.idle_gap_seconds`), so a flow is one session
        self.flows = FlowLives(self._deliver, flow_cap, idle_gap, on_evict=c.eviction_counter("flows"))
        self._flow_life = self.flows.get
        self.dns_answers = DnsAnswers(dns_cap, on_evict=c.eviction_counter("dns_answers"))
        self.tcp = TcpReassembly(reassembly_cap, on_evict=c.eviction_counter("tcp_reassembly"),
                                 max_total_bytes=reassembly_bytes,
                                 on_overflow=c.eviction_counter("tcp_stream_bytes"),
                                 on_bytes_evict=c.eviction_counter("tcp_reassembly_bytes"))
        self.quic = quic.QuicInitials(quic_cap, on_evict=c.eviction_counter("quic_initials"))
        # Bound once: looking a method up on an OrderedDict costs more than the lookup itself.
        self._pending_stream = self.tcp.streams.get
        # fragment: an overlapping, oversized or over-split datagram; tunnel: nested past the cap
        self.fragments = IpFragments(fragment_cap, fragment_bytes,
                                     on_evict=c.eviction_counter("ip_fragments"),
                                     on_reject=lambda: self._error("fragment"))
        self._dhcp_names: dict[bytes, str] = {}
        self._next_expiry = 0.0
        self.packets = 0

    # -- the hot path -------------------------------------------------------------------------

    def feed(self, ts: float, linktype: int, frame: bytes) -> None:
        """Process one captured frame. Never raises on packet content (unless `strict`, for tests)."""
        self.packets += 1
        try:
            d = decode(linktype, frame)
            if d is None:
                return
            proto, src, dst, sport, dport, start, end, seq, flags, _vlan, _l2, _encap = d
            if ts >= self._next_expiry:
                self._expire(ts)
            if proto > 0:  # TCP or UDP (not a fragment): a packet of a reported flow extends it
                flow = (proto, src, sport, dst, dport) if sport > dport or (sport == dport and src > dst) \
                    else (proto, dst, dport, src, sport)  # `flow_key`, inline on the hot path
                life = self._flow_life(flow)
                if life is not None:
                    if flags & (TCP_FIN | TCP_RST):
                        self.flows.end(flow, ts)  # the report closing it, at the FIN or RST
                    elif ts < life.due:  # most packets: nothing to report, only its last moves
                        if ts > life.last:
                            life.last = ts
                    else:
                        self.flows.touch(flow, life, ts)
            while True:  # once more only for a reassembled datagram
                if proto == PROTO_TCP:
                    key = (src, sport, dst, dport)
                    pending = self._pending_stream(key)
                    if flags & TCP_SYN:
                        seq = (seq + 1) & 0xFFFFFFFF  # data in a SYN (TCP Fast Open, RFC 7413): ISN + 1
                        if not flags & TCP_ACK:
                            pending = self.tcp.open(key, seq, ts)
                        if start == end:
                            return
                        d = (*d[:7], seq, *d[8:])
                    elif start == end:
                        if pending is not None and flags & (TCP_FIN | TCP_RST):
                            self.tcp.drop(key)
                        return
                    if pending is None:
                        head = frame[start : start + 4]
                        if head[:2] == b"\x16\x03" or head in _HTTP_PREFIXES:
                            self._tcp_payload(ts, frame, d, key, None)
                        elif sport == 53 or dport == 53:
                            self._dns_over_tcp(ts, frame, d)
                        elif _HTTP_REQUEST_START(frame, start, end):
                            self._tcp_payload(ts, frame, d, key, None)
                        elif end - start > 15 and frame[start + 2] in OVPN_TCP:
                            self._tunnel(ts, frame, d, "tcp", bypass.tcp_protocol(frame, start, end))
                        return
                    self._tcp_payload(ts, frame, d, key, pending)
                    return
                if proto != PROTO_UDP:
                    if proto == PROTO_FRAGMENT:
                        whole = self._reassemble(ts, frame, d)
                        if whole is not None:  # the datagram is complete: read it as if it came whole
                            frame, d = whole
                            proto, src, dst, sport, dport, start, end, seq, flags, _vlan, _l2, _encap = d
                            continue
                    elif proto == PROTO_TOO_DEEP:
                        self._error("tunnel")
                    elif proto == PROTO_ESP and bypass.esp_packet(frame, start, end):
                        self._tunnel(ts, frame, d, "esp", "ipsec")
                    return
                break
            if end - start < 8:
                return
            special = sport in SPECIAL_PORTS or dport in SPECIAL_PORTS  # DNS, DHCP, IKE: two lookups
            if special and (sport in DNS_PORTS or dport in DNS_PORTS):
                self._dns(ts, frame, frame[start:end], d, "udp")
            elif special and sport in DHCP_PORTS and dport in DHCP_PORTS:
                self._dhcp(ts, frame[start:end])
            else:
                first = frame[start]
                if special or first in _BYPASS_FIRST:
                    protocol = bypass.udp_protocol(frame, start, end, sport, dport)
                    if protocol is not None:
                        self._tunnel(ts, frame, d, "udp", protocol)
                        return
                if first & 0x80:
                    if first & 0x40 or frame[start + 1 : start + 3] == b"Q0":
                        self._quic_long(ts, frame, frame[start:end], d)
                elif first & 0x01 and end - start >= 13:
                    self._gquic_legacy(ts, frame, frame[start:end], d)
        except SinkError:
            raise  # the consumer failed, not the packet: never hide that as a parse error
        except Exception:  # a hostile frame is counted, it never stops capture
            if self.strict:
                raise
            self._error(parser_meant(linktype, frame))

    # -- protocols ----------------------------------------------------------------------------

    def _reassemble(self, ts: float, frame: bytes, d: tuple) -> tuple[bytes, tuple] | None:
        """Hand a fragment to the table; the whole datagram, decoded on from its data, once complete."""
        _p, src, dst, ident, offset, start, end, protocol, more, vlan, l2, encap = d
        key = (src, dst, ident, protocol if len(src) == 4 else -1, encap)  # IPv6: protocol of fragment 0
        whole = self.fragments.add(key, offset, frame[start:end], bool(more), frame[:start], protocol, ts)
        if whole is None:
            return None
        for _ in range(MAX_TUNNELS + 1):  # a fragment inside a reassembled datagram, inside ...
            buf, data_start, protocol = whole
            inner = resume(buf, protocol, data_start, src, dst, vlan, l2, encap)
            if inner is None or inner[0] != PROTO_FRAGMENT:
                return (buf, inner) if inner is not None else None
            _p, src, dst, ident, offset, start, end, protocol, more, vlan, l2, encap = inner
            key = (src, dst, ident, protocol if len(src) == 4 else -1, encap)
            whole = self.fragments.add(key, offset, buf[start:end], bool(more), buf[:start], protocol, ts)
            if whole is None:
                return None
        return None

    def _tcp_payload(self, ts: float, frame: bytes, d: tuple, key: tuple,
                     pending: PendingStream | None) -> None:
        if pending is None:  # the first segment seen of a connection: read it as it is
            data = frame[d[5] : d[6]]
            if data[0] == tls.CONTENT_HANDSHAKE:
                if len(data) > 5 and data[5] != tls.HANDSHAKE_CLIENT_HELLO:  # a ServerHello...: not an error
                    kind = self.nameless.server_kind(d, data, self.bypass) if self.nameless else None
                    if kind is not None:
                        self._emit(ts, frame, d, False, "tcp", "tls", "", obscured_by=kind)
                    return
                self._tls(ts, frame, d, key, None, data, tls.HelloReader())
            else:
                self._http(ts, frame, d, key, None, data, None)
            return
        pending.last_seen = ts
        if not self.tcp.add(key, pending, d[7], frame, d[5], d[6]):
            return  # more than a stream may hold: dropped, and counted
        stream = pending.data
        if len(stream) < pending.need:
            return  # a hole before these bytes, or the record or line under way is still short
        reader = pending.reader
        if reader is None:  # the first bytes of a connection whose SYN we saw
            if stream[:2] == b"\x16\x03":
                reader = pending.reader = tls.HelloReader()
            else:
                starts = http.HeadScanner.starts(stream)
                if starts is None:
                    pending.need = len(stream) + 1  # a method token whose space is still to come
                    return
                if not starts:
                    self.tcp.drop(key)  # neither TLS nor HTTP: nothing to read here, unless a VPN's
                    self._tunnel(ts, frame, d, "tcp", bypass.tcp_protocol(stream, 0, len(stream)))
                    return
                reader = pending.reader = http.HeadScanner()
        if isinstance(reader, tls.HelloReader):
            self._tls(ts, frame, d, key, pending, stream, reader)
        else:
            self._http(ts, frame, d, key, pending, stream, reader)

    def _tls(self, ts: float, frame: bytes, d: tuple, key: tuple, pending: PendingStream | None,
             stream: bytes | bytearray, reader: tls.HelloReader) -> None:
        tcp = self.tcp
        try:
            message = reader.read(stream)  # only the bytes that came since the last call
            info = tls.parse_client_hello(message) if message is not None else None
        except tls.TLSParseError:
            if pending is not None:
                tcp.drop(key)
            if len(stream) > 5 and stream[5] == tls.HANDSHAKE_CLIENT_HELLO:
                self._error("tls")  # a ServerHello or other handshake is not an error
            return
        if info is None:
            if reader.need > tcp.max_bytes:
                tcp.drop(key)
                self._error("tls")  # a ClientHello larger than a stream may hold
            elif pending is None:
                self._hold(ts, key, d[7], stream, reader).need = reader.need
            else:
                pending.need = reader.need
            return
        if pending is not None:
            tcp.drop(key)
        self._hello(ts, frame, d, "tcp", "tls", info)

    def _http(self, ts: float, frame: bytes, d: tuple, key: tuple, pending: PendingStream | None,
              stream: bytes | bytearray, scanner: http.HeadScanner | None) -> None:
        if pending is not None and scanner is not None and not scanner.ready(stream):
            pending.need = len(stream) + 1  # no line that can decide has ended yet
            return
        try:
            host, complete = http.request_host(stream if pending is None else bytes(stream[: http.MAX_HEAD]))
        except http.HTTPParseError:
            self.tcp.drop(key)
            return  # a binary payload that happens to start like a method: not HTTP
        if not complete and len(stream) < http.MAX_HEAD:
            if pending is None:
                scanner = http.HeadScanner()
                scanner.ready(stream)
                pending = self._hold(ts, key, d[7], stream, scanner)
            pending.need = len(stream) + 1
            return
        self.tcp.drop(key)
        if host:
            self._emit(ts, frame, d, True, "tcp", "http", host, obscured_by=self.bypass.kind_of(host))

    def _hold(self, ts: float, key: tuple, seq: int, data: bytes | bytearray,
              reader: tls.HelloReader | http.HeadScanner) -> PendingStream:
        """Keep the first segment seen of a connection (no SYN) and its reader, for the rest."""
        stream = self.tcp.open(key, seq, ts)
        stream.reader = reader
        self.tcp.add(key, stream, seq, bytes(data))
        return stream

    def _dns_over_tcp(self, ts: float, frame: bytes, d: tuple) -> None:
        data = frame[d[5] : d[6]]
        if len(data) < 14:
            return
        length = (data[0] << 8) | data[1]
        if length + 2 <= len(data):
            self._dns(ts, frame, data[2 : 2 + length], d, "tcp")

    def _dns(self, ts: float, frame: bytes, payload: bytes, d: tuple, transport: str) -> None:
        try:
            msg = dns.parse_message(payload)
        except dns.DNSParseError:
            self._error("dns")
            return
        if msg.answers_malformed:
            self._error("dns")  # counted, but the question is still a good observation
        if not msg.questions:
            return
        from_client = not msg.is_response
        for name in msg.questions:
            self._emit(ts, frame, d, from_client, transport, "dns", name)
        if msg.addresses:
            qname = msg.questions[0]
            for address, ttl in msg.addresses:
                self.dns_answers.remember(address, qname, ttl, ts)

    def _dhcp(self, ts: float, payload: bytes) -> None:
        try:
            msg = dhcp.parse_message(payload)
        except dhcp.DHCPParseError:
            self._error("dhcp")
            return
        if msg.op == 1 and msg.hostname:
            if len(self._dhcp_names) > 4096:
                self._dhcp_names.clear()
            self._dhcp_names[msg.client_mac] = msg.hostname
        elif (msg.op == 2 and msg.message_type == dhcp.DHCPACK and msg.your_ip != b"\0\0\0\0"
              and self.on_binding is not None):
            name = msg.hostname or self._dhcp_names.get(msg.client_mac)
            binding = dhcp.DHCPBinding(packed_ip_text(msg.your_ip), _mac(msg.client_mac), name, ts)
            try:
                self.on_binding(binding)
            except Exception as exc:
                raise SinkError(f"binding callback failed: {exc!r}") from exc

    def _quic_long(self, ts: float, frame: bytes, payload: bytes, d: tuple) -> None:
        version = payload[1:5]
        try:
            if quic.is_cleartext_gquic_version(version):
                name = quic.chlo_server_name(payload)
                if name:
                    self._emit(ts, frame, d, True, "udp", "quic", name)
                return
            result = self.quic.datagram((d[1], d[3], d[2], d[4]), payload, ts)
        except quic.QUICParseError:
            self._error("quic")
            return
        if result is None:
            return
        if result.hello is not None:
            self._hello(ts, frame, d, "udp", "quic", result.hello)
        elif quic.initial_salt(result.version) is None and len(payload) >= quic.MIN_CLIENT_INITIAL:
            # A version we cannot decrypt: what DNS said this server is, marked as the weaker signal.
            name = self.dns_answers.name_for(d[2], ts)
            if name:
                self._emit(ts, frame, d, True, "udp", "quic", name, attribution="dns-answer")

    def _gquic_legacy(self, ts: float, frame: bytes, payload: bytes, d: tuple) -> None:
        if quic.legacy_gquic_version(payload) is None:
            return
        try:
            name = quic.chlo_server_name(payload)
        except quic.QUICParseError:
            self._error("quic")
            return
        if name:
            self._emit(ts, frame, d, True, "udp", "quic", name)

    def _hello(self, ts: float, frame: bytes, d: tuple, transport: str, protocol: str,
               info: tls.ClientHelloInfo) -> None:
        kind = bypass.hello_kind(info, transport, d[4], self.bypass)
        if kind == "tor" and self.dns_answers.name_for(d[2], ts) == info.server_name:
            kind = None  # a name the client looked up: a real site, not Tor's random one
        if info.server_name or kind:
            self._emit(ts, frame, d, True, transport, protocol, info.server_name or "", obscured_by=kind,
                       obscured=info.encrypted)
        if info.encrypted or not info.server_name:
            if not info.server_name and transport == "tcp":
                self.nameless.note(d)
            # No readable real name: fall back to what DNS said this server address is.
            name = self.dns_answers.name_for(d[2], ts)
            if name and name != info.server_name:
                self._emit(ts, frame, d, True, transport, protocol, name, attribution="dns-answer")

    # -- output -------------------------------------------------------------------------------

    def _tunnel(self, ts: float, frame: bytes, d: tuple, transport: str, protocol: str | None) -> None:
        """A VPN's packets: one name-less observation per flow, whichever end sent this one."""
        if protocol is not None:
            from_client = bypass.sender_is_client(d[1], d[3], d[2], d[4])
            self._emit(ts, frame, d, from_client, transport, protocol, "", obscured_by="vpn")

    def _emit(self, ts: float, frame: bytes, d: tuple, from_client: bool, transport: str,
              protocol: str, name: str, *, obscured_by: str | None = None, obscured: bool = False,
              attribution: str = "direct") -> None:
        key = observation_key(d, protocol, name)
        if self.flows.known(key, protocol, name, ts):
            return
        obs = observation_of(ts, frame, d, from_client, transport, protocol, name, obscured_by=obscured_by,
                             obscured=obscured, attribution=attribution)
        self.flows.add(key, obs)
        self._deliver(obs)

    def _deliver(self, obs: Observation) -> None:
        try:
            self.on_observation(obs)
        except Exception as exc:
            raise SinkError(f"observation callback failed: {exc!r}") from exc

    def close(self) -> None:
        """The input ended (a file read, capture stopped): each live flow's last report."""
        self.flows.close()

    def _error(self, protocol: str) -> None:
        self.error_counts[protocol] += 1
        self._errors[protocol]()

    def _expire(self, now: float) -> None:
        self._next_expiry = now + _EXPIRE_EVERY
        self.flows.expire(now)
        self.tcp.expire(now)
        self.quic.expire(now - 30.0)
        self.fragments.expire(now)
