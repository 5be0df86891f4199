"""The trust's configuration as pydantic models, and the small value helpers they use.

Every model forbids unknown keys, so a typo cannot silently switch a rule off,
and validates strictly, so YAML's loose values cannot change one either:
`retention_days: yes` is not 1, `pupil_area: 1` is not true, and an unquoted
`end: 10:30` (which YAML reads as the number 630) is not 00:10:30. Validators
raise a ValueError whose text becomes the one-line error the user reads (see
`monitor.config.messages`).
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from monitor.config.bypass import BypassSettings
from monitor.config.exportsettings import ExportSettings
from monitor.config.listensettings import ListenSettings
from monitor.config.values import (
    FLAG_NAMES,
    SLUG_RE,
    SPECIAL_CATEGORIES,
    Clock,
    Day,
    FlagName,
    Hours,
    Strict,
    Weekday,
    normalise_mac,
)


class TrustSettings(Strict):
    name: str = Field(description="The trust's name, as shown in exports and the privacy notice.")
    timezone: str = Field("Europe/London", description="IANA time zone for timetables.")
    dpia_reference: str | None = Field(
        None, description="Reference of the data protection impact assessment for this monitoring."
    )
    purpose: str | None = Field(None, description="Why the trust monitors, for staff and exports.")
    data_controller: str | None = Field(None, description="Who answers for the data (privacy notice).")
    contact: str | None = Field(None, description="Where staff ask about monitoring or make a SAR.")
    lawful_basis: str | None = Field(
        None, description="The UK GDPR art. 6 basis for this monitoring, in words (privacy notice)."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone") from None
        return value


class Zone(Strict):
    name: str = Field(description="Short zone name, unique within its school.")
    kind: str = Field(description="classroom, staff-room, office, hall, corridor, library, ...")
    pupil_area: bool = Field(description="Whether pupils are present here during the school day.")
    cidrs: list[str] = Field(default_factory=list, description="IPv4 and IPv6 networks.")
    vlans: list[Annotated[int, Field(ge=1, le=4094)]] = Field(
        default_factory=list, description="802.1Q VLAN ids carrying this zone."
    )
    monitored: bool = Field(True, description="False to count but never store this zone's accesses.")
    teaching: bool | None = Field(None, description="Lessons are taught here (default: by its kind).")

    @field_validator("cidrs")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for index, value in enumerate(values):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"[{index}] {value!r} is not a network") from None
        return values


class Period(Strict):
    name: str = Field(description="Period name as the timetable calls it (P1, Break, Lunch).")
    start: Clock
    end: Clock
    kind: Literal["contact", "non-contact"] = Field(description="Lessons are contact time.")

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValueError(f"period {self.name!r} ends ({self.end}) before it starts ({self.start})")
        return self


DayPlan = dict[Weekday, list[Period]]


class Timetable(Strict):
    day_start: Clock = Field(description="When the school day begins; before it the time is closed.")
    day_end: Clock = Field(description="When the school day ends; after it the time is closed.")
    rotation: Literal["weekly", "two-week"] = Field("weekly", description="Week A/B rotation.")
    rotation_anchor: Day | None = Field(
        None, description="A Monday in Week A, for two-week rotations."
    )
    week_a: DayPlan | None = Field(None, description="Periods per weekday (Week A, or every week).")
    week_b: DayPlan | None = Field(None, description="Periods per weekday in Week B.")
    days: DayPlan | None = Field(None, description="Periods per weekday, for a weekly timetable.")

    @model_validator(mode="after")
    def _consistent(self) -> Timetable:
        if self.day_end <= self.day_start:
            raise ValueError("day_end must be after day_start")
        if self.rotation == "weekly":
            if self.days is None:
                raise ValueError("a weekly timetable needs 'days'")
        else:
            if self.week_a is None or self.week_b is None:
                raise ValueError("a two-week timetable needs 'week_a' and 'week_b'")
            if self.rotation_anchor is None:
                raise ValueError("a two-week timetable needs 'rotation_anchor' (a Monday of Week A)")
            if self.rotation_anchor.weekday() != 0:
                raise ValueError(f"rotation_anchor {self.rotation_anchor} is not a Monday")
        for plan in (self.days, self.week_a, self.week_b):
            for weekday, periods in (plan or {}).items():
                ordered = sorted(periods, key=lambda p: p.start)
                for before, after in itertools.pairwise(ordered):
                    if after.start < before.end:
                        raise ValueError(
                            f"{weekday}: periods {before.name!r} and {after.name!r} overlap"
                        )
        return self


class DateRange(Strict):
    start: Day
    end: Day

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise ValueError(f"ends ({self.end}) before it starts ({self.start})")
        return self


class Term(Strict):
    name: str
    start: Day
    end: Day
    half_term: DateRange | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Term:
        if self.end < self.start:
            raise ValueError(f"term {self.name!r} ends before it starts")
        return self


class Closure(Strict):
    date: Day
    reason: str = "closure"


class Calendar(Strict):
    terms: list[Term] = Field(description="Term dates; days outside every term are closed.")
    inset_days: list[Day] = Field(default_factory=list, description="Training days: no pupils.")
    closures: list[Closure] = Field(default_factory=list, description="Other days the school shuts.")
    nation: Literal["england", "wales", "scotland", "northern-ireland"] = Field(
        "england", description="UK nation whose bank holidays apply."
    )


class DatedPupilHours(Strict):
    date: Day
    hours: list[Hours] = Field(description="Pupil hours that day; [] for none (a trip, a closure).")

class PupilHours(Strict):
    """When pupils are on site. By default, on a teaching day, from the start of the first contact
    period to the end of the last; none on INSET days, closures and holidays."""

    weekdays: dict[Weekday, list[Hours]] = Field(default_factory=dict, description="Replace the default "
                                                  "on teaching days of that weekday (clubs included).")
    dates: list[DatedPupilHours] = Field(default_factory=list, description="One date's pupil hours.")


class School(Strict):
    id: str = Field(description="Short id used in exports and metrics, e.g. 'oak-primary'.")
    name: str
    zones: list[Zone]
    timetable: Timetable
    calendar: Calendar
    pupil_hours: PupilHours = Field(default_factory=PupilHours, description="When pupils are present.")
    teaching_platforms: list[str] = Field(
        default_factory=list, description="Platform ids a teacher commonly shows in lessons (youtube): "
        "such a flag in a teaching zone during a lesson is marked 'probably teaching'."
    )

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG_RE.match(value):
            raise ValueError(f"{value!r} is not a lowercase id (letters, digits, '-', '_', '.')")
        return value

    @model_validator(mode="after")
    def _unique_zones(self) -> School:
        seen: set[str] = set()
        for zone in self.zones:
            if zone.name in seen:
                raise ValueError(f"zone {zone.name!r} is listed twice")
            seen.add(zone.name)
        return self


class Reservation(Strict):
    mac: str
    ip: str
    hostname: str | None = None

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        return normalise_mac(value)

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None


class DevicesSettings(Strict):
    inventory: str = Field(description="CSV: mac, asset_tag, school, kind, owner, groups.")
    reservations: list[Reservation] = Field(default_factory=list, description="Static leases.")
    logins: str | None = Field(
        None, description="CSV: login, staff_id. Proxy sign-in names (proxyauth) to staff ids."
    )


class PlatformDef(Strict):
    id: str
    name: str
    category: str
    domains: list[str]
    embeds: dict[Literal["embed", "widget", "tracker", "cdn"], list[str]] = Field(
        default_factory=dict, description="Domains other sites load (never use of the platform), by role."
    )


class PlatformSettings(Strict):
    only: list[str] | None = Field(None, description="Narrow scope to these platform ids.")
    exclude: list[str] = Field(default_factory=list, description="Platform ids not in scope.")
    add: list[PlatformDef] = Field(default_factory=list, description="Platforms to add.")
    extra_domains: dict[str, list[str]] = Field(
        default_factory=dict, description="More domains for a catalog platform."
    )


class ExemptionRule(Strict):
    name: str
    reason: str = Field(description="Why this use is allowed; shown beside every exempted access.")
    clause: str | None = Field("4.1", description="The policy clause that allows it.")
    groups: list[str] = Field(default_factory=list, description="Device groups it covers.")
    platforms: list[str] = Field(default_factory=list)
    schools: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)
    periods: list[str] = Field(default_factory=list)
    staff: list[str] = Field(default_factory=list, description="Pseudonymous staff ids it covers.")

    @model_validator(mode="after")
    def _narrow(self) -> ExemptionRule:
        if not (self.groups or self.platforms or self.schools or self.zones or self.periods or self.staff):
            raise ValueError(f"exemption {self.name!r} names no group, platform, zone or period")
        return self


class RecordedSpecial(Strict):
    category: str
    reason: str = Field(min_length=1, description="The DPIA's reason for recording this category.")


class PolicySettings(Strict):
    flags: list[FlagName] = Field(
        default_factory=lambda: list(FLAG_NAMES), description="Which flags apply."
    )
    exemptions: list[ExemptionRule] = Field(default_factory=list)
    sensitive_categories: list[str] = Field(
        default_factory=lambda: ["trade-union", "health", "employee-assistance"],
        description="Categories never recorded, only counted anonymously.",
    )
    special_categories: list[str] = Field(
        default_factory=lambda: list(SPECIAL_CATEGORIES),
        description="Categories whose use reveals UK GDPR art. 9 data: counted only, unless recorded.",
    )
    record_special: list[RecordedSpecial] = Field(
        default_factory=list, description="Special categories the trust must record, with the DPIA reason."
    )


class StoreSettings(Strict):
    path: str = Field("var/social-monitor.db", description="SQLite file (relative to the config).")
    idle_gap_seconds: int = Field(300, ge=1, description="Gap that closes an access session.")
    queue_size: int = Field(10000, ge=10, description="Bounded writer queue; overflow is counted.")
    coverage_interval_seconds: int = Field(300, ge=1, le=3600, description="Length of one interval of the "
                                           "coverage ledger (what was observed, in the store's chain).")
    central: str | None = Field(None, description="postgresql://ROLE@host/db of the trust's central store "
                                "(records are shipped there; no password here).")
    central_password_file: str | None = Field(None, description="File holding the central role's password.")
    central_reader: str | None = Field(None, description="postgresql://ROLE@host/db of a role in "
                                       "social_monitor_reader: trust-wide events, export and sar --central "
                                       "(password from $SOCIAL_MONITOR_CENTRAL_PASSWORD, never here).")

    @field_validator("central", "central_reader")
    @classmethod
    def _central_url(cls, value: str | None) -> str | None:
        if value is not None:
            from monitor.store.postgres.connect import CentralConfigError, conninfo

            try:  # the URL's form only; the password is read when shipping starts
                conninfo(value, environ={}, field="central")
            except CentralConfigError as exc:
                raise ValueError(str(exc).removeprefix("central: ")) from None
        return value


class GatewaySettings(Strict):
    id: str = Field(description="This gateway's id at the central store, e.g. 'oak-primary-gw'.")

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG_RE.match(value) or len(value) > 63:
            raise ValueError(f"gateway id {value!r}: lowercase letters, digits, '.', '_' and '-' "
                             "(63 at most)")
        return value


class CaptureSettings(Strict):
    interfaces: list[str] = Field(default_factory=list, description="Interfaces to capture on.")
    enabled: bool = True
    proxy_enabled: bool = True


class TrustFile(Strict):
    """The top level of the YAML file."""

    trust: TrustSettings
    schools: list[School]
    devices: DevicesSettings
    staff_timetables: str | None = Field(None, description="CSV from the school MIS.")
    platforms: PlatformSettings = Field(default_factory=PlatformSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    retention_days: int = Field(90, ge=1, le=3650, description="Days sessions are kept.")
    exports: ExportSettings = Field(default_factory=ExportSettings, description="Exports and the export log.")
    store: StoreSettings = Field(default_factory=StoreSettings)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    bypass: BypassSettings = Field(default_factory=BypassSettings)
    gateway: GatewaySettings | None = Field(None, description="This gateway, as the central store knows it.")

    @model_validator(mode="after")
    def _central_needs_gateway(self) -> TrustFile:
        if self.store.central and self.gateway is None:
            raise ValueError("store.central is set but gateway.id is not: the central store keys records "
                             "by it")
        return self

    @model_validator(mode="after")
    def _unique_schools(self) -> TrustFile:
        ids = [s.id for s in self.schools]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"school ids listed twice: {dupes}")
        return self


# --- rows of the CSV files (built by monitor.config.readers) ---------------------------------


class InventoryDevice(Strict):
    mac: str
    asset_tag: str
    school: str
    kind: str
    owner: str | None = None
    groups: tuple[str, ...] = ()


class StaffPeriod(Strict):
    staff_id: str
    week: str | None  # "A", "B" or None for every week
    weekday: Weekday
    period: str
    kind: Literal["contact", "non-contact"]
