"""Zone lookup: which school and network zone a client address is in.

Longest-prefix match over every school's IPv4 and IPv6 networks. The table
holds one dict per prefix length, keyed by the network's integer value, so a
lookup is one `int(ip_address)` and at most 33 (v4) or 129 (v6) dict probes,
in practice only as many as there are distinct prefix lengths configured.
Results are cached per address (bounded), since a device keeps its address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config.models import School


@dataclass(slots=True, frozen=True)
class ZoneInfo:
    school: str
    zone: str
    kind: str
    pupil_area: bool
    monitored: bool = True


def _mask(bits: int, prefixlen: int) -> int:
    return ((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1)


class ZoneTable:
    def __init__(
        self, entries: Iterable[tuple[str, ZoneInfo]], vlans: Iterable[tuple[int, ZoneInfo]] = ()
    ):
        self._v4: dict[int, dict[int, ZoneInfo]] = {}
        self._v6: dict[int, dict[int, ZoneInfo]] = {}
        for cidr, info in entries:
            net = ipaddress.ip_network(cidr, strict=False)
            table = self._v4 if net.version == 4 else self._v6
            table.setdefault(net.prefixlen, {})[int(net.network_address)] = info
        # longest prefix first: (networks of that length, mask of that length)
        self._v4_masks = [(self._v4[n], _mask(32, n)) for n in sorted(self._v4, reverse=True)]
        self._v6_masks = [(self._v6[n], _mask(128, n)) for n in sorted(self._v6, reverse=True)]
        self._vlans = dict(vlans)
        self.lookup = lru_cache(maxsize=65536)(self._lookup)

    def __len__(self) -> int:
        return sum(len(t) for t in self._v4.values()) + sum(len(t) for t in self._v6.values())

    def _lookup(self, address: str) -> ZoneInfo | None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value = int(ip)
        for table, mask in self._v4_masks if ip.version == 4 else self._v6_masks:
            hit = table.get(value & mask)
            if hit is not None:
                return hit
        return None

    def by_vlan(self, vlan: int | None) -> ZoneInfo | None:
        return self._vlans.get(vlan) if vlan is not None else None


def zone_table_from_config(schools: Iterable[School]) -> ZoneTable:
    entries: list[tuple[str, ZoneInfo]] = []
    vlans: list[tuple[int, ZoneInfo]] = []
    for school in schools:
        for zone in school.zones:
            info = ZoneInfo(school.id, zone.name, zone.kind, zone.pupil_area, zone.monitored)
            entries.extend((cidr, info) for cidr in zone.cidrs)
            vlans.extend((vlan, info) for vlan in zone.vlans)
    return ZoneTable(entries, vlans)
