"""What the proxy addon knows, turned into Observations: pure functions and one bounded table.

The mitmproxy addon (`monitor.proxy.addon`) only wires hooks; everything
it decides lives here so that it can be tested without a proxy: which name a
connection or request reached, which addresses it used, who signed in, and
whether this (connection, hostname) pair was already observed. A page of 200
requests on one keep-alive connection is one access, not 200; a connection
that stays open keeps its sessions alive with continuations (docs/proxy.md).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from monitor.capture.bypass import DOT_PORT, BypassCatalog
from monitor.observation import AccessEvent, ObscuredBy, Observation, Protocol, normalise_hostname
from monitor.tagging.catalog import Catalog

Address = tuple[Any, ...] | None  # mitmproxy's (host, port[, flowinfo, scope]) or None
MAX_CONTINUED = 8  # observations a connection is continued under (one or two in practice)
CONTINUE_EVERY = 60.0  # seconds between an open connection's continuations, at most


@functools.lru_cache(maxsize=65536)
def canonical_ip_or_none(host: str) -> str | None:
    """Canonical text of an IP literal ('[::1]' -> '::1', '::ffff:10.0.0.1' -> '10.0.0.1'), else None.

    Cached (bounded): the same client and server addresses recur on every
    connection, and parsing them is the costliest step of an observation."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)  # dual-stack sockets report ::ffff:a.b.c.d
    return str(mapped or ip)


def is_ip_literal(host: str) -> bool:
    """True for '10.0.0.1', '::1', '[::1]': an address is not a hostname the catalog can name."""
    return canonical_ip_or_none(host) is not None


@functools.lru_cache(maxsize=16384)
def hostname_or_none(name: str | None) -> str | None:
    """The normalised hostname, or None when there is no name (absent, empty or an IP literal).

    Cached (bounded): a page's requests name the same few hosts again and again."""
    if not name:
        return None
    host = normalise_hostname(name)
    if not host or is_ip_literal(host):
        return None
    return host


@functools.lru_cache(maxsize=16384)
def request_hostname(host_header: str | None, url_host: str) -> str | None:
    """The hostname an HTTP request named, as mitmproxy's `Request.pretty_host` finds it, or None.

    The Host header (or HTTP/2's :authority) without its port, else the URL's
    host. Cached (bounded): `pretty_host` parses the header afresh on every
    request, the costliest step of the addon's per-request work (16 us of 18)."""
    if host_header:
        from mitmproxy.net.http.url import parse_authority

        return hostname_or_none(parse_authority(host_header, check=False)[0])
    return hostname_or_none(url_host)


def endpoint(*candidates: Address) -> tuple[str, int]:
    """(ip, port) from the first candidate whose host is an IP literal; ('', port) when none is.

    The proxy knows the server's IP once it has connected (`peername`) or, in
    transparent mode, from the original destination (`address`). In regular
    mode before connecting it only has the name: the IP is then unknown ('')."""
    port = 0
    for addr in candidates:
        if not addr:
            continue
        port = int(addr[1])
        ip = canonical_ip_or_none(str(addr[0]))
        if ip is not None:
            return ip, port
    return "", port


def proxy_user(metadata: dict[str, Any] | None) -> str | None:
    """The signed-in user from mitmproxy's proxyauth (`metadata["proxyauth"] = (user, password)`).

    Only the user name is kept; the password never leaves this function."""
    if not metadata:
        return None
    value = metadata.get("proxyauth")
    if isinstance(value, tuple | list) and value:
        value = value[0]
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_decrypt_option(values: Iterable[str], catalog: Catalog) -> frozenset[str]:
    """Platform ids whose TLS the proxy may decrypt; ValueError naming any id the catalog lacks."""
    ids = {v.strip().lower() for v in values if v.strip()}
    unknown = sorted(ids - set(catalog.platforms))
    if unknown:
        raise ValueError(
            f"unknown platform id(s) {', '.join(unknown)}: use ids from `social-monitor platforms`"
        )
    return frozenset(ids)


def build_observation(
    *,
    timestamp: float,
    hostname: str,
    protocol: Protocol,
    client: Address,
    server: Iterable[Address],
    user: str | None = None,
    bypass: BypassCatalog | None = None,
) -> Observation:
    """One Observation from what a proxy hook saw; the hostname must already be normalised.

    With the config's `bypass` catalog, a CONNECT or hello naming a resolver or VPN service, or TLS
    to DNS-over-TLS's port, is marked `obscured_by` as the sensor marks it."""
    client_ip, client_port = endpoint(client)
    server_ip, server_port = endpoint(*server)
    if not server_port:
        server_port = 443 if protocol == "tls" else 80
    hidden = hidden_by_name(hostname, protocol, server_port, bypass) if bypass is not None else None
    return Observation(
        timestamp=timestamp,
        client_ip=client_ip,
        client_port=client_port,
        server_ip=server_ip,
        server_port=server_port,
        transport="tcp",
        protocol=protocol,
        hostname=hostname,
        source="proxy",
        user=user,
        obscured_by=hidden,
        obscured=hidden is not None,
    )


