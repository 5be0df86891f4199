"""The values a trust config is written in: weekdays, clock times, dates, MACs, host:port, and
the strict base model every config model derives from.

YAML reads loose values (`yes`, `9:00` as 540, dates as dates): these parsers take only
what a person meant, and say why in the one-line error the user reads.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic.functional_serializers import PlainSerializer

WEEKDAYS: tuple[Weekday, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
FlagName = Literal["contact_time", "pupil_area"]
FLAG_NAMES: tuple[FlagName, ...] = ("contact_time", "pupil_area")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
CLOCK_RE = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?$")
DAY_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
SPECIAL_CATEGORIES = ("dating", "political", "religion", "sexuality")  # UK GDPR art. 9 inference
TEACHING_ZONE_KINDS = frozenset({"classroom", "lab", "laboratory", "workshop", "studio", "sports-hall"})


def parse_clock(value: object) -> time:
    """A time of day written "HH:MM" (or "HH:MM:SS"). YAML 1.1 reads an unquoted 10:30 as the
    base-60 integer 630, which pydantic would take as 630 seconds (00:10:30): say so instead."""
    if isinstance(value, time):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{value!r} is not a time: write it in quotes as \"HH:MM\"")
    if isinstance(value, int):
        if value < 60:
            raise ValueError(f"{value} is a number, not a time: write it in quotes as \"HH:MM\"")
        written = "{}:{:02d}".format(*divmod(value, 60))
        raise ValueError(f"{value} is a number, not a time: YAML reads an unquoted {written} as "
                         f"{value}; write it in quotes, \"{written.zfill(5)}\"")
    match = CLOCK_RE.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a time of day (\"HH:MM\", 00:00 to 23:59)")
    hour, minute, second = match.groups()
    return time(int(hour), int(minute), int(second or 0))


def parse_day(value: object) -> date:
    """A date written YYYY-MM-DD (YAML gives a date, a quoted one a string): never a number of
    seconds since 1970, never a date with a time of day, never 2026-02-30."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        raise ValueError(f"{value} has a time of day: give the date only (YYYY-MM-DD)")
    if not isinstance(value, str) or not DAY_RE.match(value.strip()):
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date: {exc}") from None


def parse_hours(value: object) -> tuple[time, time]:
    """Pupil hours written "HH:MM-HH:MM" (a club from 15:30 to 16:30 is "15:30-16:30")."""
    if isinstance(value, tuple) and len(value) == 2:  # already parsed (a model copied in Python)
        return parse_clock(value[0]), parse_clock(value[1])
    if not isinstance(value, str) or value.count("-") != 1:
        raise ValueError(f"{value!r} is not a span of time: write \"HH:MM-HH:MM\", e.g. \"08:00-08:45\"")
    start, end = (parse_clock(part.strip()) for part in value.split("-"))
    if end <= start:
        raise ValueError(f"{value!r} ends before it starts")
    return start, end


Clock = Annotated[time, BeforeValidator(parse_clock)]
Day = Annotated[date, BeforeValidator(parse_day)]
Hours = Annotated[tuple[time, time], BeforeValidator(parse_hours),
                  PlainSerializer(lambda v: f"{v[0].isoformat()}-{v[1].isoformat()}")]


def split_hostport(value: str, allow_zero: bool = False) -> tuple[str, int]:
    """'127.0.0.1:9464' or '[::1]:8080' as (host, port); ValueError naming the value otherwise."""
    host, sep, port = value.rpartition(":")
    lowest = 0 if allow_zero else 1
    if not sep or not host or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    return host.strip("[]"), int(port)


def normalise_mac(value: str) -> str:
    """`AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` and `aa:bb:..` all become `aa:bb:cc:dd:ee:ff`."""
    hexdigits = re.sub(r"[^0-9a-fA-F]", "", value)
    if len(hexdigits) != 12:
        raise ValueError(f"{value!r} is not a MAC address")
    hexdigits = hexdigits.lower()
    return ":".join(hexdigits[i : i + 2] for i in range(0, 12, 2))


class Strict(BaseModel):
    """Unknown keys are errors (a misspelt key must not switch a rule off); values are frozen and
    strict: a boolean is never a number, a number never a string (see `parse_clock`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)
