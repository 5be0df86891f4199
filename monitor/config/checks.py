"""Cross-checks the schema alone cannot express: every name the YAML uses must name something.

A misspelt platform, zone, period, group or staff id would otherwise match
nothing and silently switch a rule off. Each check returns error lines as
'field.path: message'; the loader prefixes the file name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from monitor.config.models import InventoryDevice, TrustFile


def semantic_errors(model: TrustFile, catalog_ids: set[str], categories: set[str]) -> list[str]:
    """Overlapping networks, and references to platforms, categories, schools, zones and periods."""
    errors: list[str] = []
    networks: dict[Any, str] = {}
    for s_index, school in enumerate(model.schools):
        for z_index, zone in enumerate(school.zones):
            for c_index, cidr in enumerate(zone.cidrs):
                net = ipaddress.ip_network(cidr, strict=False)
                where = f"schools[{s_index}].zones[{z_index}].cidrs[{c_index}]"
                if net in networks:
                    errors.append(f"{where}: {cidr} is already the network of {networks[net]}")
                networks[net] = f"{school.id}/{zone.name}"
    school_ids = {s.id for s in model.schools}
    all_periods = {
        p.name
        for s in model.schools
        for plan in (s.timetable.days, s.timetable.week_a, s.timetable.week_b)
        for periods in (plan or {}).values()
        for p in periods
    }
    all_zones = {z.name for s in model.schools for z in s.zones}
    p = model.platforms
    for index, pid in enumerate(p.only or []):
        if pid not in catalog_ids:
            errors.append(f"platforms.only[{index}]: {pid!r} is not a catalog platform")
    for index, pid in enumerate(p.exclude):
        if pid not in catalog_ids:
            errors.append(f"platforms.exclude[{index}]: {pid!r} is not a catalog platform")
    for pid in p.extra_domains:
        if pid not in catalog_ids:
            errors.append(f"platforms.extra_domains.{pid}: not a catalog platform")
    kept = set(p.only) if p.only is not None else set(catalog_ids)
    kept -= set(p.exclude)
    for pid in p.extra_domains:
        if pid in catalog_ids and pid not in kept:
            errors.append(f"platforms.extra_domains.{pid}: the platform is removed by only/exclude")
    for index, category in enumerate(model.policy.sensitive_categories):
        if category not in categories | {a.category for a in p.add}:
            # a misspelt category would record what the trust promised never to record
            errors.append(
                f"policy.sensitive_categories[{index}]: {category!r} is not a catalog category "
                f"(known: {', '.join(sorted(categories))})"
            )
    known_platforms = catalog_ids | {a.id for a in p.add}
    for e_index, rule in enumerate(model.policy.exemptions):
        base = f"policy.exemptions[{e_index}]"
        errors += _unknown(f"{base}.platforms", rule.platforms, known_platforms, "is not a known platform")
        errors += _unknown(f"{base}.schools", rule.schools, school_ids, "is not a configured school")
        errors += _unknown(f"{base}.zones", rule.zones, all_zones, "is not a configured zone")
        errors += _unknown(f"{base}.periods", rule.periods, all_periods, "is not a timetabled period")
    return errors


def inventory_errors(model: TrustFile, devices: list[InventoryDevice]) -> list[str]:
    """References from the YAML into the inventory: reserved MACs, exempted groups and staff."""
    errors: list[str] = []
    macs = {d.mac for d in devices}
    groups = {g for d in devices for g in d.groups}
    owners = {d.owner for d in devices if d.owner}
    seen_ips: dict[str, int] = {}
    for index, reservation in enumerate(model.devices.reservations):
        where = f"devices.reservations[{index}]"
        if reservation.mac not in macs:
            errors.append(f"{where}.mac: {reservation.mac} is not in the device inventory")
        if reservation.ip in seen_ips:
            errors.append(f"{where}.ip: {reservation.ip} is already reserved by reservations"
                          f"[{seen_ips[reservation.ip]}]")
        seen_ips.setdefault(reservation.ip, index)
    for e_index, rule in enumerate(model.policy.exemptions):
        base = f"policy.exemptions[{e_index}]"
        errors += _unknown(f"{base}.groups", rule.groups, groups, "is no device's group")
        errors += _unknown(f"{base}.staff", rule.staff, owners, "owns no device")
    return errors


def _unknown(path: str, values: Iterable[str], known: set[str], says: str) -> list[str]:
    """'path[i]: 'value' says' for each value that names nothing known."""
    return [f"{path}[{index}]: {value!r} {says}" for index, value in enumerate(values) if value not in known]
