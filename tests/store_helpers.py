"""Build AccessEvents directly (no tagger needed) for the store's tests and benchmark."""

from __future__ import annotations

from monitor.observation import AccessEvent, Exemption, Flag, Observation

CONTACT = Flag("contact_time", "4.3", "personal social media during contact time")
PUPILS = Flag("pupil_area", "4.3", "personal social media where pupils are present")
T0 = 1_790_000_000.0  # 2026-09-21 (a Monday in term), 14:13 UTC


def event(
    ts: float = T0,
    *,
    device: str = "OAK-0001",
    mac: str = "3c:52:82:10:00:01",
    platform: str | None = "facebook",
    school: str = "oak-primary",
    zone: str = "classrooms",
    period: str | None = "Lesson 1",
    period_kind: str = "contact",
    protocol: str = "tls",
    source: str = "sensor",
    hostname: str | None = None,
    flags: tuple[Flag, ...] = (CONTACT,),
    exemption: Exemption | None = None,
    owner: str | None = "staff-0001",
    trust_device: bool = True,
    sensitive: bool = False,
    monitored: bool = True,
    local_date: str = "2026-09-21",
    continuation: bool = False,
) -> AccessEvent:
    obs = Observation(
        timestamp=ts, client_ip="10.10.10.31", client_port=50000, server_ip="157.240.1.35",
        server_port=443, transport="udp" if protocol == "quic" else "tcp", protocol=protocol,
        hostname=hostname or f"www.{platform or 'example'}.com", source=source, client_mac=mac,
        continuation=continuation,
    )
    return AccessEvent(
        observation=obs, platform=platform, platform_name=(platform or "").title() or None, category="social",
        sensitive=sensitive, trust_device=trust_device,
        device_mac=mac if trust_device else None, asset_tag=device if trust_device else None,
        device_kind="laptop", owner=owner if trust_device else None, school=school, zone=zone,
        zone_kind="classroom", pupil_area=zone == "classrooms", period=period, period_kind=period_kind,
        week="A", local_time=f"{local_date}T09:13:00+01:00", flags=flags, exemption=exemption,
        monitored=monitored,
    )
