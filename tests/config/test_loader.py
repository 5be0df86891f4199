"""load_config end to end: every kind of bad config gives one error naming file, field path and bad value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config.loader import beside, default_config_path, load_config
from monitor.errors import ConfigError
from tests.conftest import EXAMPLE, REPO


def test_example_config_is_valid(example_config):
    assert example_config.trust.name.startswith("Meadow")
    assert {s.id for s in example_config.schools} == {"oak-primary", "ash-secondary", "central-office"}
    assert len(example_config.devices) >= 10
    assert example_config.staff_periods
    assert "trust-blog" in example_config.catalog.platforms
    assert example_config.catalog.lookup("www.linkedin.android").id == "linkedin"


def _set(data: dict, path: list, value):
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()

BAD_CONFIGS = [
    # (edit path, new value, expected text in the error line)
    (["schools", 0, "zones", 2, "cidrs", 0], "10.0.0.300/24",
     "schools[0].zones[2].cidrs[0]: '10.0.0.300/24' is not a network"),
    (["trust", "timezone"], "Europe/Londn", "trust.timezone: 'Europe/Londn' is not a known time zone"),
    (["trust", "nmae"], "x", "trust.nmae: unknown key"),
    (["schools", 1, "zones", 0, "pupil_aera"], True, "schools[1].zones[0].pupil_aera: unknown key"),
    (["schools", 0, "zones", 0, "pupil_area"], "sometimes", "schools[0].zones[0].pupil_area: 'sometimes'"),
    (["schools", 0, "timetable", "day_start"], "25:00", "schools[0].timetable.day_start: '25:00'"),
    (["schools", 0, "timetable", "days", "monday", 1, "end"], "08:00",
     "schools[0].timetable.days.monday[1]"),
    (["schools", 0, "timetable", "days", "funday"], [], "schools[0].timetable.days.funday"),
    (["schools", 1, "timetable", "rotation_anchor"], "2026-09-01",
     "schools[1].timetable: rotation_anchor 2026-09-01 is not a Monday"),
    (["schools", 0, "calendar", "terms", 0, "start"], "2026-13-01",
     "schools[0].calendar.terms[0].start: '2026-13-01'"),
    (["schools", 0, "zones", 0, "vlans", 0], 5000, "schools[0].zones[0].vlans[0]: 5000"),
    (["schools", 0, "id"], "Oak Primary", "schools[0].id: 'Oak Primary' is not a lowercase id"),
    (["retention_days"], 0, "retention_days: 0"),
    (["listen", "metrics"], "localhost", "listen.metrics: 'localhost' is not host:port"),
    (["devices", "reservations", 0, "ip"], "10.10.20.999", "devices.reservations[0].ip: '10.10.20.999'"),
    (["devices", "reservations", 0, "mac"], "zz:zz", "devices.reservations[0].mac: 'zz:zz' is not a MAC"),
    (["policy", "flags", 0], "after_hours", "policy.flags[0]: 'after_hours'"),
    (["policy", "exemptions", 0, "platforms", 0], "myspace",
     "policy.exemptions[0].platforms[0]: 'myspace' is not a known platform"),
    (["policy", "exemptions", 1, "zones", 0], "media-suit",
     "policy.exemptions[1].zones[0]: 'media-suit' is not a configured zone"),
    (["platforms", "exclude"], ["facebok"], "platforms.exclude[0]: 'facebok' is not a catalog platform"),
    (["trust"], _DELETE, "trust: required field is missing"),
    (["schools", 1, "zones", 3, "cidrs", 0], "10.10.10.0/24",
     "schools[1].zones[3].cidrs[0]: 10.10.10.0/24 is already the network of oak-primary/classrooms"),
    (["listen", "metrics_tls_cert"], "cert.pem", "listen: metrics_tls_cert and metrics_tls_key go together"),
    (["devices", "reservations", 0, "mac"], "3c:52:82:10:99:99",
     "devices.reservations[0].mac: 3c:52:82:10:99:99 is not in the device inventory"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BAD_CONFIGS)
def test_bad_config_names_file_field_and_value(write_config, example_data, path, value, expected):
    _set(example_data, path, value)
    config_path = write_config(example_data)
    with pytest.raises(ConfigError) as info:
        load_config(config_path)
    lines = info.value.errors
    assert any(expected in line for line in lines), lines
    assert all(line.startswith(str(config_path).split("/")[-1]) or "trust.yaml" in line for line in lines)


def test_every_error_is_listed_not_just_the_first(write_config, example_data):
    example_data["trust"]["timezone"] = "Mars/Olympus"
    example_data["retention_days"] = -1
    with pytest.raises(ConfigError) as info:
        load_config(write_config(example_data))
    assert len(info.value.errors) == 2


def test_yaml_syntax_error_names_line(write_config):
    path = write_config(text="trust:\n  name: x\n  timezone: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "trust.yaml:" in info.value.errors[0]
    assert "not valid YAML" in info.value.errors[0]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_check_config_command_lists_errors_without_traceback(write_config, example_data):
    example_data["schools"][0]["zones"][2]["cidrs"][0] = "10.0.0.300/24"
    example_data["trust"]["timezone"] = "Nowhere/Land"
    path = write_config(example_data)
    run = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(path)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "'10.0.0.300/24' is not a network" in run.stderr
    assert "'Nowhere/Land' is not a known time zone" in run.stderr
    assert "2 error(s)" in run.stderr


def test_check_config_command_ok_on_example():
    run = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(EXAMPLE)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "ok: Meadow Educational Trust" in run.stdout


def test_config_fingerprint_changes_with_inventory(write_config):
    first = load_config(write_config()).fingerprint
    path = write_config(files={"devices.csv": (EXAMPLE.parent / "devices.csv").read_text() +
                               "aa:aa:aa:aa:aa:aa,X-1,oak-primary,laptop,S1,\n"})
    assert load_config(path).fingerprint != first


def test_snapshot_is_the_same_trust_and_survives_later_edits(write_config, tmp_path):
    original = load_config(write_config())
    snapshot = load_config(original.snapshot(tmp_path / "snap"))
    (tmp_path / "devices.csv").write_text("broken")  # a later, broken edit of the original
    assert snapshot.devices == original.devices and snapshot.staff_periods == original.staff_periods
    assert snapshot.store_path == original.store_path
    assert snapshot.model.schools == original.model.schools
    assert snapshot.model.policy == original.model.policy
    assert set(snapshot.catalog.platforms) == set(original.catalog.platforms)


def test_top_level_must_be_a_mapping(write_config, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text="- just\n- a list\n"))
    assert info.value.errors == ["trust.yaml: expected a mapping at the top level"]


def test_errors_of_every_csv_file_come_together(write_config, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    files = {
        "devices.csv": "mac,asset_tag,school,kind\nnot-a-mac,T1,oak-primary,laptop\n",
        "staff-timetable.csv": "staff_id,week,weekday,period,kind\nS1,C,monday,P1,contact\n",
        "logins.csv": "login,staff_id\njsmith,\n",
    }
    with pytest.raises(ConfigError) as info:
        load_config(write_config(files=files))
    assert info.value.errors == [
        "devices.csv:2: mac: 'not-a-mac' is not a MAC address",
        "staff-timetable.csv:2: week: 'C' is not A, B or empty",
        "logins.csv:2: login and staff_id are both needed",
    ]  # and no inventory cross-checks against a broken inventory


def test_catalog_conflicts_are_reported_under_platforms(write_config, example_data, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    example_data["platforms"]["add"].append(
        {"id": "copycat", "name": "Copy", "category": "blog", "domains": ["blog.meadow-trust.example"]})
    with pytest.raises(ConfigError) as info:
        load_config(write_config(example_data))
    assert info.value.errors == [
        "trust.yaml: platforms: domain 'blog.meadow-trust.example' is claimed by both "
        "'trust-blog' and 'copycat'"
    ]


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("devices.csv", "/etc/social-monitor/devices.csv"),
        ("mis/staff.csv", "/etc/social-monitor/mis/staff.csv"),
        ("../shared/devices.csv", "/etc/social-monitor/../shared/devices.csv"),
        ("/srv/trust/devices.csv", "/srv/trust/devices.csv"),
    ],
)
def test_beside_takes_paths_relative_to_the_config_file(relative, expected):
    assert beside(Path("/etc/social-monitor/config.yaml"), relative) == Path(expected)


@pytest.mark.parametrize(
    ("store_path", "expected"),
    [("var/monitor.db", "var/monitor.db"), ("/var/lib/social-monitor/monitor.db", None)],
)
def test_store_path_is_beside_the_config(write_config, example_data, tmp_path, store_path, expected):
    example_data["store"]["path"] = store_path
    config = load_config(write_config(example_data))
    assert config.store_path == ((tmp_path / expected).resolve() if expected else Path(store_path))


def test_default_config_path_prefers_the_environment(monkeypatch):
    monkeypatch.setenv("SOCIAL_MONITOR_CONFIG", "/srv/trust.yaml")
    assert default_config_path() == Path("/srv/trust.yaml")


def test_default_config_path_is_the_checkout_example(monkeypatch):
    monkeypatch.delenv("SOCIAL_MONITOR_CONFIG", raising=False)
    assert default_config_path() == EXAMPLE
