"""The trust's configuration: one YAML file and the CSV files it names.

Validated with pydantic models (unknown keys are errors, so a typo cannot
silently switch a rule off). Every error is reported as one line naming the
file, the field path and the bad value, e.g.
``config/example.yaml: schools[0].zones[2].cidrs[0]: '10.0.0.300/24' is not a network``.
"""

from __future__ import annotations

import csv
import hashlib
import ipaddress
import itertools
import os
import re
from collections.abc import Iterable
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError
from monitor.tagging.catalog import Catalog, CatalogError, Platform, default_catalog

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
FlagName = Literal["contact_time", "pupil_area"]
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def split_hostport(value: str, allow_zero: bool = False) -> tuple[str, int]:
    """'127.0.0.1:9464' or '[::1]:8080' as (host, port); ValueError naming the value otherwise."""
    host, sep, port = value.rpartition(":")
    lowest = 0 if allow_zero else 1
    if not sep or not host or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    return host.strip("[]"), int(port)


def normalise_mac(value: str) -> str:
    """`AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` and `aa:bb:..` all become `aa:bb:cc:dd:ee:ff`."""
    hexdigits = re.sub(r"[^0-9a-fA-F]", "", value)
    if len(hexdigits) != 12:
        raise ValueError(f"{value!r} is not a MAC address")
    hexdigits = hexdigits.lower()
    return ":".join(hexdigits[i : i + 2] for i in range(0, 12, 2))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrustSettings(Strict):
    name: str = Field(description="The trust's name, as shown in exports and the privacy notice.")
    timezone: str = Field("Europe/London", description="IANA time zone for timetables.")
    dpia_reference: str | None = Field(
        None, description="Reference of the data protection impact assessment for this monitoring."
    )
    purpose: str | None = Field(None, description="Why the trust monitors, for staff and exports.")
    data_controller: str | None = Field(None, description="Who answers for the data (privacy notice).")
    contact: str | None = Field(None, description="Where staff ask about monitoring or make a SAR.")

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
    start: time
    end: time
    kind: Literal["contact", "non-contact"] = Field(description="Lessons are contact time.")

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValueError(f"period {self.name!r} ends ({self.end}) before it starts ({self.start})")
        return self


DayPlan = dict[Weekday, list[Period]]


class Timetable(Strict):
    day_start: time = Field(description="When the school day begins; before it the time is closed.")
    day_end: time = Field(description="When the school day ends; after it the time is closed.")
    rotation: Literal["weekly", "two-week"] = Field("weekly", description="Week A/B rotation.")
    rotation_anchor: date | None = Field(
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
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise ValueError(f"ends ({self.end}) before it starts ({self.start})")
        return self


class Term(Strict):
    name: str
    start: date
    end: date
    half_term: DateRange | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Term:
        if self.end < self.start:
            raise ValueError(f"term {self.name!r} ends before it starts")
        return self


class Closure(Strict):
    date: date
    reason: str = "closure"


class Calendar(Strict):
    terms: list[Term] = Field(description="Term dates; days outside every term are closed.")
    inset_days: list[date] = Field(default_factory=list, description="Training days: no pupils.")
    closures: list[Closure] = Field(default_factory=list, description="Other days the school shuts.")
    nation: Literal["england", "wales", "scotland", "northern-ireland"] = Field(
        "england", description="UK nation whose bank holidays apply."
    )


class School(Strict):
    id: str = Field(description="Short id used in exports and metrics, e.g. 'oak-primary'.")
    name: str
    zones: list[Zone]
    timetable: Timetable
    calendar: Calendar

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


class PolicySettings(Strict):
    flags: list[FlagName] = Field(
        default_factory=lambda: ["contact_time", "pupil_area"], description="Which flags apply."
    )
    exemptions: list[ExemptionRule] = Field(default_factory=list)
    sensitive_categories: list[str] = Field(
        default_factory=lambda: ["trade-union", "health", "employee-assistance"],
        description="Categories never recorded, only counted anonymously.",
    )


class StoreSettings(Strict):
    path: str = Field("var/social-monitor.db", description="SQLite file (relative to the config).")
    idle_gap_seconds: int = Field(300, ge=1, description="Gap that closes an access session.")
    queue_size: int = Field(10000, ge=10, description="Bounded writer queue; overflow is counted.")


class ListenSettings(Strict):
    metrics: str = Field("127.0.0.1:9464", description="host:port of the Prometheus endpoint.")
    proxy: str = Field("127.0.0.1:8080", description="host:port where the proxy listens.")
    proxy_mode: Literal["regular", "transparent"] = "regular"
    metrics_tls_cert: str | None = None
    metrics_tls_key: str | None = None
    metrics_basic_auth_file: str | None = Field(
        None, description="File of 'user:sha256hex' lines for scrapes across the network."
    )

    @field_validator("metrics", "proxy")
    @classmethod
    def _hostport(cls, value: str) -> str:
        split_hostport(value)
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ListenSettings:
        if bool(self.metrics_tls_cert) != bool(self.metrics_tls_key):
            # a certificate without its key would silently serve plain HTTP, credentials in clear
            raise ValueError("metrics_tls_cert and metrics_tls_key go together: set both or neither")
        return self


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
    store: StoreSettings = Field(default_factory=StoreSettings)
    listen: ListenSettings = Field(default_factory=ListenSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)

    @model_validator(mode="after")
    def _unique_schools(self) -> TrustFile:
        ids = [s.id for s in self.schools]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"school ids listed twice: {dupes}")
        return self


