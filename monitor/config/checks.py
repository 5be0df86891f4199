"""Cross-checks the schema alone cannot express: every name the YAML uses must name something,
and no two places may claim the same thing.

A misspelt platform, zone, period, group or staff id would otherwise match
nothing and silently switch a rule off; two zones claiming one address or VLAN,
or two terms claiming one day, would silently let one of them win. Each check
returns error lines as 'field.path: message' naming both places; the loader
prefixes the file name and line. Errors, never warnings: a warning would still
load the rule it describes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.config.exportsettings import retention_errors
from monitor.config.models import InventoryDevice, School, StaffPeriod, Term, TrustFile
from monitor.config.values import SPECIAL_CATEGORIES

IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


@dataclass(frozen=True)
class _Claim:
    """One network a zone claims, and where the YAML says so."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    written: str
    where: str
    owner: str  # school/zone

    @property
    def first(self) -> int:
        return int(self.network.network_address)

    @property
    def last(self) -> int:
        return int(self.network.broadcast_address)


def network_errors(model: TrustFile) -> list[str]:
    """No address in two zones: an exact repeat, a supernet, a /32 inside another school's zone.

    Longest-prefix lookup would silently give the inner zone's rule, so a /32 typed into the
    wrong school would move one device's accesses there. CIDRs either nest or are apart, so one
    sorted sweep with a stack of the networks still open finds every nesting in O(n log n)."""
    errors: list[str] = []
    claims: list[_Claim] = []
    for s_index, school in enumerate(model.schools):
        for z_index, zone in enumerate(school.zones):
            for c_index, cidr in enumerate(zone.cidrs):
                net = ipaddress.ip_network(cidr, strict=False)
                where = f"schools[{s_index}].zones[{z_index}].cidrs[{c_index}]"
                if net.prefixlen == 0:
                    errors.append(f"{where}: {cidr} matches every address: a zone must name its own "
                                  "networks")
                elif net.version == 6 and net.subnet_of(IPV4_MAPPED):  # type: ignore[arg-type]
                    errors.append(f"{where}: {cidr} is IPv4-mapped, which lookups see as IPv4: write "
                                  "the IPv4 network")
                else:
                    claims.append(_Claim(net, cidr, where, f"{school.id}/{zone.name}"))
    order = {claim: index for index, claim in enumerate(claims)}
    swallowed: dict[_Claim, list[_Claim]] = {}  # a later supernet -> the earlier networks it holds
    for version in (4, 6):
        open_claims: list[_Claim] = []
        for claim in sorted((c for c in claims if c.network.version == version),
                            key=lambda c: (c.first, c.network.prefixlen, order[c])):
            while open_claims and open_claims[-1].last < claim.first:
                open_claims.pop()
            if open_claims:
                outer = open_claims[-1]
                if order[outer] > order[claim] and outer.network != claim.network:
                    swallowed.setdefault(outer, []).append(claim)
                else:
                    errors.append(_overlap(outer, claim, order))
            open_claims.append(claim)
    for outer, inner in sorted(swallowed.items(), key=lambda item: order[item[0]]):
        more = f" and {len(inner) - 1} more network(s)" if len(inner) > 1 else ""
        errors.append(f"{outer.where}: {outer.written} contains {inner[0].written} of {inner[0].owner} "
                      f"({inner[0].where}){more}: an address must belong to one zone")
    return errors


def _overlap(outer: _Claim, inner: _Claim, order: dict[_Claim, int]) -> str:
    """The error for a network inside (or equal to) one the file listed earlier, naming both."""
    if outer.network == inner.network:
        later, earlier = (inner, outer) if order[inner] > order[outer] else (outer, inner)
        return f"{later.where}: {later.written} is already the network of {earlier.owner} ({earlier.where})"
    return (f"{inner.where}: {inner.written} lies inside {outer.written} of {outer.owner} "
            f"({outer.where}): an address must belong to one zone")


def vlan_errors(model: TrustFile) -> list[str]:
    """No VLAN id in two zones: the VLAN table is trust-wide, and the last zone would win."""
    errors: list[str] = []
    seen: dict[int, tuple[str, str]] = {}
    for s_index, school in enumerate(model.schools):
        for z_index, zone in enumerate(school.zones):
            for v_index, vlan in enumerate(zone.vlans):
                where = f"schools[{s_index}].zones[{z_index}].vlans[{v_index}]"
                if vlan in seen:
                    owner, first = seen[vlan]
                    errors.append(f"{where}: VLAN {vlan} is already the VLAN of {owner} ({first})")
                else:
                    seen[vlan] = (f"{school.id}/{zone.name}", where)
    return errors


def calendar_errors(model: TrustFile) -> list[str]:
    """Terms of one school never share a day, and each half-term lies inside its term: the day
    lookup takes the first term that matches, so an overlap would silently drop a half-term."""
    errors: list[str] = []
    for s_index, school in enumerate(model.schools):
        base = f"schools[{s_index}].calendar.terms"
        terms = sorted(enumerate(school.calendar.terms), key=lambda item: (item[1].start, item[0]))
        latest: tuple[int, Term] | None = None  # of the terms so far, the one that ends last
        for index, term in terms:
            if latest is not None and term.start <= latest[1].end:
                before_index, before = latest
                errors.append(
                    f"{base}[{index}]: term {term.name!r} ({term.start} to {term.end}) overlaps term "
                    f"{before.name!r} ({before.start} to {before.end}, {base}[{before_index}])")
            if latest is None or term.end > latest[1].end:
                latest = (index, term)
            half = term.half_term
            if half is not None and not (term.start <= half.start and half.end <= term.end):
                errors.append(f"{base}[{index}].half_term: {half.start} to {half.end} is not inside term "
                              f"{term.name!r} ({term.start} to {term.end})")
    return errors


