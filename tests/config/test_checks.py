"""Cross-checks: every name the YAML uses must name something, or the error says which and where."""

from __future__ import annotations

import pytest

from monitor.config.checks import inventory_errors, login_errors, semantic_errors, staff_timetable_errors
from monitor.config.models import InventoryDevice, TrustFile
from monitor.config.readers import read_inventory, read_staff_rows, read_yaml
from monitor.tagging.catalog import default_catalog
from tests.conftest import EXAMPLE

CATALOG = default_catalog()
CATALOG_IDS = set(CATALOG.platforms)
CATEGORIES = {p.category for p in CATALOG.platforms.values()}


def _edited(edits: dict[tuple, object]) -> TrustFile:
    """The example trust with values replaced at the given paths."""
    data = read_yaml(EXAMPLE)
    for path, value in edits.items():
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return TrustFile.model_validate(data)


def _example_devices() -> list[InventoryDevice]:
    devices, errors = read_inventory(EXAMPLE.parent / "devices.csv", {"oak-primary", "ash-secondary",
                                                                      "central-office"})
    assert not errors
    return devices


def test_the_example_passes_every_check():
    model = _edited({})
    assert semantic_errors(model, CATALOG_IDS, CATEGORIES) == []
    assert inventory_errors(model, _example_devices()) == []


SEMANTIC = [
    ({("schools", 1, "zones", 3, "cidrs", 0): "10.10.10.0/24"},
     "schools[1].zones[3].cidrs[0]: 10.10.10.0/24 is already the network of oak-primary/classrooms "
     "(schools[0].zones[0].cidrs[0])"),
    ({("schools", 0, "zones", 1, "cidrs", 0): "10.10.10.1/24"},  # host bits do not hide an overlap
     "schools[0].zones[1].cidrs[0]: 10.10.10.1/24 is already the network of oak-primary/classrooms "
     "(schools[0].zones[0].cidrs[0])"),
    # a /32 typed into another school's zone: lookup would silently move that device there
    ({("schools", 2, "zones", 1, "cidrs"): ["10.30.2.0/24", "10.20.12.7/32"]},
     "schools[2].zones[1].cidrs[1]: 10.20.12.7/32 lies inside 10.20.12.0/24 of ash-secondary/media-suite "
     "(schools[1].zones[1].cidrs[0]): an address must belong to one zone"),
    # a supernet written later than the networks it swallows: said once, at the innermost it holds
    ({("schools", 2, "zones", 1, "cidrs", 0): "10.20.0.0/16"},
     "schools[2].zones[1].cidrs[0]: 10.20.0.0/16 contains 10.20.10.0/23 of ash-secondary/classrooms "
     "(schools[1].zones[0].cidrs[0]) and 6 more network(s): an address must belong to one zone"),
    ({("schools", 0, "zones", 1, "cidrs", 1): "2001:db8:10::/48"},
     "schools[0].zones[1].cidrs[1]: 2001:db8:10::/48 contains 2001:db8:10:10::/64 of oak-primary/classrooms "
     "(schools[0].zones[0].cidrs[1]): an address must belong to one zone"),
    ({("schools", 0, "zones", 5, "cidrs"): ["0.0.0.0/0"]},
     "schools[0].zones[5].cidrs[0]: 0.0.0.0/0 matches every address: a zone must name its own networks"),
    ({("schools", 0, "zones", 5, "cidrs"): ["::/0"]},
     "schools[0].zones[5].cidrs[0]: ::/0 matches every address: a zone must name its own networks"),
    ({("schools", 0, "zones", 5, "cidrs"): ["::ffff:127.0.0.0/104"]},
     "schools[0].zones[5].cidrs[0]: ::ffff:127.0.0.0/104 is IPv4-mapped, which lookups see as IPv4: "
     "write the IPv4 network"),
    ({("schools", 1, "zones", 6, "vlans"): [110]},
     "schools[1].zones[6].vlans[0]: VLAN 110 is already the VLAN of oak-primary/classrooms "
     "(schools[0].zones[0].vlans[0])"),
    ({("schools", 0, "zones", 0, "vlans"): [110, 110]},
     "schools[0].zones[0].vlans[1]: VLAN 110 is already the VLAN of oak-primary/classrooms "
     "(schools[0].zones[0].vlans[0])"),
    ({("schools", 0, "calendar", "terms", 1, "start"): "2026-12-18"},
     "schools[0].calendar.terms[1]: term 'Spring 2027' (2026-12-18 to 2027-03-26) overlaps term "
     "'Autumn 2026' (2026-09-03 to 2026-12-18, schools[0].calendar.terms[0])"),
    # listed out of order, and inside a long term that ends after the next one starts
    ({("schools", 2, "calendar", "terms"): [
        {"name": "Summer", "start": "2027-04-12", "end": "2027-07-20"},
        {"name": "Year", "start": "2026-09-01", "end": "2027-07-31"}]},
     "schools[2].calendar.terms[0]: term 'Summer' (2027-04-12 to 2027-07-20) overlaps term "
     "'Year' (2026-09-01 to 2027-07-31, schools[2].calendar.terms[1])"),
    ({("schools", 1, "calendar", "terms", 0, "half_term"): {"start": "2027-02-15", "end": "2027-02-19"}},
     "schools[1].calendar.terms[0].half_term: 2027-02-15 to 2027-02-19 is not inside term 'Autumn 2026' "
     "(2026-09-02 to 2026-12-17)"),
    ({("platforms", "only"): ["linkedin", "myspace"]},
     "platforms.only[1]: 'myspace' is not a catalog platform"),
    ({("platforms", "exclude"): ["facebok"]}, "platforms.exclude[0]: 'facebok' is not a catalog platform"),
    ({("platforms", "extra_domains"): {"bebo": ["bebo.com"]}},
     "platforms.extra_domains.bebo: not a catalog platform"),
    ({("platforms", "exclude"): ["linkedin"]},
     "platforms.extra_domains.linkedin: the platform is removed by only/exclude"),
    ({("platforms", "only"): ["facebook"], ("policy", "exemptions"): []},
     "platforms.extra_domains.linkedin: the platform is removed by only/exclude"),
    ({("policy", "exemptions", 0, "platforms", 0): "myspace"},
     "policy.exemptions[0].platforms[0]: 'myspace' is not a known platform"),
    ({("policy", "exemptions", 1, "schools", 0): "ash-secondry"},
     "policy.exemptions[1].schools[0]: 'ash-secondry' is not a configured school"),
    ({("policy", "exemptions", 1, "zones", 0): "media-suit"},
     "policy.exemptions[1].zones[0]: 'media-suit' is not a configured zone"),
    ({("policy", "exemptions", 1, "periods"): ["Lesson 1", "Lesson 9"]},
     "policy.exemptions[1].periods[1]: 'Lesson 9' is not a timetabled period"),
    # issue 17: a misspelt special category would store what UK GDPR art. 9 protects
    ({("policy", "special_categories"): ["dating", "politcal"]},
     "policy.special_categories[1]: 'politcal' is not a catalog category"),
    ({("policy", "record_special"): [{"category": "trade-union", "reason": "DPIA 4"}]},
     "policy.record_special[0].category: 'trade-union' is not one of policy.special_categories"),
    ({("schools", 1, "teaching_platforms"): ["youtube", "youtub"]},
     "schools[1].teaching_platforms[1]: 'youtub' is not a known platform"),
]


