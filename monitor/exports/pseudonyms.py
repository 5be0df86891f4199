"""Aliases for devices and staff ("Device 07", "Staff 03"): stable within one export, numbered afresh.

An export shows each session's device, MAC and owner through a *labeller*:
`identity` for an identified export, `alias_labeller` for a pseudonymised one
(no MAC at all, since a MAC identifies a device as well as its asset tag).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable

from monitor.store.sessions import Session

# (device, MAC, owner) as an export shows them
Labeller = Callable[[Session], tuple[str, str | None, str | None]]


class Pseudonymiser:
    """Short readable aliases, stable within one export and numbered afresh for each.

    Values are numbered in the order of their HMAC-SHA256 under a random key
    that lives only in this object, so the numbering carries no information
    (not the order of the inventory, not who was seen first) and a second
    export numbers the same people differently (the numbers alone link nothing; what else
    does is in docs/exports.md, "What an alias protects against"). Values met later than the
    construction (a device seen only by MAC) get the next free numbers.
    """

    def __init__(self, labels: dict[str, Iterable[str]], key: bytes | None = None):
        self._key = key if key is not None else secrets.token_bytes(32)
        self._maps: dict[str, dict[str, str]] = {}
        self._width: dict[str, int] = {}
        for label, values in labels.items():
            ordered = sorted({v for v in values if v}, key=self._digest)
            self._width[label] = max(2, len(str(len(ordered))))
            self._maps[label] = {v: f"{label} {i:0{self._width[label]}d}" for i, v in enumerate(ordered, 1)}

    def _digest(self, value: str) -> bytes:
        return hmac.new(self._key, value.encode(), hashlib.sha256).digest()

    def alias(self, label: str, value: str | None) -> str | None:
        if not value:
            return None
        mapping = self._maps.setdefault(label, {})
        found = mapping.get(value)
        if found is None:
            width = self._width.setdefault(label, 2)
            found = mapping[value] = f"{label} {len(mapping) + 1:0{width}d}"
        return found

    def __len__(self) -> int:
        return sum(len(m) for m in self._maps.values())


def identity(s: Session) -> tuple[str, str | None, str | None]:
    """An identified export: the session's own device, MAC and owner."""
    return s.device, s.device_mac, s.owner


def alias_labeller(pseudo: Pseudonymiser) -> Labeller:
    """A pseudonymised export: "Device NN" and "Staff NN", no MAC; each alias looked up once per value."""
    device_alias: dict[str, str] = {}
    owner_alias: dict[str | None, str | None] = {None: None}

    def labels(s: Session) -> tuple[str, str | None, str | None]:
        device = device_alias.get(s.device)
        if device is None:
            device = device_alias[s.device] = pseudo.alias("Device", s.device) or ""
        if s.owner not in owner_alias:
            owner_alias[s.owner] = pseudo.alias("Staff", s.owner)
        return device, None, owner_alias[s.owner]

    return labels


__all__ = ["Labeller", "Pseudonymiser", "alias_labeller", "identity"]
