"""The config models and value helpers: each validator accepts the good forms and names the bad value."""

from __future__ import annotations

from datetime import date, time

import pytest
from pydantic import ValidationError

from monitor.config.models import (
    DateRange,
    ExemptionRule,
    Period,
    Reservation,
    School,
    StaffPeriod,
    Timetable,
    TrustFile,
    TrustSettings,
    Zone,
)
from monitor.config.readers import read_yaml
from tests.conftest import EXAMPLE


def _error_texts(model, data) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [e["msg"] for e in info.value.errors()]


ZONE = {"name": "hall", "kind": "hall", "pupil_area": True}
PERIOD = {"name": "P1", "start": "09:00", "end": "10:00", "kind": "contact"}
WEEKLY = {"day_start": "08:30", "day_end": "16:00", "days": {"monday": [PERIOD]}}
TWO_WEEK = {**WEEKLY, "rotation": "two-week", "week_a": {}, "week_b": {}}
SCHOOL = {"id": "oak", "name": "Oak", "zones": [ZONE], "timetable": WEEKLY,
          "calendar": {"terms": [{"name": "Autumn", "start": "2026-09-01", "end": "2026-12-18"}]}}

BAD_MODELS = [
    # (model, data, one fact the error message states)
    (TrustSettings, {"name": "T", "timezone": "Europe/Londn"}, "'Europe/Londn' is not a known time zone"),
    (Zone, {**ZONE, "cidrs": ["10.0.0.0/8", "10.0.0.300/24"]}, "[1] '10.0.0.300/24' is not a network"),
    (Zone, {**ZONE, "vlans": [4095]}, "less than or equal to 4094"),
    (Zone, {**ZONE, "colour": "red"}, "Extra inputs are not permitted"),
    (Period, {**PERIOD, "end": "08:00"}, "period 'P1' ends (08:00:00) before it starts (09:00:00)"),
    (Period, {**PERIOD, "kind": "teaching"}, "Input should be 'contact' or 'non-contact'"),
    (Timetable, {**WEEKLY, "day_end": "08:00"}, "day_end must be after day_start"),
    (Timetable, {"day_start": "08:30", "day_end": "16:00"}, "a weekly timetable needs 'days'"),
    (Timetable, {**WEEKLY, "rotation": "two-week"}, "a two-week timetable needs 'week_a' and 'week_b'"),
    (Timetable, TWO_WEEK, "a two-week timetable needs 'rotation_anchor' (a Monday of Week A)"),
    (Timetable, {**TWO_WEEK, "rotation_anchor": "2026-09-02"}, "rotation_anchor 2026-09-02 is not a Monday"),
    (Timetable, {**WEEKLY, "days": {"monday": [PERIOD, {**PERIOD, "name": "P2", "start": "09:30"}]}},
     "monday: periods 'P1' and 'P2' overlap"),
    (DateRange, {"start": "2026-10-30", "end": "2026-10-26"},
     "ends (2026-10-26) before it starts (2026-10-30)"),
    (School, {**SCHOOL, "id": "Oak Primary"}, "'Oak Primary' is not a lowercase id"),
    (School, {**SCHOOL, "zones": [ZONE, ZONE]}, "zone 'hall' is listed twice"),
    (Reservation, {"mac": "3c:52:82:10:00:01", "ip": "10.0.0.999"}, "'10.0.0.999' is not an IP address"),
    (Reservation, {"mac": "zz", "ip": "10.0.0.1"}, "'zz' is not a MAC address"),
    (ExemptionRule, {"name": "all", "reason": "r"},
     "exemption 'all' names no group, platform, zone or period"),
    (StaffPeriod, {"staff_id": "S1", "week": None, "weekday": "funday", "period": "P1", "kind": "contact"},
     "Input should be 'monday'"),
]


@pytest.mark.parametrize(("model", "data", "expected"), BAD_MODELS)
def test_bad_values_are_named(model, data, expected):
    messages = _error_texts(model, data)
    assert any(expected in m for m in messages), messages


GOOD_MODELS = [
    (Zone, {**ZONE, "cidrs": ["10.0.0.1/24", "2001:db8::/64"], "vlans": [1, 4094]}),
    (Period, PERIOD),
    (Timetable, WEEKLY),
    (Timetable, {**TWO_WEEK, "rotation_anchor": "2026-09-07"}),
    (School, SCHOOL),
    (ExemptionRule, {"name": "media", "reason": "lessons", "zones": ["media-suite"]}),
]


