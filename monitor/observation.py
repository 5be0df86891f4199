"""The two values that flow through the pipeline: what a source saw, and what it means.

An `Observation` is built by a source (the packet sensor or the proxy addon)
and holds only what was on the wire: a hostname, never a URL or content. The
tagging stage turns it into an `AccessEvent`, which adds where, when, which
platform and which device, and the policy flags. Both are plain, slotted data
classes so that they are cheap to build on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from json import JSONEncoder
from json.encoder import encode_basestring_ascii as _json_str  # what json's default encoder uses
from math import modf
from typing import Any, Literal

# The last four carry no name: a VPN's own protocol, recognised from its packets (capture/bypass.py).
Protocol = Literal["dns", "tls", "quic", "http", "wireguard", "openvpn", "ipsec", "softether"]
Transport = Literal["tcp", "udp", "esp"]
Source = Literal["sensor", "proxy"]
# How the hostname was tied to this flow: read from the flow itself, or
# inferred from an earlier DNS answer for the server address (a weaker signal).
Attribution = Literal["direct", "dns-answer"]
PeriodKind = Literal["contact", "non-contact", "closed"]
# What a flow that hides its destination uses to hide it (docs/capture.md).
ObscuredBy = Literal["encrypted-dns", "vpn", "tor", "ech"]


def normalise_hostname(name: str) -> str:
    """Lower-case, strip the trailing dot and surrounding space; IDN labels to A-labels."""
    name = name.strip().rstrip(".").lower()
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


@dataclass(slots=True)
class Observation:
    """One sighting of a client reaching a named server."""

    timestamp: float  # seconds since the epoch, UTC
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    transport: Transport
    protocol: Protocol
    hostname: str
    source: Source = "sensor"
    client_mac: str | None = None
    user: str | None = None  # proxy-authenticated user, where the school enables it
    attribution: Attribution = "direct"
    obscured: bool = False  # the visible name (if any) is not the destination: set with obscured_by
    obscured_by: ObscuredBy | None = None  # how: ECH, a resolver, a VPN or Tor (no platform is guessed)
    vlan: int | None = None
    encapsulation: str | None = None  # tunnels the packet came through, outermost first: "gre,vxlan"
    # The same flow (or connection) again, later: it extends the session's last seen and is not
    # counted as another observation (see docs/capture.md, "A flow's life").
    continuation: bool = False

    @property
    def signal(self) -> str:
        """The signal name stored on a session: the protocol, or `proxy` for the addon."""
        return "proxy" if self.source == "proxy" else self.protocol

    def to_ecs(self) -> dict[str, Any]:
        """ECS field names, flat dotted keys, for JSON lines and CSV alike."""
        out: dict[str, Any] = {
            "@timestamp": iso_utc(self.timestamp),
            "source.ip": self.client_ip,
            "source.port": self.client_port,
            "destination.ip": self.server_ip,
            "destination.port": self.server_port,
            "network.transport": self.transport,
            "network.protocol": self.protocol,
        }
        if self.protocol == "dns":
            out["dns.question.name"] = self.hostname
        elif not self.hostname:
            pass  # a VPN's packets, or a hello without a name: nothing to show
        elif self.protocol in ("tls", "quic"):
            out["tls.client.server_name"] = self.hostname
        else:
            out["url.domain"] = self.hostname
        if self.client_mac:
            out["source.mac"] = self.client_mac
        if self.user:
            out["user.name"] = self.user
        if self.vlan is not None:
            out["network.vlan.id"] = self.vlan
        if self.encapsulation:
            out["network.encapsulation"] = self.encapsulation
        out["event.module"] = self.source
        if self.attribution != "direct":
            out["social.attribution"] = self.attribution
        if self.obscured or self.obscured_by:
            out["social.obscured"] = True
        if self.obscured_by:
            out["social.obscured_by"] = self.obscured_by
        if self.continuation:
            out["social.continuation"] = True
        return out

    def ecs_json_head(self) -> str:
        """`to_ecs()` as compact ASCII JSON, less its closing brace (the caller adds fields and "}"):
        the bytes `json` would give for the dict, without building it (classify's row, thousands a
        second). Keep in step with `to_ecs`: tests/test_observation.py compares the two field by field."""
        if type(self.client_port) is not int or type(self.server_port) is not int or not (
                self.vlan is None or type(self.vlan) is int):
            return _COMPACT_JSON(self.to_ecs())[:-1]  # not the plain ints the text below writes
        try:
            return self._ecs_json_head()
        except TypeError:  # a field that is not text where text belongs: as json would write it
            return _COMPACT_JSON(self.to_ecs())[:-1]

    def _ecs_json_head(self) -> str:
        e = _json_str
        protocol = self.protocol
        out = (f'{{"@timestamp":"{iso_utc(self.timestamp)}","source.ip":{e(self.client_ip)},'
               f'"source.port":{self.client_port!r},"destination.ip":{e(self.server_ip)},'
               f'"destination.port":{self.server_port!r},'
               f'"network.transport":{e(self.transport)},"network.protocol":{e(protocol)}')
        if protocol == "dns":
            out += f',"dns.question.name":{e(self.hostname)}'
        elif not self.hostname:
            pass
        elif protocol in ("tls", "quic"):
            out += f',"tls.client.server_name":{e(self.hostname)}'
        else:
            out += f',"url.domain":{e(self.hostname)}'
        if self.client_mac:
            out += f',"source.mac":{e(self.client_mac)}'
        if self.user:
            out += f',"user.name":{e(self.user)}'
        if self.vlan is not None:
            out += f',"network.vlan.id":{self.vlan!r}'
        if self.encapsulation:
            out += f',"network.encapsulation":{e(self.encapsulation)}'
        out += f',"event.module":{e(self.source)}'
        if self.attribution != "direct":
            out += f',"social.attribution":{e(self.attribution)}'
        if self.obscured or self.obscured_by:
            out += ',"social.obscured":true'
        if self.obscured_by:
            out += f',"social.obscured_by":{e(self.obscured_by)}'
        if self.continuation:
            out += ',"social.continuation":true'
        return out


@dataclass(slots=True, frozen=True)
class Flag:
    """A policy rule an access breaks, with the clause of the policy it cites."""

    name: str  # contact_time | pupil_area
    clause: str  # e.g. "4.3"
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "clause": self.clause, "reason": self.reason}


@dataclass(slots=True, frozen=True)
class Exemption:
    """Why an access that would be flagged is not (e.g. clause 4.1, professional use)."""

    name: str
    reason: str
    clause: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "reason": self.reason, "clause": self.clause}


@dataclass(slots=True)
class AccessEvent:
    """An observation tagged with device, platform, place, time and policy."""

    observation: Observation
    platform: str | None = None
    platform_name: str | None = None
    category: str | None = None
    role: str | None = None  # platform itself, or embed / widget / tracker / cdn (loaded by other sites)
    sensitive: bool = False  # category the trust never records (e.g. trade union, health)
    special_category: bool = False  # its use reveals UK GDPR art. 9 data (dating, political, ...)
    trust_device: bool = False
    device_mac: str | None = None
    asset_tag: str | None = None
    device_kind: str | None = None
    owner: str | None = None  # pseudonymous staff id; proxy user where known
    groups: tuple[str, ...] = ()
    school: str | None = None
    zone: str | None = None
    zone_kind: str | None = None
    pupil_area: bool | None = None  # the zone is a pupil area
    pupils_present: bool | None = None  # pupils are on site at this time (the school's pupil hours)
    pupil_hours: str | None = None  # the day's pupil hours, for `explain`
    teaching_zone: bool = False
    monitored: bool = True  # False for zones the trust counts but never stores (guest Wi-Fi)
    period: str | None = None
    period_kind: PeriodKind = "closed"
    week: str | None = None
    local_time: str | None = None  # ISO 8601 in the school's time zone
    flags: tuple[Flag, ...] = ()
    exemption: Exemption | None = None
    probably_teaching: bool = False  # flagged, but a teaching platform in a teaching zone during a lesson

    @property
    def flagged(self) -> bool:
        return bool(self.flags) and self.exemption is None

    @property
    def recordable(self) -> bool:
        """Only trust devices reaching an in-scope, non-sensitive platform, or a hidden destination
        (`obscured_by`, stored with no platform), are ever stored."""
        return (
            self.trust_device and (self.platform is not None or self.observation.obscured_by is not None)
            and not self.sensitive and self.monitored
        )

    def to_ecs(self) -> dict[str, Any]:
        out = self.observation.to_ecs()
        if self.asset_tag:
            out["host.id"] = self.asset_tag
        if self.device_kind:
            out["host.type"] = self.device_kind
        if self.device_mac and "source.mac" not in out:
            out["source.mac"] = self.device_mac
        if self.owner and self.owner != out.get("user.name"):  # a proxy login mapped to a staff id
            out["user.id"] = self.owner
        out.update(
            {
                "social.platform": self.platform,
                "social.platform_name": self.platform_name,
                "social.category": self.category,
                "social.role": self.role,
                "social.trust_device": self.trust_device,
                "social.school": self.school,
                "social.zone": self.zone,
                "social.zone_kind": self.zone_kind,
                "social.pupil_area": self.pupil_area,
                "social.pupils_present": self.pupils_present,
                "social.period": self.period,
                "social.period_kind": self.period_kind,
                "social.week": self.week,
                "social.local_time": self.local_time,
                "social.flags": [f.to_dict() for f in self.flags],
                "social.flagged": self.flagged,
                "social.exemption": self.exemption.to_dict() if self.exemption else None,
                "social.probably_teaching": self.probably_teaching,
            }
        )
        return out


_COMPACT_JSON = JSONEncoder(separators=(",", ":")).encode
_SECONDS: dict[int, str] = {}  # whole second -> "YYYY-MM-DDTHH:MM:SS": rows come a few per second
_SECONDS_CAP = 4096


def iso_utc(ts: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds, as ECS expects for @timestamp.

    The same text as `datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")` with "Z":
    the microseconds rounded half-even as datetime rounds them (carrying into the second), then
    truncated to milliseconds; the date and time of each whole second formatted once (bounded cache)."""
    frac, whole = modf(ts)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    elif micros < 0:
        micros += 1_000_000
        whole -= 1.0
    second = int(whole)
    text = _SECONDS.get(second)
    if text is None:
        text = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")[:-6]  # less "+00:00"
        if len(_SECONDS) >= _SECONDS_CAP:
            _SECONDS.clear()
        _SECONDS[second] = text
    return f"{text}.{micros // 1000:03d}Z"


__all__ = [
    "AccessEvent",
    "Attribution",
    "Exemption",
    "Flag",
    "ObscuredBy",
    "Observation",
    "PeriodKind",
    "Protocol",
    "Source",
    "Transport",
    "iso_utc",
    "normalise_hostname",
]