@pytest.mark.parametrize(("edits", "expected"), SEMANTIC)
def test_semantic_errors(edits, expected):
    assert semantic_errors(_edited(edits), CATALOG_IDS, CATEGORIES) == [expected]


def test_a_misspelt_sensitive_category_lists_the_known_ones():
    [error] = semantic_errors(_edited({("policy", "sensitive_categories", 0): "trade-unions"}),
                              CATALOG_IDS, CATEGORIES)
    assert error == (f"policy.sensitive_categories[0]: 'trade-unions' is not a catalog category "
                     f"(known: {', '.join(sorted(CATEGORIES))})")


@pytest.mark.parametrize(
    ("edits", "ok"),
    [
        ({("policy", "sensitive_categories"): ["blog"]}, True),  # the example adds a 'blog' platform
        ({("policy", "exemptions", 0, "platforms"): ["trust-blog"]}, True),  # added platforms are known
        ({("platforms", "add"): [], ("policy", "exemptions", 0, "platforms"): ["trust-blog"]}, False),
    ],
)
def test_added_platforms_count_as_known(edits, ok):
    assert (semantic_errors(_edited(edits), CATALOG_IDS, CATEGORIES) == []) is ok


INVENTORY = [
    ({("devices", "reservations", 0, "mac"): "3c:52:82:10:99:99"},
     "devices.reservations[0].mac: 3c:52:82:10:99:99 is not in the device inventory"),
    ({("devices", "reservations", 1, "ip"): "10.10.20.15"},
     "devices.reservations[1].ip: 10.10.20.15 is already reserved by reservations[0]"),
    ({("policy", "exemptions", 0, "groups", 0): "marketting"},
     "policy.exemptions[0].groups[0]: 'marketting' is no device's group"),
    ({("policy", "exemptions", 0, "staff"): ["S1002", "S9999"]},
     "policy.exemptions[0].staff[1]: 'S9999' owns no device"),
]


@pytest.mark.parametrize(("edits", "expected"), INVENTORY)
def test_inventory_errors(edits, expected):
    assert inventory_errors(_edited(edits), _example_devices()) == [expected]