# --- rows of the CSV files ------------------------------------------------------------------


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


class Config:
    """A loaded, checked configuration: the YAML model plus what its files hold."""

    def __init__(
        self,
        path: Path,
        model: TrustFile,
        devices: list[InventoryDevice],
        staff_periods: list[StaffPeriod],
        catalog: Catalog,
        fingerprint: str,
        logins: dict[str, str] | None = None,
    ):
        self.path = path
        self.model = model
        self.devices = devices
        self.staff_periods = staff_periods
        self.catalog = catalog
        self.fingerprint = fingerprint
        self.logins = logins or {}  # lower-cased proxy login -> staff id

    @property
    def trust(self) -> TrustSettings:
        return self.model.trust

    @property
    def schools(self) -> list[School]:
        return self.model.schools

    def school(self, school_id: str) -> School | None:
        return next((s for s in self.model.schools if s.id == school_id), None)

    def resolve(self, relative: str) -> Path:
        """A path from the config, taken relative to the config file's folder."""
        path = Path(relative)
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    @property
    def store_path(self) -> Path:
        return self.resolve(self.model.store.path)

    def snapshot(self, directory: Path) -> Path:
        """This checked config, frozen in `directory`: the YAML with every path made absolute
        and copies of the CSV files, so a child process started later reads exactly this
        config even after someone has saved a broken edit of the original."""
        import shutil

        directory.mkdir(parents=True, exist_ok=True)
        data = self.model.model_dump(mode="json")
        for section, key in (("devices", "inventory"), ("devices", "logins"), (None, "staff_timetables")):
            holder = data[section] if section else data
            if holder.get(key):
                copy = directory / f"{key}.csv"
                shutil.copyfile(self.resolve(holder[key]), copy)
                holder[key] = str(copy)
        data["store"]["path"] = str(self.store_path)
        listen = data["listen"]
        for key in ("metrics_tls_cert", "metrics_tls_key", "metrics_basic_auth_file"):
            if listen.get(key):
                listen[key] = str(self.resolve(listen[key]))
        path = directory / "config.yaml"
        tmp = directory / ".config.yaml.tmp"
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
        tmp.replace(path)
        return path


# --- loading ----------------------------------------------------------------------------------


