"""The report's figures, accumulated one session at a time while the export streams its CSV.

One pass, memory bounded: counters keyed by the few weekdays, periods, zones,
platforms and weeks of a school, one `PersonTotals` per alias (at most the
trust's devices), and at most `MAX_ROWS` rows per detail table.

Minutes are each session's first to last sighting (`monitor.store.ecs.minutes`):
sightings of one device and platform in one place and period merge into one
session while they are less than the store's idle gap apart, so a session seen
once counts as no time and the minutes are a lower bound.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.config.values import WEEKDAYS
from monitor.store.ecs import OUTSIDE, minutes, report_cells
from monitor.store.sessions import Session

MAX_ROWS = 2000  # flagged rows in the HTML table; the CSV always has them all


@dataclass(slots=True)
class Figures:
    """The headline figures of one period: the export's, or the one before it for comparison."""

    total: int = 0  # accesses recorded
    minutes: float = 0.0  # of all accesses recorded
    flagged: int = 0  # flagged under 4.3 and not exempt
    flagged_minutes: float = 0.0
    contact: int = 0  # flagged, with the contact-time flag
    pupil: int = 0  # flagged, with the pupil-area flag
    people: set[str] = field(default_factory=set)  # who had a flag (an alias, or a key never shown)

    def add_flagged(self, s: Session, who: str, spent: float) -> None:
        names = {f.name for f in s.flags}
        self.flagged += 1
        self.flagged_minutes += spent
        self.contact += "contact_time" in names
        self.pupil += "pupil_area" in names
        self.people.add(who)


@dataclass(slots=True)
class PersonTotals:
    """One alias's flagged sessions within the export: the per-person table's row."""

    alias: str
    flagged: int = 0
    minutes: float = 0.0
    contact: int = 0
    contact_minutes: float = 0.0
    pupil: int = 0
    pupil_minutes: float = 0.0
    devices: set[str] = field(default_factory=set)


def person_of(device: str, owner: str | None) -> str:
    """Who a session is about, as the export shows them: the staff alias, else the device's."""
    return owner or device


class ReportStats:
    """Counts, minutes and rows for the report, accumulated one session at a time."""

    def __init__(self, tz: ZoneInfo, max_rows: int = MAX_ROWS):
        self.tz = tz
        self.max_rows = max_rows
        self.figures = Figures()
        self.exempt = 0  # would have been flagged, allowed under an exemption (4.1)
        self.heat: Counter[tuple[str, str]] = Counter()
        self.by_zone: Counter[str] = Counter()
        self.by_platform: Counter[str] = Counter()
        self.by_week: Counter[str] = Counter()
        self.minutes_by_week: defaultdict[str, float] = defaultdict(float)
        self.by_period: Counter[str] = Counter()
        self.combos: Counter[tuple[str, str, str]] = Counter()
        self.exemptions: Counter[str] = Counter()
        self.exemption_reasons: dict[str, str] = {}
        self.devices: set[str] = set()
        self.people: dict[str, PersonTotals] = {}
        self.rows: list[dict[str, Any]] = []  # the table's cells by ECS name (`monitor.store.ecs`)
        self.rows_left_out = 0
        # listed apart, so a reviewer starts with the rest: flagged but probably teaching (4.1), and
        # sessions that saw only a platform's widgets, pixels, embeds or CDN (never flagged)
        self.teaching = 0
        self.embed_only = 0
        self.teaching_rows: list[dict[str, Any]] = []
        self.embed_rows: list[dict[str, Any]] = []
        self._days: dict[str, tuple[str, str]] = {}
        # destination hidden (VPN, encrypted DNS, Tor, ECH): no platform, never flagged, counted by kind
        self.hidden: Counter[str] = Counter()
        self.hidden_contact = 0
        # set by an export: each flagged row's review and the reviewed/open counts
        # (monitor.exports.reviews.ReviewColumns)
        self.reviews: Any = None

    # the figures under their old names: the summary's words read these
    @property
    def total(self) -> int:
        return self.figures.total

    @property
    def flagged(self) -> int:
        return self.figures.flagged

    @property
    def contact(self) -> int:
        return self.figures.contact

    @property
    def pupil(self) -> int:
        return self.figures.pupil

    def _day(self, local_date: str) -> tuple[str, str]:
        """Weekday name and the Monday of its week, once per date (a month has 30, not 100,000)."""
        day = date.fromisoformat(local_date)
        monday = day - timedelta(days=day.weekday())
        found = self._days[local_date] = (WEEKDAYS[day.weekday()], monday.isoformat())
        return found

    def _cells(self, s: Session, device: str, owner: str | None) -> dict[str, Any]:
        cells = report_cells(s, device, None, owner, None, self.tz)
        if self.reviews is not None:
            cells["review"] = self.reviews.cell(s)
        return cells

    def add(self, s: Session, device: str, owner: str | None) -> None:
        if not s.platform:  # not an access to social media: counted apart, never a platform
            for kind in s.obscured_by or ("unknown",):
                self.hidden[kind] += 1
            self.hidden_contact += s.period_kind == "contact"
            return
        spent = minutes(s.first_seen, s.last_seen)
        self.figures.total += 1
        self.figures.minutes += spent
        if s.embed_only:
            self.embed_only += 1
            if len(self.embed_rows) < self.max_rows:
                self.embed_rows.append(self._cells(s, device, owner))
            return
        if not s.flags:
            return
        if s.exemption is not None:
            self.exempt += 1
            self.exemptions[s.exemption.name] += 1
            self.exemption_reasons[s.exemption.name] = s.exemption.reason
        else:
            self._add_flagged(s, device, owner, spent)
            if s.probably_teaching:
                self.teaching += 1
                if len(self.teaching_rows) < self.max_rows:
                    self.teaching_rows.append(self._cells(s, device, owner))
                return
        if len(self.rows) >= self.max_rows:
            self.rows_left_out += 1
            return
        self.rows.append(self._cells(s, device, owner))

    def _add_flagged(self, s: Session, device: str, owner: str | None, spent: float) -> None:
        who = person_of(device, owner)
        self.figures.add_flagged(s, who, spent)
        weekday, week = self._days.get(s.local_date) or self._day(s.local_date)
        period = s.period or OUTSIDE
        platform = s.platform_name or s.platform
        self.heat[(weekday, period)] += 1
        self.by_zone[s.zone] += 1
        self.by_platform[platform] += 1
        self.by_period[period] += 1
        self.by_week[week] += 1
        self.minutes_by_week[week] += spent
        self.combos[(platform, s.zone, period)] += 1
        self.devices.add(device)
        person = self.people.get(who)
        if person is None:
            person = self.people[who] = PersonTotals(who)
        person.flagged += 1
        person.minutes += spent
        person.devices.add(device)
        names = {f.name for f in s.flags}
        if "contact_time" in names:
            person.contact += 1
            person.contact_minutes += spent
        if "pupil_area" in names:
            person.pupil += 1
            person.pupil_minutes += spent

    def ranked_people(self) -> list[PersonTotals]:
        """Most flags first, then most flagged minutes, then the alias: the few who account for most."""
        return sorted(self.people.values(), key=lambda p: (-p.flagged, -p.minutes, p.alias))


__all__ = ["MAX_ROWS", "Figures", "PersonTotals", "ReportStats", "person_of"]
