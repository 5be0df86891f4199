"""The whole tagging stage on the example trust: device, place, time, platform, policy."""

import json
import subprocess
import sys

import pytest

from monitor.observation import Observation
from monitor.tagging.tagger import Tagger
from tests.conftest import REPO, london


@pytest.fixture(scope="module")
def tagger(example_config):
    return Tagger(example_config)


def obs(client, host, when, mac=None, user=None, vlan=None):
    return Observation(london(*when), client, 50000, "198.51.100.7", 443, "tcp", "tls", host,
                       client_mac=mac, user=user, vlan=vlan)


MONDAY_P2 = (2026, 11, 30, 10, 0)  # Week B
MONDAY_LUNCH = (2026, 11, 30, 12, 30)
SATURDAY = (2026, 11, 28, 12, 0)


@pytest.mark.parametrize(
    ("client", "host", "when", "platform", "asset", "zone", "period", "kind", "flags", "exemption"),
    [
        # teacher's laptop in a classroom during a lesson: both 4.3 flags
        ("10.20.10.41", "www.facebook.com", MONDAY_P2, "facebook", "ASH-LT-0002", "classrooms", "P2",
         "contact", ["contact_time", "pupil_area"], None),
        # same laptop over IPv6 at lunch: only the pupil-area flag
        ("2001:db8:20:10::41", "www.instagram.com", MONDAY_LUNCH, "instagram", "ASH-LT-0003", "classrooms",
         "Lunch", "non-contact", ["pupil_area"], None),
        # staff room at lunch: allowed
        ("10.20.30.10", "reddit.com", MONDAY_LUNCH, "reddit", "ASH-PC-0001", "staff-room", "Lunch",
         "non-contact", [], None),
        # marketing posting during a lesson: flagged but exempt under 4.1
        ("10.20.40.12", "www.linkedin.com", MONDAY_P2, "linkedin", "ASH-MB-0004", "offices", "P2",
         "contact", ["contact_time"], "marketing-team"),
        # weekend: closed, no flags even in a classroom
        ("10.20.10.41", "tiktok.com", SATURDAY, "tiktok", "ASH-LT-0002", "classrooms", None, "closed",
         [], None),
        # not social
        ("10.20.10.41", "www.bbc.co.uk", MONDAY_P2, None, "ASH-LT-0002", "classrooms", "P2", "contact",
         [], None),
    ],
)
def test_tag(tagger, client, host, when, platform, asset, zone, period, kind, flags, exemption):
    event = tagger.tag(obs(client, host, when))
    assert event.platform == platform
    assert event.asset_tag == asset and event.trust_device
    assert (event.zone, event.period, event.period_kind) == (zone, period, kind)
    assert [f.name for f in event.flags] == flags
    assert (event.exemption.name if event.exemption else None) == exemption
    assert event.flagged == bool(flags and not exemption)


def test_staff_timetable_makes_free_period_non_contact(tagger):
    # S2002 (ASH-LT-0002) is free in Week B Monday P1 while the school has lessons
    event = tagger.tag(obs("10.20.10.41", "facebook.com", (2026, 11, 30, 9, 30)))
    assert (event.period, event.period_kind) == ("P1", "non-contact")
    assert [f.name for f in event.flags] == ["pupil_area"]


def test_unknown_device_is_not_a_trust_device(tagger):
    event = tagger.tag(obs("10.20.10.99", "facebook.com", MONDAY_P2))
    assert not event.trust_device and not event.recordable
    assert event.zone == "classrooms"  # still placed, for anonymous counts


def test_mac_from_the_packet_beats_address(tagger):
    event = tagger.tag(obs("10.20.10.99", "facebook.com", MONDAY_P2, mac="3C-52-82-20-00-05"))
    assert event.asset_tag == "ASH-LT-0005" and event.owner == "S2005"


def test_learned_dhcp_binding(example_config):
    fresh = Tagger(example_config)
    assert not fresh.tag(obs("10.20.11.50", "x.com", MONDAY_P2)).trust_device
    fresh.devices.learn("10.20.11.50", "3c:52:82:20:00:06", "ash-class-pc", at=london(*MONDAY_P2))
    event = fresh.tag(obs("10.20.11.50", "x.com", MONDAY_P2))
    assert event.asset_tag == "ASH-PC-0006"