def default_config_path() -> Path:
    """SOCIAL_MONITOR_CONFIG, else config/example.yaml of this checkout, else /etc."""
    env = os.environ.get("SOCIAL_MONITOR_CONFIG")
    if env:
        return Path(env)
    repo_example = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
    if repo_example.exists():
        return repo_example
    return Path("/etc/social-monitor/config.yaml")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def format_loc(loc: Iterable[Any]) -> str:
    """pydantic's location tuple as a field path: ('schools', 0, 'zones') -> schools[0].zones."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _explain(error: dict[str, Any]) -> str:
    """One pydantic error as 'path: message', with the bad value where it helps."""
    loc = format_loc(error["loc"])
    kind = error["type"]
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        # list validators report the index inside the message: move it to the path
        match = re.match(r"^\[(\d+)\] (.*)$", message, re.S)
        if match:
            loc += f"[{match.group(1)}]"
            message = match.group(2)
        return f"{loc}: {message}" if loc else message
    if kind == "extra_forbidden":
        return f"{loc}: unknown key (check the spelling; unknown keys are not ignored)"
    if kind == "missing":
        return f"{loc}: required field is missing"
    value = error.get("input")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{loc}: {value!r} is not valid: {message}"
    return f"{loc}: {message}"


def _read_yaml(path: Path) -> Any:
    shown = _display(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{shown}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{shown}: cannot read: {exc}"]) from None
    try:
        # libyaml's loader when present: a trust with thousands of zones loads 10x faster
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: not valid YAML: {problem}"]) from None


def _read_csv(
    path: Path, required: list[str], label: str
) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """Rows of a CSV with their line numbers, or errors naming the file."""
    shown = _display(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        return [], [f"{shown}: cannot read {label}: {exc.strerror or exc}"]
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            return [], [f"{shown}:1: {label} header lacks column(s) {', '.join(missing)}"]
        rows = []
        for row in reader:
            cleaned = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k}
            if not any(cleaned.values()):
                continue
            rows.append((reader.line_num, cleaned))
        return rows, []


def _load_inventory(
    path: Path, school_ids: set[str]
) -> tuple[list[InventoryDevice], list[str]]:
    shown = _display(path)
    rows, errors = _read_csv(path, ["mac", "asset_tag", "school", "kind"], "device inventory")
    devices: list[InventoryDevice] = []
    seen: dict[str, int] = {}
    tags: dict[str, int] = {}
    for line, row in rows:
        try:
            mac = normalise_mac(row["mac"])
        except ValueError as exc:
            errors.append(f"{shown}:{line}: mac: {exc}")
            continue
        if mac in seen:
            errors.append(f"{shown}:{line}: mac: {mac} already listed on line {seen[mac]}")
            continue
        seen[mac] = line
        if row["school"] not in school_ids:
            errors.append(f"{shown}:{line}: school: {row['school']!r} is not a configured school")
            continue
        if not row["asset_tag"]:
            errors.append(f"{shown}:{line}: asset_tag: empty")
            continue
        tag = row["asset_tag"]
        if tag in tags:
            errors.append(f"{shown}:{line}: asset_tag: {tag!r} already listed on line {tags[tag]}")
            continue
        tags[row["asset_tag"]] = line
        groups = tuple(g.strip() for g in re.split(r"[;|]", row.get("groups", "")) if g.strip())
        devices.append(
            InventoryDevice(
                mac=mac,
                asset_tag=row["asset_tag"],
                school=row["school"],
                kind=row["kind"] or "unknown",
                owner=row.get("owner") or None,
                groups=groups,
            )
        )
    return devices, errors


def _load_staff_periods(path: Path) -> tuple[list[StaffPeriod], list[str]]:
    shown = _display(path)
    rows, errors = _read_csv(
        path, ["staff_id", "week", "weekday", "period", "kind"], "staff timetable"
    )
    out = []
    for line, row in rows:
        weekday = row["weekday"].lower()
        if weekday[:3] in {d[:3] for d in WEEKDAYS}:
            weekday = next(d for d in WEEKDAYS if d.startswith(weekday[:3]))
        week = row["week"].upper() or None
        try:
            out.append(
                StaffPeriod(
                    staff_id=row["staff_id"],
                    week=week,
                    weekday=weekday,
                    period=row["period"],
                    kind=row["kind"].lower(),
                )
            )
        except ValidationError as exc:
            for err in exc.errors():
                errors.append(f"{shown}:{line}: {_explain(err)}")
            continue
        if week not in (None, "A", "B"):
            errors.append(f"{shown}:{line}: week: {row['week']!r} is not A, B or empty")
    return out, errors


def _load_logins(path: Path) -> tuple[dict[str, str], list[str]]:
    """Proxy login -> staff id, from the directory's export; logins compare case-insensitively."""
    shown = _display(path)
    rows, errors = _read_csv(path, ["login", "staff_id"], "login map")
    logins: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, row in rows:
        login, staff_id = row["login"].lower(), row["staff_id"]
        if not login or not staff_id:
            errors.append(f"{shown}:{line}: login and staff_id are both needed")
        elif login in logins:
            errors.append(
                f"{shown}:{line}: login: {row['login']!r} already listed on line {first_line[login]}")
        else:
            logins[login], first_line[login] = staff_id, line
    return logins, errors


