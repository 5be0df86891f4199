"""Where an observation becomes a tagged, flagged access event.

`Tagger.tag` runs the stages in order: platform (catalog), device (inventory,
reservations, learned bindings), place (zone table), time (school calendar
and timetable, then the owner's own timetable), policy (flags and
exemption). Everything is built once from the config; a call does lookups
only, no parsing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from monitor.config.loader import Config
from monitor.config.values import TEACHING_ZONE_KINDS
from monitor.observation import AccessEvent, Observation
from monitor.tagging.devices import DeviceDirectory, staff_id_for_login
from monitor.tagging.policy import Policy, probably_teaching
from monitor.tagging.timetable import SchoolClock, StaffTimetables
from monitor.tagging.zones import zone_table_from_config


class Tagger:
    def __init__(self, config: Config):
        self.config = config
        self.tz = ZoneInfo(config.trust.timezone)
        self.catalog = config.catalog
        self.zones = zone_table_from_config(config.schools)
        reservations = {r.ip: r.mac for r in config.model.devices.reservations}
        self.devices = DeviceDirectory(config.devices, reservations)
        self.logins = config.logins
        self.clocks = {s.id: SchoolClock(s, self.tz) for s in config.schools}
        self.staff = StaffTimetables(config.staff_periods)
        self.policy = Policy(config.model.policy)
        self.teaching_platforms = {s.id: frozenset(s.teaching_platforms) for s in config.schools}
        self.teaching_zones = {
            (s.id, z.name) for s in config.schools for z in s.zones
            if (z.teaching if z.teaching is not None else z.kind in TEACHING_ZONE_KINDS)
        }

    def tag(self, obs: Observation) -> AccessEvent:
        event = AccessEvent(obs)
        match = self.catalog.match(obs.hostname)
        if match is not None:
            platform = match.platform
            event.platform = platform.id
            event.platform_name = platform.name
            event.category = platform.category
            event.role = match.role
            event.special_category = platform.category in self.policy.special_categories
            event.sensitive = self.policy.never_stored(platform.category)

        device = self.devices.resolve(obs.client_ip, obs.client_mac, obs.timestamp)
        if device is not None:
            event.trust_device = True
            event.device_mac = device.mac
            event.asset_tag = device.asset_tag
            event.device_kind = device.kind
            event.groups = device.groups
            event.owner = device.owner
        if obs.user:
            # a signed-in proxy user owns the access (shared classroom PCs)
            event.owner = staff_id_for_login(self.logins, obs.user)

        zone = self.zones.lookup(obs.client_ip) or self.zones.by_vlan(obs.vlan)
        if zone is not None:
            event.school = zone.school
            event.zone = zone.zone
            event.zone_kind = zone.kind
            event.pupil_area = zone.pupil_area
            event.monitored = zone.monitored
            event.teaching_zone = (zone.school, zone.zone) in self.teaching_zones
        elif device is not None:
            event.school = device.school

        clock = self.clocks.get(event.school) if event.school else None
        if clock is not None:
            when = clock.at(obs.timestamp)
            event.local_time = when.local.isoformat(timespec="seconds")
            event.period = when.period
            event.week = when.week
            event.pupils_present = when.pupils
            event.pupil_hours = when.pupil_hours
            kind = when.kind
            if event.owner and kind != "closed":
                own = self.staff.kind_for(event.owner, when)
                if own is not None:
                    kind = own  # type: ignore[assignment]
            event.period_kind = kind
        else:
            event.local_time = datetime.fromtimestamp(obs.timestamp, UTC).astimezone(self.tz).isoformat(
                timespec="seconds"
            )

        if event.platform is not None:
            event.flags = self.policy.flags(event.period_kind, event.pupil_area,
                                            bool(event.pupils_present), event.role)
            if event.flags:
                event.exemption = self.policy.exemption(
                    event.groups, event.platform, event.school, event.zone, event.period, event.owner
                )
                teaching = self.teaching_platforms.get(event.school) if event.school else None
                if teaching:
                    event.probably_teaching = probably_teaching(event, teaching)
        return event
