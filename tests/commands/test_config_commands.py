"""`check-config`, `explain` and `platforms` on the example trust; the `--at` option as a timestamp;
every command that loads a config names it (and why) in one stderr line."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.commands.config_commands import at_timestamp
from monitor.errors import UserError
from monitor.store.sqlite import open_store
from tests.conftest import EXAMPLE, london


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("2026-09-30T08:30", "Europe/London", london(2026, 9, 30, 8, 30)),  # local, BST
        ("2026-12-01T08:30", "Europe/London", london(2026, 12, 1, 8, 30)),  # local, GMT
        ("2026-09-30", "Europe/London", london(2026, 9, 30)),  # a bare date is its start
        ("2026-09-30T08:30+00:00", "Europe/London", datetime(2026, 9, 30, 8, 30, tzinfo=UTC).timestamp()),
        ("2026-09-30T08:30Z", "Asia/Tokyo", datetime(2026, 9, 30, 8, 30, tzinfo=UTC).timestamp()),
    ],
)
def test_at_timestamp(text, tz, expected):
    assert at_timestamp(text, tz) == expected


def test_at_timestamp_defaults_to_now():
    before = time.time()
    assert before <= at_timestamp(None, "Europe/London") <= time.time()


def test_at_timestamp_bad_value_names_the_option():
    with pytest.raises(UserError, match=r"^--at: 'tomorrow' is not an ISO date or date-time"):
        at_timestamp("tomorrow", "Europe/London")


TEACHER = ["--client", "10.10.10.31", "--mac", "3C-52-82-10-00-02"]  # oak-class3-teacher, a classroom


def explain(capsys, *args: str) -> dict:
    assert main(["explain", "--config", str(EXAMPLE), *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("args", "field", "value"),
    [
        ([*TEACHER, "--host", "www.instagram.com", "--at", "2026-09-08T09:30"], "social.period", "Lesson 1"),
        ([*TEACHER, "--host", "www.instagram.com", "--at", "2026-09-08T09:30"], "social.flags",
         ["contact_time", "pupil_area"]),
        ([*TEACHER, "--host", "www.instagram.com", "--at", "2026-09-08T10:35"], "social.flags",
         ["pupil_area"]),
        ([*TEACHER, "--host", "WWW.Instagram.COM.", "--at", "2026-09-08T09:30"], "tls.client.server_name",
         "www.instagram.com"),
        ([*TEACHER, "--host", "www.instagram.com", "--at", "2026-09-08T09:30"], "social.trust_device", True),
        (["--client", "10.10.10.200", "--host", "www.instagram.com", "--at", "2026-09-08T09:30"],
         "social.trust_device", False),
        ([*TEACHER, "--host", "www.instagram.com", "--at", "2026-09-08T09:30"], "social.zone", "classrooms"),
        ([*TEACHER, "--host", "www.instagram.com", "--at", "2026-09-08T09:30"], "@timestamp",
         "2026-09-08T08:30:00.000Z"),  # local British Summer Time, stored in UTC
        ([*TEACHER, "--host", "www.instagram.com", "--at", "2026-09-08T09:30+00:00"], "social.period",
         "Break"),  # 10:30 in London
        ([*TEACHER, "--host", "example.org", "--at", "2026-09-08T09:30"], "social.platform", None),
    ],
    ids=["period", "flags-in-lesson", "flags-at-break", "host-normalised", "trust-device", "other-device",
         "zone", "utc-timestamp", "explicit-offset", "not-a-platform"],
)
def test_explain(capsys, args, field, value):
    row = explain(capsys, *args)
    got = [flag["name"] for flag in row[field]] if field == "social.flags" else row[field]
    assert got == value


def test_explain_pretty_is_indented(capsys):
    assert main(["explain", "--config", str(EXAMPLE), *TEACHER, "--host", "x.example", "--pretty"]) == 0
    assert capsys.readouterr().out.startswith("{\n  ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client", "10.0.0.300", "--host", "x.example"], "--client: '10.0.0.300' is not an IP address"),
        (["--client", "10.0.0.3", "--mac", "zz", "--host", "x.example"], "--mac: "),
        (["--client", "10.0.0.3", "--host", "x.example", "--at", "tuesday"], "--at: "),
    ],
    ids=["bad-client", "bad-mac", "bad-time"],
)
def test_explain_bad_argument_is_one_line(capsys, args, message):
    assert main(["explain", "--config", str(EXAMPLE), *args]) == 1
    said, line = capsys.readouterr().err.splitlines()
    assert said == f"social-monitor: config {EXAMPLE} (from --config)"
    assert line.startswith(f"social-monitor: {message}")



def test_platforms_json_one_object_per_platform(capsys):
    assert main(["platforms", "--config", str(EXAMPLE), "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_id = {row["id"]: row for row in rows}
    assert by_id["instagram"]["category"] == "social-network"
    assert "instagram.com" in by_id["instagram"]["domains"]
    assert [(r["category"], r["id"]) for r in rows] == sorted((r["category"], r["id"]) for r in rows)


def test_platforms_table_marks_sensitive_categories(capsys):
    assert main(["platforms", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "CATEGORY", "NAME", "DOMAINS"]
    assert any("(never recorded)" in line for line in out[1:])

@pytest.fixture
def trust(write_config, example_data, tmp_path) -> Path:
    """The example trust in tmp_path, with an empty store beside it."""
    example_data["store"]["path"] = str(tmp_path / "store.db")
    open_store(tmp_path / "store.db").close()
    return write_config(example_data)


# every command that loads a config names it once on stderr; {out} is a new folder
CONFIG_COMMANDS = [
    ["check-config"],
    ["explain", "--client", "10.20.30.5", "--host", "www.facebook.com"],
    ["platforms"],
    ["events"],
    ["verify"],
    ["purge"],
    ["export", "--school", "ash-secondary", "--last-week", "--out", "{out}"],
    ["export-log"],
    ["privacy-notice"],
    ["sar", "--staff", "S1002", "--out", "{out}"],
]


@pytest.mark.parametrize("argv", CONFIG_COMMANDS, ids=lambda argv: argv[0])
def test_each_command_names_its_config_once(trust, tmp_path, capsys, argv):
    argv = [arg.format(out=tmp_path / "out") for arg in argv]
    capsys.readouterr()
    assert main([*argv, "--config", str(trust)]) == 0
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("social-monitor: config ")]
    assert said == [f"social-monitor: config {trust} (from --config)"]


@pytest.mark.parametrize(
    ("argv", "env", "reason"),
    [
        (["privacy-notice"], True, "from $SOCIAL_MONITOR_CONFIG"),
        (["check-config", "{trust}"], False, "from the command line"),
        (["check-config", "{trust}"], True, "from the command line"),
        (["privacy-notice", "--config", "{trust}"], True, "from --config"),
    ],
)
def test_the_line_says_why(trust, capsys, monkeypatch, argv, env, reason):
    if env:
        monkeypatch.setenv("SOCIAL_MONITOR_CONFIG", str(trust))
    else:
        monkeypatch.delenv("SOCIAL_MONITOR_CONFIG", raising=False)
    capsys.readouterr()
    assert main([arg.format(trust=trust) for arg in argv]) == 0
    assert f"social-monitor: config {trust} ({reason})\n" in capsys.readouterr().err


def test_no_line_when_the_config_is_broken(write_config, capsys):
    capsys.readouterr()
    assert main(["check-config", str(write_config(text="- a list\n"))]) == 1
    assert "social-monitor: config " not in capsys.readouterr().err


def test_help_names_the_choice_order(capsys):
    with pytest.raises(SystemExit):
        main(["sar", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "$SOCIAL_MONITOR_CONFIG, else /etc/social-monitor/config.yaml whenever it exists" in text


ASH_TEACHER = ["--client", "10.20.10.41"]  # ASH-LT-0002 in an Ash Grove classroom


@pytest.mark.parametrize(
    ("args", "host", "at", "flags", "role", "pupils", "teaching", "says"),
    [
        # roles: only the platform itself is flagged; widgets, pixels, embeds and CDNs are not its use
        (TEACHER, "www.facebook.com", "2026-09-08T09:30", ["contact_time", "pupil_area"], "platform", True,
         False, "flagged"),
        (TEACHER, "connect.facebook.net", "2026-09-08T09:30", [], "widget", True, False, "not use of the"),
        (TEACHER, "platform.twitter.com", "2026-09-08T09:30", [], "widget", True, False, "not flagged"),
        (TEACHER, "www.youtube-nocookie.com", "2026-09-08T09:30", [], "embed", True, False, "not flagged"),
        (TEACHER, "i0.wp.com", "2026-09-08T09:30", [], "cdn", True, False, "a cdn that other sites load"),
        (TEACHER, "stats.wp.com", "2026-09-08T09:30", [], "tracker", True, False, "a tracker"),
        (TEACHER, "secure.gravatar.com", "2026-09-08T09:30", [], "cdn", True, False, "not flagged"),
        (TEACHER, "snap.licdn.com", "2026-09-08T09:30", [], "tracker", True, False, "not flagged"),
        # Oak's pupil hours: breakfast club daily from 08:00, clubs to 16:00 on Tuesdays and Thursdays
        (TEACHER, "www.instagram.com", "2026-09-07T15:30", [], "platform", False, False,
         "no pupils are present (pupil hours: 08:00-15:15 (pupil hours for monday))"),
        (TEACHER, "www.instagram.com", "2026-09-08T15:30", ["pupil_area"], "platform", True, False,
         "pupils are present (08:00-16:00 (pupil hours for tuesday))"),
        (TEACHER, "www.instagram.com", "2026-09-07T08:15", ["pupil_area"], "platform", True, False,
         "pupil area and pupils are present"),
        (TEACHER, "www.instagram.com", "2026-11-27T10:00", [], "platform", False, False, "no pupils: inset"),
        (TEACHER, "www.instagram.com", "2026-12-18T13:30", ["contact_time"], "platform", False, False,
         "pupil hours for 2026-12-18"),
        # Ash's default: first to last contact period; the Wednesday short day ends with staff CPD
        (ASH_TEACHER, "www.instagram.com", "2026-11-25T13:30", ["contact_time", "pupil_area"], "platform",
         True, False, "08:35-14:00 (first to last contact period)"),
        (ASH_TEACHER, "www.instagram.com", "2026-11-25T14:30", [], "platform", False, False,
         "no pupils are present"),
        (ASH_TEACHER, "www.instagram.com", "2026-11-30T15:30", [], "platform", False, False,
         "08:35-15:00 (first to last contact period)"),
        # teaching platforms in a classroom during a lesson: still flagged, marked probably teaching
        (ASH_TEACHER, "www.youtube.com", "2026-11-30T10:00", ["contact_time", "pupil_area"], "platform", True,
         True, "probably teaching"),
        (ASH_TEACHER, "en.wikipedia.org", "2026-11-30T10:00", ["contact_time", "pupil_area"], "platform",
         True, True, "probably teaching"),
        (ASH_TEACHER, "www.facebook.com", "2026-11-30T10:00", ["contact_time", "pupil_area"], "platform",
         True, False, "flagged"),
        (ASH_TEACHER, "www.youtube.com", "2026-11-30T12:30", ["pupil_area"], "platform", True, False,
         "is non-contact"),
    ],
)
def test_explain_says_why(capsys, args, host, at, flags, role, pupils, teaching, says):
    row = explain(capsys, *args, "--host", host, "--at", at)
    assert [f["name"] for f in row["social.flags"]] == flags
    assert (row["social.role"], row["social.pupils_present"]) == (role, pupils)
    assert row["social.probably_teaching"] is teaching
    assert row["social.flagged"] is bool(flags)
    assert any(says in line for line in row["social.why"]), row["social.why"]


@pytest.mark.parametrize(
    ("host", "category", "says"),
    [
        ("www.tinder.com", "dating", "special category data (UK GDPR art. 9)"),
        ("www.grindr.com", "dating", "counted only, never stored"),
        ("truthsocial.com", "political", "special category"),
        ("gab.com", "political", "special category"),
        ("onlyfans.com", "sexuality", "special category"),
        ("www.neu.org.uk", "trade-union", "never recorded (policy.sensitive_categories)"),
    ],
)
def test_explain_special_categories_are_counted_only(capsys, host, category, says):
    row = explain(capsys, *TEACHER, "--host", host, "--at", "2026-09-08T09:30")
    assert row["social.category"] == category and row["social.recordable"] is False
    assert any(says in line for line in row["social.why"]), row["social.why"]


SCIENCE = ["--client", "10.20.10.41", "--mac", "3c:52:82:20:00:02", "--host", "www.facebook.com",
           "--at", "2026-11-02T10:05"]  # ASH-LT-0002, S2002's, in a classroom in P2


@pytest.mark.parametrize(("extra", "field", "shown", "logged"), [
    ([], "host.id", "Device ", 0),
    ([], "user.id", "Staff ", 0),
    ([], "source.mac", None, 0),
    ([], "host.type", None, 0),  # four people own Ash's laptops: a kind held by few
    (["--identified", "--reason", "case 7"], "host.id", "ASH-LT-0002", 1),
    (["--identified", "--reason", "case 7"], "user.id", "S2002", 1),
    (["--identified", "--reason", "case 7"], "source.mac", "3c:52:82:20:00:02", 1),
])
def test_explain_names_only_for_a_reason(tmp_path, capsys, example_data, write_config, extra, field, shown,
                                         logged):
    from monitor.exports.log import read_log

    example_data["store"]["path"] = str(tmp_path / "store.db")
    config = write_config(example_data)
    assert main(["explain", "--config", str(config), *SCIENCE, *extra]) == 0
    row = json.loads(capsys.readouterr().out)
    value = row.get(field)
    assert value == shown or (shown and value.startswith(shown) and value[len(shown):].isdigit())
    assert [f["name"] for f in row["social.flags"]] == ["contact_time", "pupil_area"]
    entries = read_log(tmp_path / "store.db.exports.jsonl").entries
    assert len(entries) == logged
    if logged:
        entry = entries[0]
        assert (entry.kind, entry.extra["command"], entry.reason) == ("listing", "explain", "case 7")


def test_explain_identified_without_a_reason_prints_nothing(tmp_path, capsys, example_data, write_config):
    example_data["store"]["path"] = str(tmp_path / "store.db")
    config = write_config(example_data)
    assert main(["explain", "--config", str(config), *SCIENCE, "--identified"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "needs --reason" in captured.err
    assert not (tmp_path / "store.db.exports.jsonl").exists()
