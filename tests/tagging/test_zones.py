import pytest

from monitor.tagging.zones import ZoneInfo, ZoneTable, zone_table_from_config

A = ZoneInfo("s", "wide", "office", False)
B = ZoneInfo("s", "narrow", "classroom", True)
C = ZoneInfo("s", "v6", "staff-room", False)
D = ZoneInfo("s", "v6-narrow", "classroom", True)
TABLE = ZoneTable(
    [("10.0.0.0/8", A), ("10.1.2.0/24", B), ("2001:db8::/32", C), ("2001:db8:1:2::/64", D)],
    vlans=[(42, B)],
)


@pytest.mark.parametrize(
    ("address", "zone"),
    [
        ("10.9.9.9", "wide"),
        ("10.1.2.3", "narrow"),  # longest prefix wins
        ("10.1.3.3", "wide"),
        ("10.1.2.255", "narrow"),
        ("11.0.0.1", None),  # unknown address
        ("2001:db8:5::1", "v6"),
        ("2001:db8:1:2::abcd", "v6-narrow"),
        ("2001:db9::1", None),
        ("::ffff:10.1.2.3", "narrow"),  # IPv4-mapped IPv6 is the IPv4 address
        ("not an address", None),
    ],
)
def test_longest_prefix(address, zone):
    hit = TABLE.lookup(address)
    assert (hit.zone if hit else None) == zone


def test_vlan_fallback():
    assert TABLE.by_vlan(42) is B
    assert TABLE.by_vlan(7) is None
    assert TABLE.by_vlan(None) is None


@pytest.mark.parametrize(
    ("address", "school", "zone", "pupil_area"),
    [
        ("10.10.10.31", "oak-primary", "classrooms", True),
        ("10.10.20.15", "oak-primary", "school-office", False),
        ("10.10.20.200", "oak-primary", "staff-room", False),  # the /25 split of one /24
        ("2001:db8:20:30::10", "ash-secondary", "staff-room", False),
        ("10.20.11.7", "ash-secondary", "classrooms", True),  # inside the /23
        ("10.30.2.9", "central-office", "meeting-rooms", False),
    ],
)
def test_example_trust_zones(example_config, address, school, zone, pupil_area):
    hit = zone_table_from_config(example_config.schools).lookup(address)
    assert (hit.school, hit.zone, hit.pupil_area) == (school, zone, pupil_area)