def test_proxy_user_owns_shared_pc_access(tagger):
    event = tagger.tag(obs("10.20.30.10", "x.com", MONDAY_LUNCH, user="S2005"))
    assert event.owner == "S2005"


@pytest.mark.parametrize(
    ("login", "owner"),
    [
        ("a.patel", "S2002"),  # config/logins.csv
        ("A.Patel", "S2002"),
        ("MEADOW\\a.patel", "S2002"),
        ("a.patel@meadow-trust.example", "S2002"),
        ("visitor7", "visitor7"),  # not in the map: recorded as given
    ],
)
def test_proxy_login_is_mapped_to_a_staff_id(tagger, login, owner):
    event = tagger.tag(obs("10.20.30.10", "x.com", MONDAY_LUNCH, user=login))
    assert event.owner == owner
    ecs = event.to_ecs()
    assert ecs["user.name"] == login  # what the proxy saw, beside whom it maps to
    assert ecs.get("user.id") == (owner if owner != login else None)


def test_guest_zone_is_never_recordable(tagger):
    event = tagger.tag(obs("10.20.99.5", "facebook.com", MONDAY_P2, mac="3c:52:82:20:00:05"))
    assert event.trust_device and not event.monitored and not event.recordable


def test_sensitive_category_is_never_recordable(tagger):
    event = tagger.tag(obs("10.20.30.10", "www.neu.org.uk", MONDAY_LUNCH))
    assert event.sensitive and not event.recordable


def test_vlan_places_an_address_outside_every_cidr(tagger):
    event = tagger.tag(obs("192.0.2.10", "x.com", MONDAY_P2, mac="3c:52:82:20:00:05", vlan=230))
    assert (event.school, event.zone) == ("ash-secondary", "staff-room")


@pytest.mark.integration
def test_explain_command_prints_ecs_json():
    run = subprocess.run(
        [sys.executable, "-m", "monitor", "explain", "--client", "10.20.10.41", "--host", "M.Facebook.com.",
         "--at", "2026-11-30T10:00"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout)
    assert row["tls.client.server_name"] == "m.facebook.com"
    assert row["social.platform"] == "facebook"
    assert row["social.school"] == "ash-secondary"
    assert row["social.zone"] == "classrooms" and row["social.pupil_area"] is True
    assert row["social.period"] == "P2" and row["social.period_kind"] == "contact"
    flags = {f["name"]: f["clause"] for f in row["social.flags"]}
    assert flags == {"contact_time": "4.3", "pupil_area": "4.3"}
    assert row["social.trust_device"] is True and row["social.exemption"] is None


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client", "10.0.0.300", "--host", "x.com"], "--client: '10.0.0.300' is not an IP address"),
        (["--client", "10.0.0.1", "--host", "x.com", "--at", "yesterday"], "--at: 'yesterday'"),
        (["--client", "10.0.0.1", "--host", "x.com", "--mac", "nope"], "--mac:"),
    ],
)
def test_explain_bad_input(args, message):
    run = subprocess.run([sys.executable, "-m", "monitor", "explain", *args],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 1
    assert message in run.stderr and "Traceback" not in run.stderr


def test_ipv4_mapped_client_is_the_ipv4_device(tagger):
    event = tagger.tag(obs("::ffff:10.20.10.41", "facebook.com", MONDAY_P2))
    assert event.trust_device and event.asset_tag == "ASH-LT-0002" and event.zone == "classrooms"


def test_reload_keeps_learned_bindings(example_config):
    old = Tagger(example_config)
    old.devices.learn("10.20.11.50", "3c:52:82:20:00:06", at=london(*MONDAY_P2))
    new = Tagger(example_config)
    new.devices.adopt_learned(old.devices)
    assert new.tag(obs("10.20.11.50", "x.com", MONDAY_P2)).asset_tag == "ASH-PC-0006"