@pytest.mark.parametrize(("model", "data"), GOOD_MODELS)
def test_good_values_validate(model, data):
    model.model_validate(data)


def test_reservation_values_are_canonical():
    reservation = Reservation(mac="3C-52-82-10-00-01", ip="2001:DB8::0010")
    assert (reservation.mac, reservation.ip) == ("3c:52:82:10:00:01", "2001:db8::10")


def test_period_times_are_times():
    assert Period.model_validate(PERIOD).start == time(9, 0)


def test_trust_file_rejects_a_school_listed_twice():
    data = read_yaml(EXAMPLE)
    data["schools"].append(data["schools"][0])
    assert "school ids listed twice: ['oak-primary']" in " ".join(_error_texts(TrustFile, data))


def test_trust_file_defaults():
    data = read_yaml(EXAMPLE)
    for key in ("store", "listen", "capture", "retention_days"):
        data.pop(key, None)
    model = TrustFile.model_validate(data)
    defaults = (model.retention_days, model.store.idle_gap_seconds, model.listen.metrics)
    assert defaults == (90, 300, "127.0.0.1:9464")


def test_models_are_frozen():
    zone = Zone.model_validate(ZONE)
    with pytest.raises(ValidationError):
        zone.name = "other"


# --- strict values: what YAML's loose typing would otherwise turn into another rule ---------

STRICT = [
    # (model, data, the error pydantic reports for the one loose value)
    (TrustFile, "retention_days", True, "int_type"),  # `retention_days: yes` is not 1
    (TrustFile, "retention_days", "90", "int_type"),
    (TrustFile, "retention_days", 90.0, "int_type"),
    (Zone, "pupil_area", 1, "bool_type"),
    (Zone, "pupil_area", "true", "bool_type"),
    (Zone, "monitored", "no", "bool_type"),
    (Zone, "vlans", [True], "int_type"),
    (Zone, "vlans", ["110"], "int_type"),
    (Zone, "name", 110, "string_type"),
    (ExemptionRule, "clause", 4.1, "string_type"),  # `clause: 4.1` unquoted
    (Period, "start", 540, "value_error"),  # `start: 9:00` unquoted: YAML's base-60 integer
    (Period, "start", "09:00:00+01:00", "value_error"),
    (DateRange, "start", 1788393600, "value_error"),  # seconds since 1970 are not a date
    (DateRange, "start", "2026-02-30", "value_error"),
]


def _strict_data(model, field, value):
    base = {
        TrustFile: lambda: read_yaml(EXAMPLE),
        Zone: lambda: dict(ZONE),
        ExemptionRule: lambda: {"name": "m", "reason": "r", "groups": ["marketing"]},
        Period: lambda: dict(PERIOD),
        DateRange: lambda: {"start": "2026-10-26", "end": "2026-10-30"},
    }[model]()
    base[field] = value
    return base


@pytest.mark.parametrize(("model", "field", "value", "kind"), STRICT)
def test_loose_values_are_refused(model, field, value, kind):
    with pytest.raises(ValidationError) as info:
        model.model_validate(_strict_data(model, field, value))
    [error] = info.value.errors()
    assert (error["loc"][0], error["type"]) == (field, kind)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("08:00", "is not a span of time"),
        ("15:00-08:00", "ends before it starts"),
        ("08:00-25:00", "is not a time of day"),
        (800, "is not a span of time"),
    ],
)
def test_pupil_hours_are_spans_of_time(value, message):
    from monitor.config.models import PupilHours

    with pytest.raises(ValueError, match=message):
        PupilHours.model_validate({"weekdays": {"monday": [value]}})


def test_pupil_hours_per_weekday_and_date():
    from datetime import time

    from monitor.config.models import PupilHours

    hours = PupilHours.model_validate({"weekdays": {"tuesday": ["08:00-16:00"]},
                                       "dates": [{"date": "2026-12-18", "hours": []}]})
    assert hours.weekdays["tuesday"] == [(time(8), time(16))]
    assert (hours.dates[0].date, hours.dates[0].hours) == (date(2026, 12, 18), [])
