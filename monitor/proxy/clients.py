"""Which clients the proxy serves: the trust's own networks, never the world.

mitmproxy's `block_global` refuses clients with public addresses, which would
also refuse a school's own global IPv6 addresses; so the launcher turns it off
and the addon refuses, in `client_connected`, every client outside the networks
`monitor.config.listen.proxy_client_networks` names (the zones' cidrs unless
`listen.proxy_clients` says otherwise; loopback always). A refused client's
connection is closed before a byte is read from it, and counted.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from monitor.config.listen import Network

LOG_EVERY = 60.0  # seconds between log lines about refused clients (a scanner must not flood the log)


def client_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A peer address as mitmproxy gives it ('10.0.0.5', 'fe80::1%eth0', '::ffff:10.0.0.5'),
    IPv4-mapped IPv6 read as the IPv4 address it carries; None when it is not an address."""
    try:
        address = ipaddress.ip_address(peer.rsplit("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass
class ClientGate:
    """Allowed networks, and a rate limit on the log lines about the clients refused."""

    networks: tuple[Network, ...]
    refused: int = 0
    _unlogged: int = 0
    _last_logged: float = field(default=float("-inf"))

    def allows(self, peer: str) -> bool:
        address = client_address(peer)
        return address is not None and any(address in network for network in self.networks
                                           if network.version == address.version)

    def refuse(self, now: float) -> int | None:
        """Count a refusal; the number to log (this one and those unlogged since) once a minute, else None."""
        self.refused += 1
        self._unlogged += 1
        if now - self._last_logged < LOG_EVERY:
            return None
        self._last_logged, count, self._unlogged = now, self._unlogged, 0
        return count