def semantic_errors(model: TrustFile, catalog_ids: set[str], categories: set[str]) -> list[str]:
    """Overlapping networks, listen settings open to the world (monitor.config.listen), and
    references to platforms, categories, schools, zones and periods."""
    from monitor.config.listen import listen_errors  # imports models, as this module does

    errors = network_errors(model) + vlan_errors(model) + calendar_errors(model) + listen_errors(model) + \
        retention_errors(model.exports, model.retention_days)
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
    known_categories = categories | {a.category for a in p.add} | set(SPECIAL_CATEGORIES)
    for index, category in enumerate(model.policy.special_categories):
        if category not in known_categories:  # a misspelt one would store what art. 9 protects
            errors.append(f"policy.special_categories[{index}]: {category!r} is not a catalog category")
    for index, recorded in enumerate(model.policy.record_special):
        if recorded.category not in model.policy.special_categories:
            errors.append(f"policy.record_special[{index}].category: {recorded.category!r} is not one of "
                          "policy.special_categories")
    for s_index, school in enumerate(model.schools):
        errors += _unknown(f"schools[{s_index}].teaching_platforms", school.teaching_platforms,
                           known_platforms, "is not a known platform")
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


StaffRow = tuple[int, StaffPeriod]  # (line in the CSV, the row)
LoginRow = tuple[int, str, str]  # (line in the CSV, lower-cased login, staff id)


def staff_timetable_errors(model: TrustFile, devices: list[InventoryDevice], logins: list[LoginRow],
                           rows: list[StaffRow], shown: str) -> list[str]:
    """Every row of the MIS export names a staff id the trust knows (a device's owner or a proxy
    login's) and a period that school's timetable holds on that weekday and week: a row that
    matches nothing would silently leave that person on the school's timetable."""
    errors: list[str] = []
    schools_of: dict[str, set[str]] = {}
    for device in devices:
        if device.owner:
            schools_of.setdefault(device.owner, set()).add(device.school)
    signs_in = {staff_id for _, _, staff_id in logins}
    index_of = {school.id: index for index, school in enumerate(model.schools)}
    for line, row in rows:
        if row.staff_id not in schools_of and row.staff_id not in signs_in:
            errors.append(f"{shown}:{line}: staff_id: {row.staff_id!r} owns no device in the inventory "
                          f"and no login maps to it{_case_hint(row.staff_id, set(schools_of) | signs_in)}")
            continue
        # a device owner's rows belong to their devices' schools; a login-only member of staff
        # signs in on shared computers anywhere in the trust
        candidates = [s for s in model.schools if s.id in schools_of.get(row.staff_id, set(index_of))]
        if any(row.period in _periods(school, row) for school in candidates):
            continue
        school = candidates[0]
        where = f"schools[{index_of[school.id]}].timetable"
        if row.week is not None and all(s.timetable.rotation == "weekly" for s in candidates):
            errors.append(f"{shown}:{line}: week: {row.week!r}, but {school.id}'s timetable is weekly "
                          f"({where}.rotation): leave week empty")
            continue
        week = f" in week {row.week}" if row.week else ""
        known = ", ".join(sorted(_periods(school, row))) or "none"
        also = f" (or of {', '.join(s.id for s in candidates[1:])})" if len(candidates) > 1 else ""
        errors.append(f"{shown}:{line}: period: {row.period!r} is not a {row.weekday} period{week} of "
                      f"{school.id}{also} ({where}; {row.weekday} has: {known})")
    return errors


def _periods(school: School, row: StaffPeriod) -> set[str]:
    """The period names `row` can match at `school`: on a weekly timetable only rows without a
    week ever match; a row without a week matches in both weeks of a two-week one."""
    tt = school.timetable
    if tt.rotation == "weekly":
        plans = [tt.days] if row.week is None else []
    else:
        plans = {"A": [tt.week_a], "B": [tt.week_b]}.get(row.week or "", [tt.week_a, tt.week_b])
    return {p.name for plan in plans for p in (plan or {}).get(row.weekday, [])}


def login_errors(devices: list[InventoryDevice], staff_rows: list[StaffRow], logins: list[LoginRow],
                 shown: str) -> list[str]:
    """A login whose staff id differs only in case from a known one ('s2002' for 'S2002'): staff ids
    compare exactly, so that person's own timetable and exemptions would silently not apply.
    (A staff id found nowhere else is allowed: staff without a device sign in on shared PCs.)"""
    known = {d.owner for d in devices if d.owner} | {row.staff_id for _, row in staff_rows}
    return [f"{shown}:{line}: staff_id: {staff_id!r}{_case_hint(staff_id, known)}"
            for line, _, staff_id in logins if staff_id not in known and _case_hint(staff_id, known)]


def _case_hint(staff_id: str, known: set[str]) -> str:
    same = sorted(k for k in known if k.casefold() == staff_id.casefold() and k != staff_id)
    return f" (differs only in case from {same[0]!r}: staff ids are exact)" if same else ""
