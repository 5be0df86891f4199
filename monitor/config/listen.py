"""Who may reach the proxy and the metrics endpoint: the checks that keep both closed to the world.

A gateway's proxy listening on 0.0.0.0 serves anyone who can reach it, and the
metrics carry school and zone names. So, unless the config says `insecure: true`
with a reason, `check-config` (and every load) refuses:

* basic auth over plain HTTP (the password would cross the network in the clear);
* a metrics endpoint off loopback with no authentication (neither basic auth nor
  client certificates);
* a proxy off loopback whose allowed clients include every address (a /0).

The proxy's allowed clients are the zones' own networks unless `proxy_clients`
names others; loopback is always allowed (the gateway itself, health checks).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from monitor.config.listensettings import ListenSettings
from monitor.config.models import TrustFile
from monitor.config.values import split_hostport

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_NETWORKS: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                          ipaddress.ip_network("::1/128"))
OVERRIDE = "(or listen.insecure: true with listen.insecure_reason)"


def is_loopback(address: str) -> bool:
    """Whether host:port listens on loopback only ('localhost' included); a name or '' is not."""
    host, _ = split_hostport(address, allow_zero=True)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_client_networks(model: TrustFile) -> tuple[Network, ...]:
    """The networks whose clients the proxy serves: `listen.proxy_clients`, else every zone's
    cidrs; loopback always. (Zones' cidrs were validated; a /0 in a zone is an error of its own.)"""
    given = model.listen.proxy_clients
    written: Iterable[str] = given if given is not None else (
        cidr for school in model.schools for zone in school.zones for cidr in zone.cidrs)
    networks = [ipaddress.ip_network(cidr, strict=False) for cidr in written]
    return (*LOOPBACK_NETWORKS, *networks)


def metrics_errors(listen: ListenSettings) -> list[str]:
    """The metrics endpoint: a password never in the clear, never open to the world."""
    errors: list[str] = []
    tls = bool(listen.metrics_tls_cert and listen.metrics_tls_key)
    if listen.metrics_tls_client_ca and not tls:
        errors.append("listen.metrics_tls_client_ca: client certificates need TLS: set metrics_tls_cert "
                      "and metrics_tls_key")
    if listen.insecure:
        return errors
    if listen.metrics_basic_auth_file and not tls:
        errors.append("listen.metrics_basic_auth_file: basic auth over plain HTTP sends the password in "
                      f"the clear: set metrics_tls_cert and metrics_tls_key {OVERRIDE}")
    elif not (is_loopback(listen.metrics) or listen.metrics_basic_auth_file or listen.metrics_tls_client_ca):
        errors.append(f"listen.metrics: {listen.metrics} is reachable from the network with no "
                      "authentication: set metrics_basic_auth_file or metrics_tls_client_ca (with "
                      f"metrics_tls_cert and metrics_tls_key) {OVERRIDE}")
    return errors


def proxy_errors(listen: ListenSettings) -> list[str]:
    """The proxy: off loopback, never a client list that holds every address."""
    if listen.insecure or all(is_loopback(address) for address in listen.proxy_addresses):
        return []
    return [f"listen.proxy_clients[{index}]: {cidr} lets every address use the proxy, which listens "
            f"on {', '.join(listen.proxy_addresses)}: name the trust's networks {OVERRIDE}"
            for index, cidr in enumerate(listen.proxy_clients or [])
            if ipaddress.ip_network(cidr, strict=False).prefixlen == 0]


def metrics_settings(listen: ListenSettings) -> tuple[object, ...]:
    """The listen fields the daemon's metrics endpoint is started from (a reload does not restart
    it; a change of the proxy's fields restarts the proxy child at once)."""
    return (listen.metrics, listen.metrics_tls_cert, listen.metrics_tls_key, listen.metrics_tls_client_ca,
            listen.metrics_basic_auth_file)


def listen_errors(model: TrustFile) -> list[str]:
    """Every listen error, as 'listen.field: message' lines (the loader adds file and line)."""
    listen = model.listen
    errors: list[str] = []
    if listen.insecure and not (listen.insecure_reason or "").strip():
        errors.append("listen.insecure_reason: `insecure: true` needs a reason saying why the endpoint "
                      "may be open (it is shown at every start)")
    return errors + metrics_errors(listen) + proxy_errors(listen)
