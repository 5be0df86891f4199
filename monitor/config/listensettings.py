"""Where the proxy and the metrics endpoint listen, and who may use them: the `listen:` section.

Only the form of each value is checked here (host:port, networks, a TLS certificate with its key);
whether the settings as a whole would open the proxy or the metrics to the world is decided with the
zones in view by `monitor.config.listen`.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.config.values import Strict, split_hostport


class ListenSettings(Strict):
    """Where the proxy and the metrics endpoint listen, and who may use them (monitor.config.listen
    rejects the settings that would open either to the world)."""

    metrics: str = Field("127.0.0.1:9464", description="host:port of the Prometheus endpoint.")
    proxy: str | list[str] = Field(
        "127.0.0.1:8080", description="host:port where the proxy listens, or a list of them "
        "(dual-stack: [\"0.0.0.0:8080\", \"[::]:8080\"]).")
    proxy_mode: Literal["regular", "transparent"] = "regular"
    proxy_clients: list[str] | None = Field(
        None, description="Networks allowed to use the proxy. Default: every zone's cidrs, and loopback.")
    metrics_tls_cert: str | None = None
    metrics_tls_key: str | None = None
    metrics_tls_client_ca: str | None = Field(
        None, description="CA file: scrapes must present a client certificate it signed (mutual TLS).")
    metrics_basic_auth_file: str | None = Field(
        None, description="File of 'user:bcrypt-hash' lines for scrapes across the network.")
    insecure: bool = Field(False, description="Allow a proxy or metrics endpoint open to the world.")
    insecure_reason: str | None = Field(None, description="Why `insecure: true` (required with it).")

    @field_validator("metrics")
    @classmethod
    def _hostport(cls, value: str) -> str:
        split_hostport(value)
        return value

    @field_validator("proxy")
    @classmethod
    def _proxy_addresses(cls, value: str | list[str]) -> str | list[str]:
        addresses = [value] if isinstance(value, str) else value
        if not addresses:
            raise ValueError("names no address: give host:port, or a list of them")
        for index, address in enumerate(addresses):
            try:
                split_hostport(address)
            except ValueError as exc:
                raise ValueError(exc if isinstance(value, str) else f"[{index}] {exc}") from None
            if address in addresses[:index]:
                raise ValueError(f"[{index}] {address!r} is listed twice")
        return value

    @field_validator("proxy_clients")
    @classmethod
    def _client_networks(cls, values: list[str] | None) -> list[str] | None:
        for index, value in enumerate(values or []):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"[{index}] {value!r} is not a network") from None
        return values

    @property
    def proxy_addresses(self) -> tuple[str, ...]:
        return (self.proxy,) if isinstance(self.proxy, str) else tuple(self.proxy)

    @model_validator(mode="after")
    def _tls_pair(self) -> ListenSettings:
        if bool(self.metrics_tls_cert) != bool(self.metrics_tls_key):
            # a certificate without its key would silently serve plain HTTP, credentials in clear
            raise ValueError("metrics_tls_cert and metrics_tls_key go together: set both or neither")
        return self
