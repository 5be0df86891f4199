"""Cross-checks: every name the YAML uses must name something, or the error says which and where."""

from __future__ import annotations

import pytest

from monitor.config.checks import inventory_errors, semantic_errors
from monitor.config.models import InventoryDevice, TrustFile
from monitor.config.readers import read_inventory, read_yaml
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
     "schools[1].zones[3].cidrs[0]: 10.10.10.0/24 is already the network of oak-primary/classrooms"),
    ({("schools", 0, "zones", 1, "cidrs", 0): "10.10.10.1/24"},  # host bits do not hide an overlap
     "schools[0].zones[1].cidrs[0]: 10.10.10.1/24 is already the network of oak-primary/classrooms"),
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
