"""Reading the files a config names: the YAML file and the CSV exports beside it.

Each CSV reader returns what it could read together with every problem, each
naming the file, the line and the field (``devices.csv:3: mac: ... already listed
on line 2``), so one run of `check-config` lists them all.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.messages import shown_path, validation_message
from monitor.config.models import WEEKDAYS, InventoryDevice, StaffPeriod, normalise_mac
from monitor.errors import ConfigError

CsvRow = tuple[int, dict[str, str]]  # (line number, stripped cells by column)


def read_yaml(path: Path) -> Any:
    """The parsed YAML document; ConfigError naming the file (and line:column) otherwise."""
    shown = shown_path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{shown}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{shown}: cannot read: {exc}"]) from None
    try:
        # libyaml's loader when present: a trust with thousands of zones loads 10x faster
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: not valid YAML: {problem}"]) from None


def read_csv_rows(path: Path, required: list[str], label: str) -> tuple[list[CsvRow], list[str]]:
    """Non-blank rows of a CSV with their line numbers, or errors naming the file."""
    shown = shown_path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [f"{shown}: cannot read {label}: {exc.strerror or exc}"]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # a spreadsheet's "CSV" is often Windows-1252: name the line, never a traceback
        line = data[: exc.start].count(b"\n") + 1
        return [], [f"{shown}:{line}: cannot read {label}: not UTF-8 text (save it as CSV UTF-8)"]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        return [], [f"{shown}:1: {label} header lacks column(s) {', '.join(missing)}"]
    rows = []
    for row in reader:
        cleaned = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k}
        if not any(cleaned.values()):
            continue
        rows.append((reader.line_num, cleaned))
    return rows, []


def read_inventory(path: Path, school_ids: set[str]) -> tuple[list[InventoryDevice], list[str]]:
    """The device inventory: one device per MAC and per asset tag, each in a configured school."""
    shown = shown_path(path)
    rows, errors = read_csv_rows(path, ["mac", "asset_tag", "school", "kind"], "device inventory")
    devices: list[InventoryDevice] = []
    seen: dict[str, int] = {}
    tags: dict[str, int] = {}
    for line, row in rows:
        try:
            mac = normalise_mac(row["mac"])
        except ValueError as exc:
            errors.append(f"{shown}:{line}: mac: {exc}")
            continue
        if mac in seen:
            errors.append(f"{shown}:{line}: mac: {mac} already listed on line {seen[mac]}")
            continue
        seen[mac] = line
        if row["school"] not in school_ids:
            errors.append(f"{shown}:{line}: school: {row['school']!r} is not a configured school")
            continue
        if not row["asset_tag"]:
            errors.append(f"{shown}:{line}: asset_tag: empty")
            continue
        tag = row["asset_tag"]
        if tag in tags:
            errors.append(f"{shown}:{line}: asset_tag: {tag!r} already listed on line {tags[tag]}")
            continue
        tags[row["asset_tag"]] = line
        groups = tuple(g.strip() for g in re.split(r"[;|]", row.get("groups", "")) if g.strip())
        devices.append(
            InventoryDevice(
                mac=mac,
                asset_tag=row["asset_tag"],
                school=row["school"],
                kind=row["kind"] or "unknown",
                owner=row.get("owner") or None,
                groups=groups,
            )
        )
    return devices, errors


def read_staff_periods(path: Path) -> tuple[list[StaffPeriod], list[str]]:
    """The MIS staff timetable: weekdays may be abbreviated (Mon), weeks are A, B or empty."""
    shown = shown_path(path)
    rows, errors = read_csv_rows(
        path, ["staff_id", "week", "weekday", "period", "kind"], "staff timetable"
    )
    out = []
    for line, row in rows:
        weekday = row["weekday"].lower()
        if weekday[:3] in {d[:3] for d in WEEKDAYS}:
            weekday = next(d for d in WEEKDAYS if d.startswith(weekday[:3]))
        week = row["week"].upper() or None
        try:
            out.append(
                StaffPeriod(
                    staff_id=row["staff_id"],
                    week=week,
                    weekday=weekday,
                    period=row["period"],
                    kind=row["kind"].lower(),
                )
            )
        except ValidationError as exc:
            for err in exc.errors():
                errors.append(f"{shown}:{line}: {validation_message(err)}")
            continue
        if week not in (None, "A", "B"):
            errors.append(f"{shown}:{line}: week: {row['week']!r} is not A, B or empty")
    return out, errors


def read_logins(path: Path) -> tuple[dict[str, str], list[str]]:
    """Proxy login -> staff id, from the directory's export; logins compare case-insensitively."""
    shown = shown_path(path)
    rows, errors = read_csv_rows(path, ["login", "staff_id"], "login map")
    logins: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, row in rows:
        login, staff_id = row["login"].lower(), row["staff_id"]
        if not login or not staff_id:
            errors.append(f"{shown}:{line}: login and staff_id are both needed")
        elif login in logins:
            errors.append(
                f"{shown}:{line}: login: {row['login']!r} already listed on line {first_line[login]}")
        else:
            logins[login], first_line[login] = staff_id, line
    return logins, errors
