"""`explain` and `platforms` on the example trust, through the real command line."""

from __future__ import annotations

import json

import pytest

from monitor.cli import main
from monitor.commands.config_commands import parse_when
from monitor.errors import UserError
from tests.conftest import EXAMPLE

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
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"social-monitor: {message}")


def test_parse_when_defaults_to_now():
    import time

    assert abs(parse_when(None, "Europe/London") - time.time()) < 5


@pytest.mark.parametrize(
    ("text", "timestamp"),
    [("2026-01-05T09:00", 1767603600.0), ("2026-07-01T09:00", 1782892800.0),
     ("2026-07-01T09:00+00:00", 1782896400.0)],
    ids=["winter-gmt", "summer-bst", "explicit-offset"],
)
def test_parse_when(text, timestamp):
    assert parse_when(text, "Europe/London") == timestamp


def test_parse_when_bad_text_names_the_option():
    with pytest.raises(UserError, match=r"^--at: "):
        parse_when("not a time", "Europe/London")


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
