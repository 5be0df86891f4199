"""What a pseudonymised export leaves out besides names: exact times, a person's own timetable, and
the names of exemptions that cover only a few people.

An alias hides who a row is about only if nothing else in the row is as particular as a name.
Three things were (docs/exports.md, "What an alias protects against"):

* **exact times**: a start time to the millisecond is unique to one session, so two exports of
  the same days joined on it mapped every alias of one onto the other, and any other timed log
  (a proxy's, a door's) could be joined to it. A pseudonymised export truncates every time to
  the minute, and derives its durations and minutes from the truncated times only;
* **a person's own timetable**: `period_kind` comes from the MIS staff timetable when it has a
  row for the owner, so "non-contact in Friday P4" is one teacher's free period, every week. A
  pseudonymised export shows the school timetable's kind of the period (as configured when it is
  made), the same for everyone;
* **a small exemption**: "head's account" names its one holder. An exemption covering fewer than
  `MIN_GROUP` people of the school is shown as "exempt (clause 4.1)"; if the small exemptions
  together cover fewer than `MIN_GROUP` people, that label would mark them out, so then no
  exemption of the school is named;
* **a rare device**: the only tablet in a school of laptops is its owner's, in every export. Unless
  every kind of device the school's staff own is owned by `MIN_GROUP` people or more, `host.type`
  is empty for every session (an "other" would mark the same few out).

The `Minimiser` rewrites each session an export reads, before it is written or counted, so the
CSV, the JSON lines and the report agree. Sessions are decoded afresh per row (they belong to the
export that reads them); the shared `Exemption` values are replaced, never changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from monitor.config.loader import Config
from monitor.config.models import ExemptionRule, InventoryDevice, School
from monitor.observation import Exemption
from monitor.store.sessions import Session
from monitor.tagging.timetable import SchoolClock

MINUTE = 60  # seconds: the finest time a pseudonymised export shows
MIN_GROUP = 5  # an exemption or device kind is named only if at least this many people of the school have it
WITHHELD_REASON = "[withheld: this exemption covers fewer than 5 people; named in identified exports only]"


def to_minute(ts: float) -> float:
    """Epoch seconds truncated to the minute (UTC; every zone's offset is whole minutes, so local too)."""
    return float(math.floor(ts / MINUTE) * MINUTE)


def people_covered(rule: ExemptionRule, devices: list[InventoryDevice], school: str) -> set[str]:
    """The people of `school` the rule can cover, from the inventory.

    A rule's people are the owners of the school's devices in its groups (any device if it names
    none), and of those only the staff it names if it names any. Zones, periods and platforms do
    not narrow the people (anyone may be there), and the zone is in every row anyway. Someone with
    no device in the inventory is not counted: the count errs towards the neutral label."""
    if rule.schools and school not in rule.schools:
        return set()
    groups = set(rule.groups)
    people = {d.owner for d in devices
              if d.school == school and d.owner and (not groups or groups.intersection(d.groups))}
    if rule.staff:
        people &= set(rule.staff)
    return people


def exemptions_named(rules: list[ExemptionRule], devices: list[InventoryDevice], school: str
                     ) -> frozenset[str]:
    """The exemptions a pseudonymised export of `school` names: those covering `MIN_GROUP` people or
    more, unless the rest together cover fewer (then the neutral label would single them out)."""
    covered = {r.name: people_covered(r, devices, school) for r in rules}
    unnamed = set().union(*(p for p in covered.values() if len(p) < MIN_GROUP))
    if 0 < len(unnamed) < MIN_GROUP:
        return frozenset()
    return frozenset(name for name, people in covered.items() if len(people) >= MIN_GROUP)


def device_kinds_shown(devices: list[InventoryDevice], school: str) -> bool:
    """Whether `host.type` can be shown: every kind the school's staff own is owned by `MIN_GROUP` or more."""
    owners: dict[str, set[str]] = {}
    for d in devices:
        if d.school == school and d.owner:
            owners.setdefault(d.kind, set()).add(d.owner)
    return all(len(people) >= MIN_GROUP for people in owners.values())


def neutral(exemption: Exemption) -> Exemption:
    """The label of an exemption too small to name: its clause, nothing that could say whose."""
    name = f"exempt (clause {exemption.clause})" if exemption.clause else "exempt"
    return Exemption(name, WITHHELD_REASON, exemption.clause)


@dataclass
class Minimiser:
    """Rewrites a session as a pseudonymised export shows it (see the module's docstring)."""

    clock: SchoolClock | None  # None: a school the config no longer has (no period kind is shown)
    named: frozenset[str]  # exemptions covering `MIN_GROUP` or more people of the school
    show_device_kind: bool  # `host.type` shown (`device_kinds_shown`)
    _period_kinds: dict[tuple[str, str], str | None] = field(default_factory=dict)
    _neutral: dict[Exemption, Exemption] = field(default_factory=dict)

    @classmethod
    def for_school(cls, config: Config, school: School, tz: ZoneInfo) -> Minimiser:
        named = exemptions_named(config.model.policy.exemptions, config.devices, school.id)
        return cls(SchoolClock(school, tz), named, device_kinds_shown(config.devices, school.id))

    @classmethod
    def unknown_school(cls) -> Minimiser:
        """For sessions of a school the config no longer describes: nothing from it can be checked, so
        times to the minute, no period kind, no device kind, no exemption named."""
        return cls(None, frozenset(), False)

    def school_kind(self, local_date: str, period: str) -> str | None:
        if self.clock is None:
            return None
        key = (local_date, period)
        if key not in self._period_kinds:  # one lookup per period of a day, whatever the sessions
            self._period_kinds[key] = self.clock.period_kind(date.fromisoformat(local_date), period)
        return self._period_kinds[key]

    def __call__(self, s: Session) -> Session:
        s.first_seen = to_minute(s.first_seen)
        s.last_seen = to_minute(s.last_seen)
        if s.period is not None:  # everyone's, so a row from anyone's own timetable cannot show
            kind = self.school_kind(s.local_date, s.period)
            if kind is not None:
                s.period_kind = kind
            elif self.clock is None:  # no timetable of the school's to show instead: none at all
                s.period_kind = ""
        if not self.show_device_kind:
            s.device_kind = None
        exemption = s.exemption
        if exemption is not None and exemption.name not in self.named:
            label = self._neutral.get(exemption)
            if label is None:
                label = self._neutral[exemption] = neutral(exemption)
            s.exemption = label
        return s

    def manifest(self) -> dict[str, object]:
        """What was left out, for `manifest.json` (`minimised`)."""
        return {"times": "truncated to the minute", "period_kind": "the school timetable's",
                "exemptions_named": sorted(self.named), "device_kinds": self.show_device_kind,
                "min_people": MIN_GROUP}


def per_school(config: Config, tz: ZoneInfo) -> Callable[[Session], Session]:
    """A `Minimiser` for sessions of any school (a listing across schools): one per school, made when
    its first session is met."""
    made: dict[str, Minimiser] = {}

    def minimise(s: Session) -> Session:
        m = made.get(s.school)
        if m is None:
            school = config.school(s.school)
            m = made[s.school] = (Minimiser.for_school(config, school, tz) if school is not None
                                  else Minimiser.unknown_school())
        return m(s)

    return minimise


__all__ = [
    "MINUTE",
    "MIN_GROUP",
    "WITHHELD_REASON",
    "Minimiser",
    "device_kinds_shown",
    "exemptions_named",
    "neutral",
    "people_covered",
    "per_school",
    "to_minute",
]
