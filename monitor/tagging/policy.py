"""Policy: which rules an access breaks, citing the clause, and which exemption applies.

Clause 4.3 of the Social Media Policy restricts personal social-media activity
to non-contact time and to areas where pupils are not present. Clause 4.1
allows professional use; exemptions in the config express it (a marketing
team, a timetabled lesson about social media), each with its reason.

A flag is evidence against a person (clause 3.3), so it is raised only on what
the facts show: use of the platform itself (not a widget, pixel or shared CDN
that another site loaded), a pupil area only while pupils are there (the
school's pupil hours), and a teaching platform shown in a teaching zone during
a lesson is still flagged but marked "probably teaching" so a reviewer starts
with the rest. `why` says in words why an access was or was not flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.config.models import ExemptionRule, PolicySettings
from monitor.observation import AccessEvent, Exemption, Flag
from monitor.tagging.catalog import PLATFORM_ROLE

CONTACT_TIME = Flag(
    "contact_time",
    "4.3",
    "personal social-media activity must be restricted to non-contact time",
)
PUPIL_AREA = Flag(
    "pupil_area",
    "4.3",
    "personal social-media activity must be restricted to areas where pupils are not present",
)


@dataclass(slots=True, frozen=True)
class _Rule:
    exemption: Exemption
    groups: frozenset[str]
    platforms: frozenset[str]
    schools: frozenset[str]
    zones: frozenset[str]
    periods: frozenset[str]
    staff: frozenset[str]

    def matches(
        self,
        groups: tuple[str, ...],
        platform: str | None,
        school: str | None,
        zone: str | None,
        period: str | None,
        owner: str | None,
    ) -> bool:
        return (
            (not self.groups or not self.groups.isdisjoint(groups))
            and (not self.platforms or platform in self.platforms)
            and (not self.schools or school in self.schools)
            and (not self.zones or zone in self.zones)
            and (not self.periods or period in self.periods)
            and (not self.staff or owner in self.staff)
        )


def _rule(r: ExemptionRule) -> _Rule:
    return _Rule(
        Exemption(r.name, r.reason, r.clause),
        frozenset(r.groups),
        frozenset(r.platforms),
        frozenset(r.schools),
        frozenset(r.zones),
        frozenset(r.periods),
        frozenset(r.staff),
    )


class Policy:
    def __init__(self, settings: PolicySettings):
        self.check_contact_time = "contact_time" in settings.flags
        self.check_pupil_area = "pupil_area" in settings.flags
        self.sensitive_categories = frozenset(settings.sensitive_categories)
        self.recorded_special = {r.category: r.reason for r in settings.record_special}
        self.special_categories = frozenset(settings.special_categories) - set(self.recorded_special)
        self._rules = [_rule(r) for r in settings.exemptions]

    def never_stored(self, category: str | None) -> bool:
        """Counted only: a sensitive category, or a special one the trust does not record."""
        return category in self.sensitive_categories or category in self.special_categories

    def flags(self, period_kind: str, pupil_area: bool | None, pupils_present: bool | None = None,
              role: str | None = PLATFORM_ROLE) -> tuple[Flag, ...]:
        """The 4.3 flags, for use of the platform itself only. A pupil area counts only
        while pupils are present (`pupils_present`; None: while the school is open)."""
        if role != PLATFORM_ROLE:
            return ()
        out: list[Flag] = []
        if self.check_contact_time and period_kind == "contact":
            out.append(CONTACT_TIME)
        present = period_kind != "closed" if pupils_present is None else pupils_present
        if self.check_pupil_area and pupil_area and present:
            out.append(PUPIL_AREA)
        return tuple(out)

    def exemption(
        self,
        groups: tuple[str, ...],
        platform: str | None,
        school: str | None,
        zone: str | None,
        period: str | None,
        owner: str | None,
    ) -> Exemption | None:
        for rule in self._rules:
            if rule.matches(groups, platform, school, zone, period, owner):
                return rule.exemption
        return None


def probably_teaching(event: AccessEvent, teaching_platforms: frozenset[str]) -> bool:
    """A flagged access to one of the school's teaching platforms, in a teaching zone, in a lesson."""
    return (event.flagged and event.platform in teaching_platforms and event.teaching_zone
            and event.period_kind == "contact")


def why(event: AccessEvent, policy: Policy) -> list[str]:
    """In words, why `event` was or was not flagged: what `explain` prints for a reviewer."""
    if event.platform is None:
        return ["not a catalog platform: not recorded"]
    out = [f"{event.platform_name or event.platform}: {event.role or PLATFORM_ROLE} domain"]
    if event.special_category:
        out.append(f"category {event.category!r} reveals special category data (UK GDPR art. 9): "
                   "counted only, never stored")
    elif event.sensitive:
        out.append(f"category {event.category!r} is never recorded (policy.sensitive_categories)")
    elif event.category in policy.recorded_special:
        out.append(f"special category {event.category!r} recorded: "
                   f"{policy.recorded_special[event.category]}")
    if not event.trust_device:
        out.append("not a trust device: counted anonymously, never stored")
    if event.role not in (None, PLATFORM_ROLE):
        out.append(f"a {event.role} that other sites load is not use of the platform: not flagged")
        return out
    kind = event.period_kind
    if policy.check_contact_time:
        out.append(f"period {event.period or 'outside the timetable'} is {kind}"
                   + (": contact time (4.3)" if kind == "contact" else ": not contact time"))
    if policy.check_pupil_area:
        if not event.pupil_area:
            out.append(f"zone {event.zone or 'unknown'} is not a pupil area")
        elif event.pupils_present:
            out.append(f"zone {event.zone} is a pupil area and pupils are present "
                       f"({event.pupil_hours}) (4.3)")
        else:
            out.append(f"zone {event.zone} is a pupil area but no pupils are present "
                       f"(pupil hours: {event.pupil_hours or 'none'})")
    if event.exemption is not None:
        out.append(f"exempt: {event.exemption.name} ({event.exemption.reason})")
    if event.probably_teaching:
        out.append("probably teaching: a teaching platform in a teaching zone during a lesson (4.1); "
                   "still flagged, listed apart")
    out.append("flagged" if event.flagged else "not flagged")
    return out
