"""The gateway's own addresses: its own upstream lookups are not anybody's access.

A gateway resolves names and opens connections for itself (the proxy's
upstream DNS lookups and TLS connections, package updates, NTP). The sensor
sees them like any client's, and before this they were counted as accesses
from `school="unknown"`. The pipeline leaves out every observation whose
client is one of the gateway's own addresses: it is counted in
`social_monitor_observations_total{outcome="gateway_own"}`, never as an
access, and never stored.

The addresses are read from the kernel (`/proc/net/fib_trie` for IPv4 local
addresses, `/proc/net/if_inet6` for IPv6) in the process's own network
namespace: at start, on every config reload, and once a minute (a DHCP-assigned
uplink address may change). Loopback (127.0.0.0/8, ::1) is always the
gateway's own, unless a zone explicitly covers it: `config/example.yaml` has a
`demo-loopback` zone so that a newcomer can try the monitor from the gateway
itself. A zone that names one of the gateway's addresses as a host network
(`/32`, `/128`) keeps that address in too; a zone whose wider network merely
contains the gateway's LAN address does not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FIB_TRIE = Path("/proc/net/fib_trie")
IF_INET6 = Path("/proc/net/if_inet6")
LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
LOOPBACK_V6 = ipaddress.IPv6Network("::1/128")


def ipv4_local_addresses(fib_trie: str) -> set[str]:
    """The `/32 host LOCAL` entries of /proc/net/fib_trie: this host's IPv4 addresses."""
    found: set[str] = set()
    last: str | None = None
    for line in fib_trie.splitlines():
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif last is not None and text.startswith("/32 host LOCAL"):
            found.add(last)
    return found


def ipv6_local_addresses(if_inet6: str) -> set[str]:
    """The addresses of /proc/net/if_inet6 (32 hex digits first on each line), in canonical form."""
    found: set[str] = set()
    for line in if_inet6.splitlines():
        fields = line.split()
        if not fields or len(fields[0]) != 32:
            continue
        try:
            found.add(str(ipaddress.IPv6Address(int(fields[0], 16))))
        except ValueError:
            continue
    return found


def read_local_addresses(fib_trie: Path = FIB_TRIE, if_inet6: Path = IF_INET6) -> set[str]:
    """This network namespace's own addresses; a file that cannot be read adds none."""
    found: set[str] = set()
    for path, parse in ((fib_trie, ipv4_local_addresses), (if_inet6, ipv6_local_addresses)):
        try:
            found |= parse(path.read_text())
        except OSError:
            continue
    return found


def _within_loopback(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if isinstance(network, ipaddress.IPv4Network):
        return network.subnet_of(LOOPBACK_V4)
    return network.subnet_of(LOOPBACK_V6)


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


@dataclass(frozen=True, slots=True)
class GatewayAddresses:
    """Which client addresses are the gateway itself. `owns(ip)` is the hot path: a set lookup."""

    addresses: frozenset[str]  # the gateway's addresses left out (loopback ones excepted, see below)
    loopback_is_own: bool = True  # False when a zone explicitly covers loopback (the demo zone)
    local: frozenset[str] = frozenset()  # every address of the host, whatever the zones say

    def owns(self, client_ip: str) -> bool:
        """Whether a client is the gateway itself (its traffic is left out)."""
        if client_ip in self.addresses:
            return True
        return self.loopback_is_own and _loopback(client_ip)

    def serves(self, server_ip: str) -> bool:
        """Whether a server is this gateway (its proxy listener, its resolver), zones aside."""
        return server_ip in self.local or server_ip in self.addresses or _loopback(server_ip)

    @classmethod
    def build(cls, local: Iterable[str], zone_cidrs: Iterable[str]) -> GatewayAddresses:
        """The own addresses to leave out, given the host's addresses and the config's zone networks."""
        networks = [ipaddress.ip_network(c, strict=False) for c in zone_cidrs]
        loopback_zone = any(_within_loopback(n) for n in networks)
        named = {str(n.network_address) for n in networks if n.num_addresses == 1}
        own = {a for a in local if a not in named and not (loopback_zone and _loopback(a))}
        return cls(frozenset(own), loopback_is_own=not loopback_zone, local=frozenset(local))

    @classmethod
    def of_config(cls, schools: Iterable[object], local: Iterable[str] | None = None) -> GatewayAddresses:
        """From the config's schools (their zones' networks) and, by default, the kernel's addresses."""
        cidrs = [c for school in schools for zone in school.zones for c in zone.cidrs]  # type: ignore[attr-defined]
        return cls.build(read_local_addresses() if local is None else local, cidrs)


NO_ADDRESSES = GatewayAddresses(frozenset(), loopback_is_own=False)

__all__ = [
    "NO_ADDRESSES",
    "GatewayAddresses",
    "ipv4_local_addresses",
    "ipv6_local_addresses",
    "read_local_addresses",
]
