"""Access sessions: many observations of one device reaching one platform become one row.

A session is keyed by the trust device (asset tag, else MAC), platform,
school, zone, timetable period and local date. It opens at the first
observation and is extended by later ones that fall within the idle gap of
its first or last sighting (either side, because the sensor and the proxy
report the same access a few milliseconds apart and in no fixed order). A
different zone or period, or a longer gap, starts a new session.

Merging happens twice, for speed and for correctness:

1. In memory, per writer batch (`SessionMerger`): thousands of observations
   fold into a few session segments before the store is touched, so the hot
   path costs a dict lookup per observation.
2. In the store, inside the write transaction: each segment is merged into
   the open session row with the same key, if one exists. That row may have
   been written by another process (the sensor and the proxy addon are
   separate processes), which is how their observations of the same access
   end in one session.

Only what the policy needs is kept (data minimisation): the platform, at
most `MAX_HOSTNAMES` hostnames, never a URL, a path or content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from monitor.observation import AccessEvent, Exemption, Flag
from monitor.store import ecs

MAX_HOSTNAMES = 8  # a session names at most this many hostnames (minimisation, bounded rows)
KEY_SEP = "\x1f"

@dataclass(slots=True)
class Session:
    """One access session as stored; `id`, `version` and `record_id` are set by the store."""

    device: str  # the trust device: asset tag, else MAC
    platform: str
    school: str
    zone: str
    period: str | None
    local_date: str  # YYYY-MM-DD in the school's time zone
    first_seen: float  # epoch seconds, UTC
    last_seen: float
    observations: int = 1
    signals: tuple[str, ...] = ()  # sorted subset of dns, http, proxy, quic, tls (and a VPN's protocol)
    hostnames: tuple[str, ...] = ()  # sorted, at most MAX_HOSTNAMES
    flags: tuple[Flag, ...] = ()
    exemption: Exemption | None = None
    period_kind: str = "closed"
    week: str | None = None
    pupil_area: bool | None = None
    owner: str | None = None  # pseudonymous staff id
    asset_tag: str | None = None
    device_mac: str | None = None
    device_kind: str | None = None
    platform_name: str | None = None
    category: str | None = None
    zone_kind: str | None = None
    roles: tuple[str, ...] = ()  # sorted roles of the domains seen: platform, embed, widget, tracker, cdn
    probably_teaching: bool = False  # flagged, but likely a teacher showing it in a lesson (4.1)
    # sorted kinds of hiding seen (encrypted-dns, ech, tor, vpn); with platform '' the destination is hidden
    obscured_by: tuple[str, ...] = ()
    id: int | None = None
    version: int = 0
    record_id: int | None = None
    # Events folded into this segment, continuations too (the writer's accounting; never stored).
    # `observations` counts only sightings: a continuation (the same flow, later) extends
    # `last_seen` and adds none, so a session carried over from a flow that began in an
    # earlier one (a new period or day) can show 0 (docs/capture.md, "A flow's life").
    events: int = 1

    @property
    def key(self) -> str:
        return session_key(self.device, self.platform, self.school, self.zone, self.period, self.local_date,
                           self.owner)

    @property
    def flagged(self) -> bool:
        return bool(self.flags) and self.exemption is None

    @property
    def embed_only(self) -> bool:
        """Only widgets, pixels, embeds or shared CDNs of the platform: never its use (never flagged)."""
        return bool(self.roles) and "platform" not in self.roles

    @property
    def weekday(self) -> str:
        return date.fromisoformat(self.local_date).strftime("%A").lower()

    def body(self) -> dict[str, Any]:
        """Everything the hash chain covers: the session's content, id and version."""
        return {
            "id": self.id,
            "version": self.version,
            "device": self.device,
            "device_mac": self.device_mac,
            "asset_tag": self.asset_tag,
            "device_kind": self.device_kind,
            "owner": self.owner,
            "platform": self.platform,
            "platform_name": self.platform_name,
            "category": self.category,
            "school": self.school,
            "zone": self.zone,
            "zone_kind": self.zone_kind,
            "pupil_area": self.pupil_area,
            "period": self.period,
            "period_kind": self.period_kind,
            "week": self.week,
            "local_date": self.local_date,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "observations": self.observations,
            "signals": list(self.signals),
            "hostnames": list(self.hostnames),
            "flags": [f.to_dict() for f in self.flags],
            "exemption": self.exemption.to_dict() if self.exemption else None,
            # added in store schema 2: left out while unset, so records written before still verify
            **({"roles": list(self.roles)} if self.roles else {}),
            **({"probably_teaching": True} if self.probably_teaching else {}),
            # added in store schema 3, likewise
            **({"obscured_by": list(self.obscured_by)} if self.obscured_by else {}),
        }

    def to_ecs(self) -> dict[str, Any]:
        """Flat dotted ECS and `social.*` keys, in `ECS_FIELDS` order (see `monitor.store.ecs`)."""
        return ecs.ecs_dict(self)

    def to_json(self) -> str:
        """`to_ecs()` as one compact JSON line, by the writer generated from the field table."""
        return ecs.json_line(self)

    def to_csv_row(self) -> dict[str, str]:
        """The ECS record with lists flattened for a spreadsheet: `a;b`, flags as `name (clause)`."""
        return {name: "" if value is None else str(value)
                for name, value in zip(ecs.ECS_FIELDS, ecs.csv_cells(self), strict=True)}


