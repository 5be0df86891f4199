"""Device resolution: client address to MAC to the trust's asset inventory.

A device is a trust device only when its MAC is in the inventory; anything
else (a personal phone on guest Wi-Fi, a visitor's laptop) is counted
anonymously and never stored. Addresses are tied to MACs by the config's
static reservations and by bindings learned passively (DHCP acks seen by the
sensor, a neighbour table); learned bindings are bounded and age out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from monitor.config.models import InventoryDevice
from monitor.config.values import normalise_mac


@dataclass(slots=True, frozen=True)
class Device:
    mac: str
    asset_tag: str
    school: str
    kind: str
    owner: str | None
    groups: tuple[str, ...]


class DeviceDirectory:
    """Who is behind an address, from reservations, learned bindings and the inventory."""

    def __init__(
        self,
        inventory: list[InventoryDevice],
        reservations: dict[str, str],
        max_learned: int = 65536,
        learned_ttl: float = 7 * 86400,
    ):
        self._by_mac = {
            d.mac: Device(d.mac, d.asset_tag, d.school, d.kind, d.owner, d.groups) for d in inventory
        }
        self._reserved = dict(reservations)  # ip -> mac
        self._learned: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._max_learned = max_learned
        self._ttl = learned_ttl
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._by_mac)

    def learn(self, ip: str, mac: str, hostname: str | None = None, at: float | None = None) -> None:
        """Remember that `ip` is leased to `mac` (from a DHCP ack or a neighbour entry)."""
        del hostname  # kept for the caller's logs; the inventory names devices
        try:
            mac = normalise_mac(mac)
        except ValueError:
            return
        learned = self._learned
        learned[ip] = (mac, at if at is not None else time.time())
        learned.move_to_end(ip)
        if len(learned) > self._max_learned:
            learned.popitem(last=False)
            self.evicted += 1

    def adopt_learned(self, other: DeviceDirectory) -> None:
        """Carry bindings learned by a previous directory over a config reload."""
        for ip, (mac, seen) in other._learned.items():
            self._learned[ip] = (mac, seen)
        while len(self._learned) > self._max_learned:
            self._learned.popitem(last=False)

    def mac_for(self, ip: str, at: float | None = None) -> str | None:
        hit = self._learned.get(ip)
        if hit is not None:
            mac, seen = hit
            if at is None or at - seen <= self._ttl:
                return mac
        return self._reserved.get(ip)

    def resolve(self, ip: str, mac: str | None = None, at: float | None = None) -> Device | None:
        """The trust device behind this client, or None for a device the trust does not own."""
        if mac:
            device = self._by_mac.get(mac)
            if device is None:
                try:
                    device = self._by_mac.get(normalise_mac(mac))
                except ValueError:
                    device = None
            if device is not None:
                return device
        learned = self.mac_for(ip, at)
        if learned is None and ip.startswith("::ffff:"):
            learned = self.mac_for(ip[7:], at)  # an IPv4-mapped address is the IPv4 address
        return self._by_mac.get(learned) if learned else None

    def by_mac(self, mac: str) -> Device | None:
        return self._by_mac.get(mac)


def staff_id_for_login(logins: dict[str, str], login: str) -> str:
    """The staff id a proxy sign-in name belongs to (`devices.logins`), else the login as given.

    Logins compare case-insensitively, and `TRUST\\jsmith` or `jsmith@trust.org`
    also match a map entry for plain `jsmith`, as directories write them all."""
    if not logins:
        return login
    key = login.strip().lower()
    found = logins.get(key)
    if found is None:
        found = logins.get(key.rsplit("\\", 1)[-1].split("@", 1)[0])
    return found if found is not None else login