def test_every_bad_reference_is_listed():
    model = _edited({("policy", "exemptions", 0, "groups"): ["a", "marketing", "b"]})
    assert inventory_errors(model, _example_devices()) == [
        "policy.exemptions[0].groups[0]: 'a' is no device's group",
        "policy.exemptions[0].groups[2]: 'b' is no device's group",
    ]


# --- the staff timetable and the login map against the trust ---------------------------------

STAFF_HEADER = "staff_id,week,weekday,period,kind\n"
EXAMPLE_LOGINS = [(2, "jsmith", "S1002"), (3, "a.patel", "S2002"), (4, "m.okafor", "S2003")]


def _staff_rows(tmp_path, body: str):
    path = tmp_path / "staff.csv"
    path.write_text(STAFF_HEADER + body)
    rows, errors = read_staff_rows(path)
    assert errors == []
    return rows


def test_the_example_staff_timetable_and_logins_pass(tmp_path):
    rows, errors = read_staff_rows(EXAMPLE.parent / "staff-timetable.csv")
    assert errors == []
    assert staff_timetable_errors(_edited({}), _example_devices(), EXAMPLE_LOGINS, rows, "s.csv") == []
    assert login_errors(_example_devices(), rows, EXAMPLE_LOGINS, "l.csv") == []


STAFF = [
    # (one CSV row, logins, the error) -- S1002 owns an oak-primary (weekly) device,
    # S2002 an ash-secondary (two-week) one
    ("S1002,,wednesday,Lesson 3,non-contact\n", EXAMPLE_LOGINS, None),
    ("S2002,A,monday,P5,contact\n", EXAMPLE_LOGINS, None),
    ("S2002,,tuesday,Staff CPD,contact\n", EXAMPLE_LOGINS, None),  # week B's Tuesday has it
    ("S7001,,monday,P1,contact\n", [(2, "supply1", "S7001")], None),  # login only: any school
    ("S7001,,monday,Lesson 1,contact\n", [(2, "supply1", "S7001")], None),
    ("S2O02,A,monday,P1,contact\n", EXAMPLE_LOGINS,
     "s.csv:2: staff_id: 'S2O02' owns no device in the inventory and no login maps to it"),
    ("s2002,A,monday,P1,contact\n", EXAMPLE_LOGINS,
     "s.csv:2: staff_id: 's2002' owns no device in the inventory and no login maps to it "
     "(differs only in case from 'S2002': staff ids are exact)"),
    ("S1002,,wednesday,Lesson 9,contact\n", EXAMPLE_LOGINS,
     "s.csv:2: period: 'Lesson 9' is not a wednesday period of oak-primary (schools[0].timetable; "
     "wednesday has: After school, Break, Lesson 1, Lesson 2, Lesson 3, Lesson 4, Lunch, Registration)"),
    ("S1002,,saturday,Lesson 1,contact\n", EXAMPLE_LOGINS,
     "s.csv:2: period: 'Lesson 1' is not a saturday period of oak-primary (schools[0].timetable; "
     "saturday has: none)"),
    ("S2002,A,tuesday,Staff CPD,contact\n", EXAMPLE_LOGINS,
     "s.csv:2: period: 'Staff CPD' is not a tuesday period in week A of ash-secondary "
     "(schools[1].timetable; tuesday has: Break, Lunch, P1, P2, P3, P4, P5, Tutor)"),
    ("S1002,A,wednesday,Lesson 3,contact\n", EXAMPLE_LOGINS,
     "s.csv:2: week: 'A', but oak-primary's timetable is weekly (schools[0].timetable.rotation): "
     "leave week empty"),
    ("S7001,,monday,Assembly,contact\n", [(2, "supply1", "S7001")],
     "s.csv:2: period: 'Assembly' is not a monday period of oak-primary (or of ash-secondary, "
     "central-office) (schools[0].timetable; monday has: After school, Break, Lesson 1, Lesson 2, "
     "Lesson 3, Lesson 4, Lunch, Registration)"),
]


@pytest.mark.parametrize(("row", "logins", "expected"), STAFF)
def test_staff_timetable_rows_must_match_the_trust(tmp_path, row, logins, expected):
    rows = _staff_rows(tmp_path, row)
    errors = staff_timetable_errors(_edited({}), _example_devices(), logins, rows, "s.csv")
    assert errors == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("logins", "expected"),
    [
        (EXAMPLE_LOGINS, []),
        ([(2, "supply1", "S7001")], []),  # staff without a device sign in on shared computers
        ([(2, "jsmith", "S1002"), (3, "apatel", "s2002")],
         ["l.csv:3: staff_id: 's2002' (differs only in case from 'S2002': staff ids are exact)"]),
    ],
)
def test_login_staff_ids_differing_only_in_case_are_errors(logins, expected):
    assert login_errors(_example_devices(), [], logins, "l.csv") == expected
