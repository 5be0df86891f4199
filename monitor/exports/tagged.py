"""Tagged rows on the command line (`classify --config`, `sense --config`, `explain`): aliases unless a
reason is given, and then entered in the export log.

Tagging an access through the config names whom the inventory gives it to: the asset tag, the staff
id of its owner, the MAC the inventory holds. Printed on a terminal that is identified data like a
listing's (docs/exports.md, "Listings on the gateway"), so by default a tagged row shows the device
and its owner as aliases ("Device 07", "Staff 03", numbered afresh for each run over the whole
inventory, in the order of a keyed hash), no MAC (the packet's either), and leaves out what a
pseudonymised export does (`monitor.exports.minimise`: the school timetable's period kind, not the
owner's own; an exemption covering fewer than five people unnamed; `host.type` only where it marks
out no one). Times stay as captured: they are the packets' own, in the file the user already holds.
With `--identified --reason` the rows name devices and people, and the run is entered in the export
log (kind `listing`, the command in `extra.command`, whom it included) before the first row is
printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.config.loader import Config
from monitor.exports.listing import check_listing
from monitor.exports.log import LogEntry, append, current_user
from monitor.exports.minimise import Minimiser, neutral
from monitor.exports.pseudonyms import Pseudonymiser
from monitor.exports.subjects import Included
from monitor.observation import AccessEvent, iso_utc


def check_tagged(identified: bool, reason: str | None) -> str | None:
    """The reason, or None for aliases; `--identified` without a reason is refused before anything runs."""
    return check_listing(identified, reason, None) if identified else None


@dataclass
class TaggedRows:
    """Turns tagged events into output rows: named as tagged, or under aliases and minimised."""

    config: Config
    identified: bool
    _pseudo: Pseudonymiser | None = None
    _minimisers: dict[str, Minimiser] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.identified:
            devices = self.config.devices
            self._pseudo = Pseudonymiser({"Device": [d.asset_tag or d.mac for d in devices],
                                          "Staff": [d.owner for d in devices if d.owner]})

    def row(self, event: AccessEvent) -> dict[str, Any]:
        if self._pseudo is None:
            return event.to_ecs()
        self._minimise(event)
        event.asset_tag = self._pseudo.alias("Device", event.asset_tag or event.device_mac)
        event.owner = self._pseudo.alias("Staff", event.owner)
        event.device_mac = None
        out = event.to_ecs()
        out.pop("source.mac", None)  # a MAC names a device as well as its asset tag
        return out

    def _minimise(self, event: AccessEvent) -> None:
        if event.school is None:
            return
        m = self._minimisers.get(event.school)
        if m is None:
            school = self.config.school(event.school)
            tz = ZoneInfo(self.config.trust.timezone)
            m = self._minimisers[event.school] = (Minimiser.for_school(self.config, school, tz)
                                                  if school is not None else Minimiser.unknown_school())
        if not m.show_device_kind:
            event.device_kind = None
        if event.exemption is not None and event.exemption.name not in m.named:
            event.exemption = neutral(event.exemption)
        if event.period is not None and event.local_time:
            kind = m.school_kind(event.local_time[:10], event.period)
            if kind is not None:
                event.period_kind = kind  # type: ignore[assignment]  # a period kind of the school's


class Inclusion:
    """Whom tagged rows name, for the export log: a person, else the device (as `Included` counts)."""

    def __init__(self) -> None:
        self.included = Included()
        self.rows = 0
        self.schools: set[str] = set()

    def add(self, event: AccessEvent) -> None:
        self.rows += 1
        if event.school:
            self.schools.add(event.school)
        device = event.asset_tag or (event.device_mac if event.trust_device else None)
        if event.owner or device:
            self.included.add_access(event.owner, device or "")


def log_tagged(config: Config, inclusion: Inclusion, *, command: str, reason: str, shown: str,
               inputs: list[str], now: float | None = None, user: str | None = None) -> LogEntry:
    """Enter an identified run of `command` in the export log, before its first row is printed."""
    from monitor.exports.log import log_path_for

    log_path = log_path_for(config.store_path)
    schools = sorted(inclusion.schools)
    return append(log_path, LogEntry(
        kind="listing", at=iso_utc(time.time() if now is None else now)[:19] + "Z",
        user=user or current_user(), out=shown, manifest_sha256="", sessions=inclusion.rows,
        school=schools[0] if len(schools) == 1 else None, identified=True, reason=reason,
        extra={"included": inclusion.included.tokens(log_path), "command": command,
               "inputs": [str(Path(p)) for p in inputs], "rows": inclusion.rows},
    ))


__all__ = ["Inclusion", "TaggedRows", "check_tagged", "log_tagged"]
