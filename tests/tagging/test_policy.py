import pytest

from monitor.config.models import ExemptionRule, PolicySettings
from monitor.tagging.policy import CONTACT_TIME, PUPIL_AREA, Policy

BOTH = Policy(PolicySettings())


@pytest.mark.parametrize(
    ("kind", "pupil_area", "flags"),
    [
        ("contact", True, (CONTACT_TIME, PUPIL_AREA)),
        ("contact", False, (CONTACT_TIME,)),
        ("non-contact", True, (PUPIL_AREA,)),
        ("non-contact", False, ()),
        ("closed", True, ()),  # no pupils in a classroom at night or in the holidays
        ("closed", None, ()),
    ],
)
def test_flags(kind, pupil_area, flags):
    assert BOTH.flags(kind, pupil_area) == flags
    assert all(f.clause == "4.3" for f in flags)


def test_flags_can_be_switched_off():
    only_time = Policy(PolicySettings(flags=["contact_time"]))
    assert only_time.flags("non-contact", True) == ()
    assert only_time.flags("contact", True) == (CONTACT_TIME,)


RULES = PolicySettings(
    exemptions=[
        ExemptionRule(name="marketing", reason="school accounts", groups=["marketing"],
                      platforms=["facebook", "instagram"]),
        ExemptionRule(name="media-lesson", reason="lesson", platforms=["youtube"], zones=["media-suite"],
                      periods=["P3"], schools=["ash"]),
        ExemptionRule(name="head", reason="leads comms", staff=["S1"], clause="4.1"),
    ]
)


@pytest.mark.parametrize(
    ("groups", "platform", "school", "zone", "period", "owner", "expected"),
    [
        (("marketing",), "facebook", "ash", "offices", "P1", "S9", "marketing"),
        (("marketing", "x"), "instagram", "oak", "hall", None, None, "marketing"),
        (("marketing",), "tiktok", "ash", "offices", "P1", "S9", None),  # platform not covered
        (("teachers",), "facebook", "ash", "offices", "P1", "S9", None),  # group not covered
        ((), "youtube", "ash", "media-suite", "P3", "S9", "media-lesson"),
        ((), "youtube", "ash", "media-suite", "P4", "S9", None),  # wrong period
        ((), "youtube", "oak", "media-suite", "P3", "S9", None),  # wrong school
        ((), "reddit", "oak", "hall", "P3", "S1", "head"),
    ],
)
def test_exemptions(groups, platform, school, zone, period, owner, expected):
    hit = Policy(RULES).exemption(groups, platform, school, zone, period, owner)
    assert (hit.name if hit else None) == expected
    if hit:
        assert hit.reason
