"""Config error messages: a field path and one readable sentence, from pydantic's error records."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.config.messages import format_loc, shown_path, validation_message
from monitor.config.models import TrustFile, Zone


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        ((), ""),
        (("trust",), "trust"),
        (("trust", "timezone"), "trust.timezone"),
        (("schools", 0, "zones", 2, "cidrs"), "schools[0].zones[2].cidrs"),
        (("schools", 0, "timetable", "days", "monday", 1), "schools[0].timetable.days.monday[1]"),
        (("listen", "function-after[_tls_pair(), ListenSettings]"), "listen"),
        (("function-before", "retention_days"), "retention_days"),
    ],
)
def test_format_loc(loc, expected):
    assert format_loc(loc) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"loc": ("trust", "timezone"), "type": "value_error",
          "msg": "Value error, 'Mars/Olympus' is not a known time zone"},
         "trust.timezone: 'Mars/Olympus' is not a known time zone"),
        # a list validator's "[i] ..." moves into the path
        ({"loc": ("schools", 0, "zones", 2, "cidrs"), "type": "value_error",
          "msg": "Value error, [1] '10.0.0.300/24' is not a network"},
         "schools[0].zones[2].cidrs[1]: '10.0.0.300/24' is not a network"),
        ({"loc": (), "type": "value_error", "msg": "Value error, school ids listed twice: ['oak']"},
         "school ids listed twice: ['oak']"),
        ({"loc": ("trust", "nmae"), "type": "extra_forbidden", "msg": "Extra inputs are not permitted"},
         "trust.nmae: unknown key (check the spelling; unknown keys are not ignored)"),
        ({"loc": ("trust",), "type": "missing", "msg": "Field required"},
         "trust: required field is missing"),
        ({"loc": ("retention_days",), "type": "greater_than_equal", "input": 0,
          "msg": "Input should be greater than or equal to 1"},
         "retention_days: 0 is not valid: Input should be greater than or equal to 1"),
        ({"loc": ("store",), "type": "model_type", "input": ["a"], "msg": "Input should be a mapping"},
         "store: Input should be a mapping"),
    ],
)
def test_validation_message(error, expected):
    assert validation_message(error) == expected


def _messages(model, data) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [validation_message(e) for e in info.value.errors()]


def test_real_pydantic_errors_read_as_one_line_each():
    zone = {"name": "hall", "kind": "hall", "pupil_area": "sometimes", "cidrs": ["10.0.0.0/8", "bad"]}
    assert sorted(_messages(Zone, zone)) == [
        "cidrs[1]: 'bad' is not a network",
        "pupil_area: is the text 'sometimes', not true or false",
    ]


def test_missing_top_level_sections_are_named():
    assert _messages(TrustFile, {}) == [
        "trust: required field is missing",
        "schools: required field is missing",
        "devices: required field is missing",
    ]


@pytest.mark.parametrize(
    ("relative", "inside"),
    [("trust.yaml", True), ("conf/devices.csv", True), ("../elsewhere.yaml", False)],
)
def test_shown_path_is_relative_inside_the_working_directory(tmp_path, monkeypatch, relative, inside):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = work / relative
    assert shown_path(path) == (relative if inside else str(path))
    assert shown_path(Path(relative)) == relative  # inside: made relative; outside: shown as given


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/etc/social-monitor/config.yaml", "/etc/social-monitor/config.yaml"), ("etc/x.yaml", "etc/x.yaml")],
)
def test_shown_path_from_the_root_is_as_given(monkeypatch, path, expected):
    monkeypatch.chdir("/")
    assert shown_path(Path(path)) == expected
