"""load_config end to end: every kind of bad config gives one error naming file, field path and bad value;
and which config a command chooses (--config, $SOCIAL_MONITOR_CONFIG, the installed one, the example),
checked on real processes with a real /etc/social-monitor in a private mount namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.config.loader import (
    CHECKOUT_EXAMPLE,
    INSTALLED_CONFIG,
    ConfigChoice,
    beside,
    choose_config,
    config_choice,
    default_config_path,
    is_present,
    load_config,
    once_per_alias,
)
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
    (["schools", 0, "zones", 0, "pupil_area"], "sometimes",
     "schools[0].zones[0].pupil_area: is the text 'sometimes', not true or false"),
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


@pytest.mark.integration
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


@pytest.mark.integration
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
    path = write_config(example_data)
    line = path.read_text().splitlines().index("platforms:") + 1
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [
        f"trust.yaml:{line}: platforms: domain 'blog.meadow-trust.example' is claimed by both "
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


CHOICES = [
    # (--config, $SOCIAL_MONITOR_CONFIG, installed present, example present) -> (path, source)
    ("/srv/a.yaml", "/srv/env.yaml", True, True, "/srv/a.yaml", "given"),
    ("rel/a.yaml", None, False, False, "rel/a.yaml", "given"),
    (None, "/srv/env.yaml", True, True, "/srv/env.yaml", "env"),
    (None, "", True, True, str(INSTALLED_CONFIG), "installed"),
    (None, None, True, True, str(INSTALLED_CONFIG), "installed"),
    (None, None, True, False, str(INSTALLED_CONFIG), "installed"),
    (None, None, False, True, str(CHECKOUT_EXAMPLE), "example"),
    (None, None, False, False, str(INSTALLED_CONFIG), "missing"),
]


@pytest.mark.parametrize(("given", "env", "installed", "example", "path", "source"), CHOICES)
def test_choose_config_order(given, env, installed, example, path, source):
    choice = choose_config(given, env, installed, example)
    assert (choice.path, choice.source) == (Path(path), source)


@pytest.mark.parametrize(
    ("choice", "line"),
    [
        (ConfigChoice(Path("/srv/a.yaml"), "given"), "social-monitor: config /srv/a.yaml (from --config)"),
        (ConfigChoice(Path("a.yaml"), "given", "the command line"),
         "social-monitor: config a.yaml (from the command line)"),
        (ConfigChoice(Path("/srv/e.yaml"), "env"),
         "social-monitor: config /srv/e.yaml (from $SOCIAL_MONITOR_CONFIG)"),
        (ConfigChoice(INSTALLED_CONFIG, "installed"),
         "social-monitor: config /etc/social-monitor/config.yaml (installed)"),
        (ConfigChoice(Path("/x/config/example.yaml"), "example"), "social-monitor: config "
         "/x/config/example.yaml (the checkout's example: no /etc/social-monitor/config.yaml)"),
    ],
)
def test_config_choice_line(choice, line):
    assert choice.line() == line


def test_installed_config_is_the_documented_path():
    assert Path("/etc/social-monitor/config.yaml") == INSTALLED_CONFIG
    assert CHECKOUT_EXAMPLE == EXAMPLE


@pytest.mark.parametrize(
    ("make", "present"),
    [
        (lambda d: (d / "config.yaml").write_text("x"), True),
        (lambda d: (d / "config.yaml").mkdir(), True),
        (lambda d: None, False),
        (lambda d: (d / "config.yaml").symlink_to(d / "gone"), False),
    ],
    ids=["file", "folder", "nothing", "dangling link"],
)
def test_is_present(tmp_path, make, present):
    make(tmp_path)
    assert is_present(tmp_path / "config.yaml") is present


def test_is_present_under_a_file_is_absent(tmp_path):
    (tmp_path / "f").write_text("")
    assert is_present(tmp_path / "f" / "config.yaml") is False


def test_config_choice_reads_the_environment(monkeypatch):
    monkeypatch.setenv("SOCIAL_MONITOR_CONFIG", "/srv/trust.yaml")
    assert config_choice() == ConfigChoice(Path("/srv/trust.yaml"), "env")
    assert default_config_path() == Path("/srv/trust.yaml")


@pytest.mark.skipif(is_present(INSTALLED_CONFIG), reason=f"{INSTALLED_CONFIG} is installed on this machine")
def test_default_config_path_is_the_checkout_example_when_nothing_is_installed(monkeypatch):
    monkeypatch.delenv("SOCIAL_MONITOR_CONFIG", raising=False)
    assert config_choice() == ConfigChoice(EXAMPLE, "example")


# --- the installed config on real processes, in a private mount namespace -------------------------

NAMESPACE_SKIP = (
    "needs root" if os.geteuid() != 0 else "needs unshare" if shutil.which("unshare") is None else None
)

# In a private mount namespace, make /etc/social-monitor hold exactly $SRC: bind over the folder
# when the machine has one, else an overlay on /etc whose upper layer lives in a tmpfs, so the
# real /etc is never written. Then run the command from / as the administrator would.
AT_ROOT = """set -e
if [ -d /etc/social-monitor ]; then
  mount --bind "$SRC" /etc/social-monitor
