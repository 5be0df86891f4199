"""The trust's additions to the catalog of traffic that hides its destination (`bypass:` in the file).

The catalog itself is data (monitor/data/bypass.yaml, read by monitor.capture.bypass); a trust adds
the names of its own region's resolvers or of a VPN service it has seen. A name covers its
subdomains. A value that is not a bare domain name is an error naming its field
(`bypass.vpn[2]: ...`), reported by `check-config` with its file and line.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from monitor.config.values import Strict

_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}")


def _domain_name(value: str) -> str:
    """A bare domain name (no scheme, port, path or wildcard), lower-cased."""
    name = value.strip().rstrip(".").lower()
    if not _DOMAIN.fullmatch(name):
        raise ValueError(f"{value!r} is not a domain name (write e.g. doh.example.net, no scheme or path)")
    return name


DomainName = Annotated[str, AfterValidator(_domain_name)]


class BypassSettings(Strict):
    """Names to add to the catalog of traffic that hides its destination (monitor/data/bypass.yaml)."""

    encrypted_dns: list[DomainName] = Field(
        default_factory=list, description="DNS-over-HTTPS/TLS resolvers (a name covers its subdomains).")
    vpn: list[DomainName] = Field(
        default_factory=list, description="VPN and proxy services' server names (covers subdomains).")