def _semantic_checks(model: TrustFile, catalog_ids: set[str], categories: set[str]) -> list[str]:
    """Cross-field checks that the schema alone cannot express."""
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
        zone_names = {z.name for z in school.zones}
        del zone_names
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


def _unknown(path: str, values: Iterable[str], known: set[str], says: str) -> list[str]:
    """'path[i]: 'value' says' for each value that names nothing known."""
    return [f"{path}[{index}]: {value!r} {says}" for index, value in enumerate(values) if value not in known]


def _inventory_checks(model: TrustFile, devices: list[InventoryDevice]) -> list[str]:
    """References from the YAML into the inventory: a typo must not silently match nothing."""
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


def load_config(path: str | Path | None = None) -> Config:
    """Read, validate and cross-check a trust config; raise ConfigError listing every problem."""
    path = Path(path) if path is not None else default_config_path()
    shown = _display(path)
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError([f"{shown}: expected a mapping at the top level"])
    try:
        model = TrustFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([f"{shown}: {_explain(e)}" for e in exc.errors()]) from None

    base_catalog = default_catalog()
    errors = [
        f"{shown}: {e}"
        for e in _semantic_checks(
            model, set(base_catalog.platforms), {p.category for p in base_catalog.platforms.values()}
        )
    ]
    catalog = base_catalog
    if not errors:
        try:
            catalog = base_catalog.restricted(
                only=model.platforms.only,
                exclude=model.platforms.exclude,
                add=[
                    Platform(a.id, a.name, a.category, tuple(a.domains)) for a in model.platforms.add
                ],
                extra_domains=model.platforms.extra_domains,
            )
        except CatalogError as exc:
            errors.append(f"{shown}: platforms: {exc}")

    def resolve(rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else path.parent / p

    devices, dev_errors = _load_inventory(
        resolve(model.devices.inventory), {s.id for s in model.schools}
    )
    errors += dev_errors
    staff: list[StaffPeriod] = []
    if model.staff_timetables:
        staff, staff_errors = _load_staff_periods(resolve(model.staff_timetables))
        errors += staff_errors
    logins: dict[str, str] = {}
    if model.devices.logins:
        logins, login_errors = _load_logins(resolve(model.devices.logins))
        errors += login_errors
    if not dev_errors:
        errors += [f"{shown}: {e}" for e in _inventory_checks(model, devices)]
    if errors:
        raise ConfigError(errors)

    digest = hashlib.sha256()
    digest.update(path.read_bytes())
    for extra in filter(None, [model.devices.inventory, model.devices.logins, model.staff_timetables]):
        digest.update(resolve(extra).read_bytes())
    return Config(path, model, devices, staff, catalog, digest.hexdigest(), logins)
