"""Policy: which rules an access breaks, citing the clause, and which exemption applies.

Clause 4.3 of the Social Media Policy restricts personal social-media activity
to non-contact time and to areas where pupils are not present. Clause 4.1
allows professional use; exemptions in the config express it (a marketing
team, a timetabled lesson about social media), each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.config.models import ExemptionRule, PolicySettings
from monitor.observation import Exemption, Flag

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
        self._rules = [_rule(r) for r in settings.exemptions]

    def flags(self, period_kind: str, pupil_area: bool | None) -> tuple[Flag, ...]:
        """The 4.3 flags. A pupil area counts only while the school is open: pupils
        are not present in a classroom at night, at weekends or in the holidays."""
        out: list[Flag] = []
        if self.check_contact_time and period_kind == "contact":
            out.append(CONTACT_TIME)
        if self.check_pupil_area and pupil_area and period_kind != "closed":
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