def hidden_by_name(hostname: str, protocol: str, port: int, bypass: BypassCatalog) -> ObscuredBy | None:
    """What the proxy can tell from a name and port: a listed resolver or VPN service, or DoT."""
    kind = bypass.kind_of(hostname)
    if kind is None and protocol == "tls" and port == DOT_PORT:
        kind = "encrypted-dns"
    return cast(ObscuredBy | None, kind)


@dataclass(slots=True)
class ConnectionState:
    """What the addon remembers about one client connection until it closes."""

    user: str | None = None
    connect_host: str | None = None  # CONNECT target, until the TLS hello inside it is seen
    connect_server: Any = None  # mitmproxy's Server for that CONNECT, whose peername fills in later
    # a TLS hello seen before the upstream connection (hostname, timestamp, user, Server)
    pending: tuple[str, float, str | None, Any] | None = None
    handling: str | None = None  # passthrough | decrypted | plain, counted once
    hostnames: set[str] = field(default_factory=set)
    # what was observed on it (at most MAX_CONTINUED), continued while it stays open
    observed: list[Observation] = field(default_factory=list)
    reported: float = 0.0  # the time the latest observation of it carried

    def remember(self, obs: Observation) -> None:
        """An observation just submitted for this connection: continued while it stays open."""
        if len(self.observed) < MAX_CONTINUED:
            self.observed.append(obs)
        self.reported = max(self.reported, obs.timestamp)

    def continuations(self, now: float, min_step: float = 1.0) -> list[Observation]:
        """The connection is still open at `now` (or closed then): its observations again, as
        continuations that extend their sessions, unless one went out under `min_step` ago."""
        if not self.observed or now - self.reported < min_step:
            return []
        self.reported = now
        return [dataclasses.replace(o, timestamp=now, continuation=True) for o in self.observed]

    def first_sighting(self, hostname: str, max_hostnames: int = 256) -> bool:
        """True the first time this connection reaches this hostname, False afterwards."""
        if hostname in self.hostnames:
            return False
        if len(self.hostnames) >= max_hostnames:
            self.hostnames.clear()  # a connection naming hundreds of hosts: start over, never grow
        self.hostnames.add(hostname)
        return True


class ConnectionTable:
    """Per-connection state with a hard cap: the oldest connection is forgotten first.

    Closed connections are removed at `client_disconnected`; the cap only bites
    if that hook is ever missed or under a flood of long-lived connections, and
    each eviction is counted by the caller."""

    def __init__(self, max_connections: int = 65536):
        self.max_connections = max_connections
        self._table: OrderedDict[str, ConnectionState] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._table)

    def get(self, conn_id: str) -> ConnectionState:
        state = self._table.get(conn_id)
        if state is None:
            state = self._table[conn_id] = ConnectionState()
            if len(self._table) > self.max_connections:
                self._table.popitem(last=False)
                self.evictions += 1
        return state

    def peek(self, conn_id: str) -> ConnectionState | None:
        """The state of a connection already seen, without creating one."""
        return self._table.get(conn_id)

    def drop(self, conn_id: str) -> ConnectionState | None:
        return self._table.pop(conn_id, None)

    def states(self) -> list[ConnectionState]:
        """The open connections, as a list (the table may change while a caller walks it)."""
        return list(self._table.values())


_EVENT_SLOTS = tuple(f.name for f in dataclasses.fields(AccessEvent))


def _with_observation(event: AccessEvent, obs: Observation) -> AccessEvent:
    """A shallow copy of `event` for another observation (dataclasses.replace is 5x slower)."""
    copy = object.__new__(AccessEvent)
    for name in _EVENT_SLOTS:
        object.__setattr__(copy, name, getattr(event, name))
    copy.observation = obs
    return copy


class SameSecondTagger:
    """Memoises `Tagger.tag` within one wall-clock second, for bursts of connections to one host.

    A browser opening a page opens several connections to the same host at
    once; each is its own observation, but their tags are identical: every
    time-dependent field (local time to the second, period, flags) is the same
    within one second, so reusing the event is exact, not an approximation.
    Bounded: the memo holds one second's keys, at most `max_entries`."""

    def __init__(self, tagger: Any, max_entries: int = 4096):
        self.tagger = tagger
        self.config = tagger.config  # the pipeline reads the trust settings from here
        self.max_entries = max_entries
        self._second = -1
        self._memo: dict[tuple, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tagger, name)  # catalog, clocks, ... of the wrapped tagger

    def tag(self, obs: Observation) -> Any:
        second = int(obs.timestamp)
        if second != self._second or len(self._memo) >= self.max_entries:
            self._memo.clear()
            self._second = second
        key = (obs.client_ip, obs.client_mac, obs.user, obs.vlan, obs.hostname)
        cached = self._memo.get(key)
        if cached is not None:
            return _with_observation(cached, obs)
        event = self._memo[key] = self.tagger.tag(obs)
        return event