else
  mount -t tmpfs tmpfs "$LAYERS"
  mkdir "$LAYERS/upper" "$LAYERS/work"
  cp -a "$SRC" "$LAYERS/upper/social-monitor"
  mount -t overlay overlay -o "lowerdir=/etc,upperdir=$LAYERS/upper,workdir=$LAYERS/work" /etc
fi
cd /
exec "$@"
"""


def second_trust(folder: Path, name: str) -> Path:
    """A real trust config other than the example: its YAML as config.yaml, its CSVs, another name."""
    folder.mkdir()
    for csv_file in EXAMPLE.parent.glob("*.csv"):
        shutil.copy(csv_file, folder / csv_file.name)
    data = yaml.safe_load(EXAMPLE.read_text())
    data["trust"]["name"] = name
    (folder / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def command_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SOCIAL_MONITOR_CONFIG"}
    env["PYTHONPATH"] = str(REPO)  # this checkout's code, from any working directory
    return env


def run_with_installed(tmp_path: Path, installed: Path, *command: str) -> subprocess.CompletedProcess:
    layers = tmp_path / "layers"
    layers.mkdir()
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", AT_ROOT, "sh", *command],
        env={**command_env(), "SRC": str(installed), "LAYERS": str(layers)},
        capture_output=True, text=True, timeout=120,
    )
    if done.returncode and done.stderr.startswith(("mount:", "unshare:")):
        pytest.skip(f"cannot mount in a private namespace here: {done.stderr.strip()}")
    return done


PRIVACY_NOTICE = (sys.executable, "-m", "monitor", "privacy-notice")
EXAMPLE_TRUST = "**Meadow Educational Trust (example)**"  # the notice's title line


@pytest.mark.integration
@pytest.mark.skipif(NAMESPACE_SKIP is not None, reason=NAMESPACE_SKIP or "")
def test_installed_config_answers_from_the_root(tmp_path):
    installed = second_trust(tmp_path / "installed", "Rowan Test Trust")
    done = run_with_installed(tmp_path, installed, *PRIVACY_NOTICE)
    assert done.returncode == 0, done.stderr
    assert "**Rowan Test Trust**" in done.stdout and EXAMPLE_TRUST not in done.stdout
    assert done.stderr == "social-monitor: config /etc/social-monitor/config.yaml (installed)\n"


@pytest.mark.integration
@pytest.mark.skipif(NAMESPACE_SKIP is not None, reason=NAMESPACE_SKIP or "")
def test_installed_config_wins_over_the_example_but_not_over_the_flag(tmp_path):
    installed = second_trust(tmp_path / "installed", "Rowan Test Trust")
    done = run_with_installed(tmp_path, installed, *PRIVACY_NOTICE, "--config", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert EXAMPLE_TRUST in done.stdout
    assert done.stderr == f"social-monitor: config {EXAMPLE} (from --config)\n"


@pytest.mark.integration
@pytest.mark.skipif(NAMESPACE_SKIP is not None, reason=NAMESPACE_SKIP or "")
def test_an_empty_installed_folder_falls_back_to_the_example_and_says_so(tmp_path):
    empty = tmp_path / "installed"
    empty.mkdir()
    done = run_with_installed(tmp_path, empty, *PRIVACY_NOTICE)
    assert done.returncode == 0, done.stderr
    assert EXAMPLE_TRUST in done.stdout
    assert done.stderr == (f"social-monitor: config {EXAMPLE} "
                           "(the checkout's example: no /etc/social-monitor/config.yaml)\n")


@pytest.mark.integration
@pytest.mark.skipif(NAMESPACE_SKIP is not None or shutil.which("setpriv") is None,
                    reason=NAMESPACE_SKIP or "needs setpriv")
def test_an_installed_config_closed_to_the_user_is_an_error_never_the_example(tmp_path):
    installed = second_trust(tmp_path / "installed", "Rowan Test Trust")
    installed.chmod(0o750)  # root:root here; on a gateway root:social-monitor (docs/deploy.md)
    as_nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    done = run_with_installed(tmp_path, installed, *as_nobody, *PRIVACY_NOTICE)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"social-monitor: {INSTALLED_CONFIG}: cannot read: "), done.stderr
    assert "Permission denied" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.integration
@pytest.mark.skipif(is_present(INSTALLED_CONFIG), reason=f"{INSTALLED_CONFIG} is installed on this machine")
def test_without_an_installed_config_the_root_uses_the_example_and_says_so():
    done = subprocess.run(PRIVACY_NOTICE, cwd="/", env=command_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert EXAMPLE_TRUST in done.stdout
    assert done.stderr == (f"social-monitor: config {EXAMPLE} "
                           "(the checkout's example: no /etc/social-monitor/config.yaml)\n")


# --- hostile and mistaken configs: one line each naming file, line and field (issue 15) ---------

EXAMPLE_TEXT = EXAMPLE.read_text()


def _text_edit(old: str, new: str, count: int = 1) -> str:
    assert old in EXAMPLE_TEXT, old
    return EXAMPLE_TEXT.replace(old, new, count)


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[nth - 1]


STAFF_CSV = (EXAMPLE.parent / "staff-timetable.csv").read_text()
LOGINS_CSV = (EXAMPLE.parent / "logins.csv").read_text()

# (id, YAML text, extra files, the error line, or a (needle, nth) whose line the error names)
MISTAKES = [
    ("retention_days: yes", _text_edit("retention_days: 90", "retention_days: yes"), {},
     "trust.yaml:{line}: retention_days: is true (YAML reads an unquoted yes/no/on/off as true/false), "
     "not a whole number", ("retention_days: yes", 1)),
    ("duplicate key", _text_edit("retention_days: 90\n", "retention_days: 90\nretention_days: 3650\n"), {},
     "trust.yaml:{line}: retention_days: key listed twice (first on line {first}); the last would "
     "silently win", ("retention_days: 3650", 1)),
    ("start: 9:00 unquoted", _text_edit('start: "09:00", end: "10:30"', 'start: 9:00, end: "10:30"'), {},
     'trust.yaml:{line}: schools[0].timetable.days.monday[1].start: 540 is a number, not a time: YAML reads '
     'an unquoted 9:00 as 540; write it in quotes, "09:00" (and 4 more use(s) of this value through '
     "YAML aliases)", ("start: 9:00", 1)),
    ("end: 10:30 unquoted", _text_edit('end: "10:30", kind: contact', "end: 10:30, kind: contact"), {},
     'trust.yaml:{line}: schools[0].timetable.days.monday[1].end: 630 is a number, not a time: YAML reads '
     'an unquoted 10:30 as 630; write it in quotes, "10:30" (and 4 more use(s) of this value through '
     "YAML aliases)", ("end: 10:30", 1)),
    ("start: 2026-02-30", _text_edit("start: 2026-09-03", "start: 2026-02-30"), {},
     "trust.yaml:{line}: schools[0].calendar.terms[0].start: '2026-02-30' is not a date: day is out of "
     "range for month", ("2026-02-30", 1)),
    ("pupil_area: 1", _text_edit("pupil_area: true", "pupil_area: 1"), {},
     "trust.yaml:{line}: schools[0].zones[0].pupil_area: is the number 1, not true or false",
     ("pupil_area: 1", 1)),
    ("a /32 in another school's zone",
     _text_edit("cidrs: [10.30.2.0/24]", "cidrs: [10.30.2.0/24, 10.10.10.77/32]"), {},
     "trust.yaml:{line}: schools[2].zones[1].cidrs[1]: 10.10.10.77/32 lies inside 10.10.10.0/24 of "
     "oak-primary/classrooms (schools[0].zones[0].cidrs[0]): an address must belong to one zone",
     ("10.10.10.77/32", 1)),
    ("0.0.0.0/0", _text_edit("cidrs: [127.0.0.0/8, ", "cidrs: [0.0.0.0/0, "), {},
     "trust.yaml:{line}: schools[0].zones[5].cidrs[0]: 0.0.0.0/0 matches every address: a zone must name "
     "its own networks", ("0.0.0.0/0", 1)),
    ("the same VLAN twice", _text_edit("vlans: [212]", "vlans: [110]"), {},
     "trust.yaml:{line}: schools[1].zones[1].vlans[0]: VLAN 110 is already the VLAN of "
     "oak-primary/classrooms (schools[0].zones[0].vlans[0])", ("vlans: [110]", 2)),
    ("overlapping terms",
     _text_edit("start: 2027-01-05, end: 2027-03-26", "start: 2026-12-01, end: 2027-03-26"), {},
     "trust.yaml:{line}: schools[0].calendar.terms[1]: term 'Spring 2027' (2026-12-01 to 2027-03-26) "
     "overlaps term 'Autumn 2026' (2026-09-03 to 2026-12-18, schools[0].calendar.terms[0])",
     ("2026-12-01", 1)),
    ("inventory: /dev/zero", _text_edit("inventory: devices.csv", "inventory: /dev/zero"), {},
     "/dev/zero: cannot read device inventory: not a regular file (a device, FIFO or socket)", None),
    ("unknown staff id", EXAMPLE_TEXT, {"staff-timetable.csv": STAFF_CSV + "S9999,,monday,P1,contact\n"},
     "staff-timetable.csv:18: staff_id: 'S9999' owns no device in the inventory and no login maps to it",
     None),
    ("unknown period", EXAMPLE_TEXT, {"staff-timetable.csv": STAFF_CSV + "S2005,A,friday,P9,contact\n"},
     "staff-timetable.csv:18: period: 'P9' is not a friday period in week A of ash-secondary "
     "(schools[1].timetable; friday has: Break, Lunch, P1, P2, P3, P4, P5, Tutor)", None),
    ("login to a staff id in the wrong case", EXAMPLE_TEXT, {"logins.csv": LOGINS_CSV + "bsmith,s1002\n"},
     "logins.csv:5: staff_id: 's1002' (differs only in case from 'S1002': staff ids are exact)", None),
    ("a CSV field over 128 KiB", EXAMPLE_TEXT,
     {"logins.csv": LOGINS_CSV + "x" * (128 * 1024 + 1) + ",S1002\n"},
     "logins.csv:5: login: longer than 128 KiB (is this the right file?)", None),
]


def _expected(text: str, template: str, where) -> str:
    if where is None:
        return template
    first = _line_of(text, "retention_days: 90") if "{first}" in template else 0
    return template.format(line=_line_of(text, *where), first=first)


@pytest.mark.parametrize(("text", "files", "template", "where"), [m[1:] for m in MISTAKES],
                         ids=[m[0] for m in MISTAKES])
def test_mistakes_are_one_line_errors_naming_file_line_and_field(write_config, monkeypatch, tmp_path,
                                                                 text, files, template, where):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text=text, files=files))
    assert info.value.errors == [_expected(text, template, where)]


@pytest.mark.integration
@pytest.mark.parametrize(("text", "files", "template", "where"), [m[1:] for m in MISTAKES],
                         ids=[m[0] for m in MISTAKES])
def test_check_config_says_each_mistake_in_one_line(write_config, tmp_path, text, files, template, where):
    path = write_config(text=text, files=files)
    run = subprocess.run([sys.executable, "-m", "monitor", "check-config", path.name],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == f"{_expected(text, template, where)}\n1 error(s)\n"


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (["t.yaml:9: d.monday[1].start: bad", "t.yaml:9: d.tuesday[1].start: bad"],
         ["t.yaml:9: d.monday[1].start: bad (and 1 more use(s) of this value through YAML aliases)"]),
        (["t.yaml:9: z.vlans[0]: bad", "t.yaml:9: z.vlans[1]: bad"],  # two values on one line
         ["t.yaml:9: z.vlans[0]: bad", "t.yaml:9: z.vlans[1]: bad"]),
        (["t.yaml:9: p.start: bad", "t.yaml:9: p.end: bad"],
         ["t.yaml:9: p.start: bad", "t.yaml:9: p.end: bad"]),
        (["t.yaml: school ids listed twice", "t.yaml: school ids listed twice"],
         ["t.yaml: school ids listed twice"]),
    ],
)
def test_once_per_alias(errors, expected):
    assert once_per_alias(errors) == expected
