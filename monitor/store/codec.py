"""A session as a row of the ``sessions`` table, and back.

Scalars go to their own columns; signals are a comma-separated list of fixed
tokens; hostnames, flags and the exemption are canonical JSON (a hostname seen
on the wire may hold any character, a comma or a quote included). Flags,
exemptions and hostname sets repeat across millions of rows, so each distinct
value is encoded and parsed once, from bounded caches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from monitor.observation import Exemption, Flag
from monitor.store.schema import SESSION_COLUMNS
from monitor.store.sessions import Session, canonical_json

_CACHE_LIMIT = 4096
_flags_json: dict[tuple[Flag, ...], str] = {}
_flags_parsed: dict[str, tuple[Flag, ...]] = {}
_exemption_json: dict[Exemption, str] = {}
_hostnames_parsed: dict[str, tuple[str, ...]] = {}
_hostnames_json: dict[tuple[str, ...], str] = {}

# What an extension can change; the key columns (device, platform, school, zone, period, date) never do,
# and leaving them out of UPDATE spares SQLite the index work on them.
IMMUTABLE_COLUMNS = frozenset({"id", "session_key", "device", "platform", "school", "zone", "period",
                               "period_kind", "local_date"})
MUTABLE_COLUMNS = tuple(c for c in SESSION_COLUMNS if c not in IMMUTABLE_COLUMNS)
MUTABLE_INDEXES = tuple(SESSION_COLUMNS.index(c) for c in MUTABLE_COLUMNS)


def encode_flags(flags: tuple[Flag, ...]) -> str:
    text = _flags_json.get(flags)
    if text is None:
        text = canonical_json([f.to_dict() for f in flags])
        if len(_flags_json) < _CACHE_LIMIT:
            _flags_json[flags] = text
    return text


def decode_flags(text: str) -> tuple[Flag, ...]:
    flags = _flags_parsed.get(text)
    if flags is None:
        flags = tuple(Flag(**f) for f in json.loads(text))
        if len(_flags_parsed) < _CACHE_LIMIT:
            _flags_parsed[text] = flags
    return flags


def encode_hostnames(names: tuple[str, ...]) -> str:
    text = _hostnames_json.get(names)
    if text is None:
        text = canonical_json(list(names))
        if len(_hostnames_json) < _CACHE_LIMIT:
            _hostnames_json[names] = text
    return text


def decode_hostnames(text: str) -> tuple[str, ...]:
    names = _hostnames_parsed.get(text)
    if names is None:
        names = tuple(json.loads(text))
        if len(_hostnames_parsed) < _CACHE_LIMIT:
            _hostnames_parsed[text] = names
    return names


def encode_exemption(exemption: Exemption | None) -> str | None:
    if exemption is None:
        return None
    text = _exemption_json.get(exemption)
    if text is None:
        text = canonical_json(exemption.to_dict())
        if len(_exemption_json) < _CACHE_LIMIT:
            _exemption_json[exemption] = text
    return text


def decode_exemption(text: str | None) -> Exemption | None:
    fields = json.loads(text) if text else None
    return Exemption(**fields) if fields else None


def session_row(s: Session) -> tuple[Any, ...]:
    """The row, in `SESSION_COLUMNS` order."""
    return (
        s.id, s.key, s.device, s.device_mac, s.asset_tag, s.device_kind, s.owner, s.platform,
        s.platform_name, s.category, s.school, s.zone, s.zone_kind,
        None if s.pupil_area is None else int(s.pupil_area), s.period, s.period_kind, s.week,
        s.local_date, s.first_seen, s.last_seen, s.observations, ",".join(s.signals),
        encode_hostnames(s.hostnames), encode_flags(s.flags), int(s.flagged),
        encode_exemption(s.exemption),
        s.version, s.record_id, ",".join(s.roles), int(s.probably_teaching), ",".join(s.obscured_by),
    )


def row_session(row: Sequence[Any]) -> Session:
    """The session a row (in `SESSION_COLUMNS` order) holds; the key and flagged columns are derived."""
    (sid, _key, device, device_mac, asset_tag, device_kind, owner, platform, platform_name, category,
     school, zone, zone_kind, pupil_area, period, period_kind, week, local_date, first_seen, last_seen,
     observations, signals, hostnames, flags, _flagged, exemption, version, record_id, roles,
     probably_teaching, obscured_by) = row
    return Session(
        device=device,
        platform=platform,
        school=school,
        zone=zone,
        period=period,
        local_date=local_date,
        first_seen=first_seen,
        last_seen=last_seen,
        observations=observations,
        signals=tuple(signals.split(",")) if signals else (),
        hostnames=decode_hostnames(hostnames),
        flags=decode_flags(flags),
        exemption=decode_exemption(exemption) if exemption else None,
        period_kind=period_kind,
        week=week,
        pupil_area=None if pupil_area is None else bool(pupil_area),
        owner=owner,
        asset_tag=asset_tag,
        device_mac=device_mac,
        device_kind=device_kind,
        platform_name=platform_name,
        category=category,
        zone_kind=zone_kind,
        roles=tuple(roles.split(",")) if roles else (),
        probably_teaching=bool(probably_teaching),
        obscured_by=tuple(obscured_by.split(",")) if obscured_by else (),
        id=sid,
        version=version,
        record_id=record_id,
    )


__all__ = [
    "MUTABLE_COLUMNS",
    "MUTABLE_INDEXES",
    "decode_exemption",
    "decode_flags",
    "decode_hostnames",
    "encode_exemption",
    "encode_flags",
    "encode_hostnames",
    "row_session",
    "session_row",
]