def session_key(
    device: str, platform: str, school: str, zone: str, period: str | None, local_date: str,
    owner: str | None = None,
) -> str:
    """One string per (device, platform, school, zone, period, date, owner): indexed, portable.

    The owner is part of it because on a shared PC two signed-in proxy users are two people:
    one's accesses must never extend the other's session."""
    return KEY_SEP.join((device, platform, school, zone, period or "", local_date, owner or ""))


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8: the one encoding the hash chain is computed over."""
    return _CANONICAL.encode(value)


def local_date_of(event: AccessEvent) -> str:
    if event.local_time and len(event.local_time) >= 10:
        return event.local_time[:10]
    return datetime.fromtimestamp(event.observation.timestamp, UTC).date().isoformat()


def session_from_event(event: AccessEvent) -> Session:
    """A one-observation session. The event must be recordable."""
    obs = event.observation
    device = event.asset_tag or event.device_mac or obs.client_mac or ""
    hostnames = (obs.hostname,) if obs.hostname else ()
    return Session(
        device=device,
        platform=event.platform or "",
        school=event.school or "",
        zone=event.zone or "",
        period=event.period,
        local_date=local_date_of(event),
        first_seen=obs.timestamp,
        last_seen=obs.timestamp,
        observations=0 if obs.continuation else 1,
        signals=(obs.signal,),
        hostnames=hostnames,
        flags=tuple(sorted(event.flags, key=_flag_order)),
        exemption=event.exemption,
        period_kind=event.period_kind,
        week=event.week,
        pupil_area=event.pupil_area,
        owner=event.owner,
        asset_tag=event.asset_tag,
        device_mac=event.device_mac or obs.client_mac,
        device_kind=event.device_kind,
        platform_name=event.platform_name,
        category=event.category,
        zone_kind=event.zone_kind,
        roles=(event.role,) if event.role else (),
        probably_teaching=event.probably_teaching,
        obscured_by=(obs.obscured_by,) if obs.obscured_by else (),
    )


def _flag_order(flag: Flag) -> tuple[str, str]:
    return (flag.name, flag.clause)


def _union(a: tuple[str, ...], b: tuple[str, ...], limit: int | None = None) -> tuple[str, ...]:
    if len(b) == 1 and b[0] in a:
        return a
    merged = sorted((*a, b[0])) if len(b) == 1 else sorted(set(a) | set(b))  # one new value: the hot path
    return tuple(merged[:limit] if limit is not None else merged)


def within_gap(session: Session, first: float, last: float, gap: float) -> bool:
    """Whether [first, last] touches the session widened by the idle gap on both sides."""
    return first <= session.last_seen + gap and last >= session.first_seen - gap


def merge_into(target: Session, other: Session) -> Session:
    """Fold `other` (same key) into `target` in place; the store's id and version stay target's."""
    target.first_seen = min(target.first_seen, other.first_seen)
    target.last_seen = max(target.last_seen, other.last_seen)
    target.observations += other.observations
    target.events += other.events
    if other.signals != target.signals:
        target.signals = _union(target.signals, other.signals)
    if other.hostnames != target.hostnames:
        target.hostnames = _union(target.hostnames, other.hostnames, MAX_HOSTNAMES)
    if other.flags != target.flags:
        target.flags = tuple(sorted(set(target.flags) | set(other.flags), key=_flag_order))
    if target.exemption is None and other.exemption is not None:
        target.exemption = other.exemption
    if other.roles != target.roles and other.roles:
        target.roles = _union(target.roles, other.roles)
    target.probably_teaching = target.probably_teaching or other.probably_teaching
    if other.obscured_by != target.obscured_by and other.obscured_by:
        target.obscured_by = _union(target.obscured_by, other.obscured_by)
    for name in ("owner", "asset_tag", "device_mac", "device_kind", "platform_name", "category",
                 "zone_kind", "week", "pupil_area"):
        if getattr(target, name) is None and getattr(other, name) is not None:
            setattr(target, name, getattr(other, name))
    return target


class SessionMerger:
    """Folds a batch of events into session segments, in memory; bounded by the batch size.

    `add` is the hot path: one key lookup, and a few comparisons when the event
    extends the session it belongs to. Events that are not recordable (not a
    trust device, no platform, a sensitive category) are refused here, so they
    can never reach the store.
    """

    def __init__(self, idle_gap: float):
        self.idle_gap = float(idle_gap)
        # keyed by (device, platform, school, zone, period, local date, owner); recordable: platform is
        # set, or the destination is hidden (platform '')
        self._open: dict[tuple[str | None, ...], list[Session]] = {}
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def add(self, event: AccessEvent) -> bool:
        if not event.recordable:
            return False
        obs = event.observation
        ts = obs.timestamp
        lt = event.local_time
        key = (
            event.asset_tag or event.device_mac or obs.client_mac or "",
            event.platform,
            event.school or "",
            event.zone or "",
            event.period or "",
            lt[:10] if lt and len(lt) >= 10 else local_date_of(event),
            event.owner or "",
        )
        self.count += 1
        segments = self._open.get(key)
        if segments is None:
            self._open[key] = [session_from_event(event)]
            return True
        gap = self.idle_gap
        for session in reversed(segments):
            if session.first_seen - gap <= ts <= session.last_seen + gap:
                break
        else:
            segments.append(session_from_event(event))
            return True
        session.events += 1
        if not obs.continuation:
            session.observations += 1
        if ts > session.last_seen:
            session.last_seen = ts
        elif ts < session.first_seen:
            session.first_seen = ts
        signal = "proxy" if obs.source == "proxy" else obs.protocol
        if signal not in session.signals:
            session.signals = _union(session.signals, (signal,))
        host = obs.hostname
        if host and len(session.hostnames) < MAX_HOSTNAMES and host not in session.hostnames:
            session.hostnames = _union(session.hostnames, (host,))
        if event.flags and event.flags != session.flags:
            session.flags = tuple(sorted(set(session.flags) | set(event.flags), key=_flag_order))
        if session.exemption is None and event.exemption is not None:
            session.exemption = event.exemption
        role = event.role
        if role and role not in session.roles:
            session.roles = _union(session.roles, (role,))
        if event.probably_teaching:
            session.probably_teaching = True
        hidden = obs.obscured_by
        if hidden and hidden not in session.obscured_by:
            session.obscured_by = _union(session.obscured_by, (hidden,))
        if session.owner is None and event.owner is not None:
            session.owner = event.owner
        return True

    def add_session(self, session: Session) -> None:
        """Put back a segment whose write failed, so a retry merges it with newer events."""
        session.id, session.version, session.record_id = None, 0, None
        key = (session.device, session.platform, session.school, session.zone, session.period or "",
               session.local_date, session.owner or "")
        segments = self._open.setdefault(key, [])
        for existing in segments:
            if within_gap(existing, session.first_seen, session.last_seen, self.idle_gap):
                merge_into(existing, session)
                break
        else:
            segments.append(session)
        self.count += session.events

    def drain(self) -> list[Session]:
        """The merged segments, ordered by first sighting; empties the merger."""
        out: list[Session] = []
        for segments in self._open.values():
            if len(segments) > 1:
                segments.sort(key=lambda s: s.first_seen)
                merged = [segments[0]]
                for seg in segments[1:]:
                    if within_gap(merged[-1], seg.first_seen, seg.last_seen, self.idle_gap):
                        merge_into(merged[-1], seg)
                    else:
                        merged.append(seg)
                segments = merged
            out.extend(segments)
        self._open = {}
        self.count = 0
        out.sort(key=lambda s: s.first_seen)
        return out


__all__ = [
    "MAX_HOSTNAMES",
    "Session",
    "SessionMerger",
    "canonical_json",
    "merge_into",
    "session_from_event",
    "session_key",
    "within_gap",
]
