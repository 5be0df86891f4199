"""Reading the files a config names: the YAML file and the CSV exports beside it.

Each CSV reader returns what it could read together with every problem, each
naming the file, the line and the field (``devices.csv:3: mac: ... already listed
on line 2``), so one run of `check-config` lists them all.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.messages import format_loc, shown_path, validation_message
from monitor.config.models import InventoryDevice, StaffPeriod
from monitor.config.values import WEEKDAYS, normalise_mac
from monitor.config.yamlfile import MAX_EXPANDED_VALUES, YamlDocument, expanded_size, parse_yaml, path_to
from monitor.errors import ConfigError

CsvRow = tuple[int, dict[str, str]]  # (line number, stripped cells by column)


MAX_FILE_BYTES = 16 * 1024 * 1024  # far above any trust's config or MIS export


class UnreadableFile(Exception):
    """A file a config names that cannot be read as it is: `reason` says why, in a few words."""

    def __init__(self, reason: str, missing: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; UnreadableFile otherwise.

    Opened without blocking and checked on the open descriptor, so `inventory: /dev/zero` or a
    FIFO is refused at once instead of hanging the daemon's start."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc), isinstance(exc, FileNotFoundError)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise UnreadableFile(f"not a regular file ({kind})")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise UnreadableFile(exc.strerror or str(exc)) from None
    if len(data) > limit:
        raise UnreadableFile(f"larger than {limit // (1024 * 1024)} MiB (is this the right file?)")
    return data


def read_yaml_document(path: Path) -> YamlDocument:
    """The parsed YAML with the line of every value; ConfigError naming the file (and line)
    when it cannot be read, is not YAML, repeats a key or expands beyond any real config."""
    shown = shown_path(path)
    try:
        data = read_bounded(path)
    except UnreadableFile as exc:
        problem = "no such file" if exc.missing else f"cannot read: {exc}"
        raise ConfigError([f"{shown}: {problem}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{shown}:{line}: cannot read: not UTF-8 text"]) from None
    try:
        document = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())
        raise ConfigError([f"{where}: not valid YAML: {problem}"]) from None
    except RecursionError:
        raise ConfigError([f"{shown}: not valid YAML: nested too deeply"]) from None
    if document.duplicates:
        errors = []
        for dup in document.duplicates:
            where = format_loc([*(path_to(document.data, dup.container) or []), dup.key])
            errors.append(f"{shown}:{dup.line}: {where}: key listed twice (first on line "
                          f"{dup.first_line}); the last would silently win")
        raise ConfigError(errors)
    if expanded_size(document.data) > MAX_EXPANDED_VALUES:
        raise ConfigError([f"{shown}: aliases expand to more than {MAX_EXPANDED_VALUES:,} values "
                           "(an alias of its own parent, or aliases of aliases)"])
    return document


def read_yaml(path: Path) -> Any:
    """The parsed YAML document; ConfigError naming the file (and line:column) otherwise."""
    return read_yaml_document(path).data


def read_csv_rows(path: Path, required: list[str], label: str) -> tuple[list[CsvRow], list[str]]:
    """Non-blank rows of a CSV with their line numbers, or errors naming the file."""
    shown = shown_path(path)
    try:
        data = read_bounded(path)
    except UnreadableFile as exc:
        return [], [f"{shown}: cannot read {label}: {exc}"]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # a spreadsheet's "CSV" is often Windows-1252: name the line, never a traceback
        line = data[: exc.start].count(b"\n") + 1
        return [], [f"{shown}:{line}: cannot read {label}: not UTF-8 text (save it as CSV UTF-8)"]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    header: list[str] = []
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            return [], [f"{shown}:1: {label} header lacks column(s) {', '.join(missing)}"]
        for row in reader:
            cleaned = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k}
            if not any(cleaned.values()):
                continue
            rows.append((reader.line_num, cleaned))
    except csv.Error as exc:
        # a field over csv's 128 KiB limit: name the line, and the column when it can tell
        return [], [_csv_problem(shown, text, reader, header, label, exc)]
    return rows, []


def _csv_problem(shown: str, text: str, reader: csv.DictReader[str], header: list[str], label: str,
                 exc: csv.Error) -> str:
    """What csv refused, as 'file:line: column: problem'."""
    if "field larger than field limit" not in str(exc):
        return f"{shown}:{reader.reader.line_num}: cannot read {label}: {exc}"
    limit = csv.field_size_limit()
    says = f"longer than {limit // 1024} KiB (is this the right file?)"
    line = reader.reader.line_num  # where csv gave up: an unquoted field's own line
    cells = (text.splitlines()[line - 1 : line] or [""])[0].split(",")
    column = next((i for i, cell in enumerate(cells) if len(cell) > limit), None)
    if column is None:  # a quoted field that ran on over many lines: where its record began
        return f"{shown}:{reader.line_num + 1}: a field: {says}"
    name = header[column] if line > 1 and column < len(header) else "a field"
    return f"{shown}:{line}: {name}: {says}"


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


def read_staff_rows(path: Path) -> tuple[list[tuple[int, StaffPeriod]], list[str]]:
    """The MIS staff timetable with each row's line: weekdays may be abbreviated (Mon), weeks are
    A, B or empty, and one person's period is listed once (a second row would silently win)."""
    shown = shown_path(path)
    rows, errors = read_csv_rows(
        path, ["staff_id", "week", "weekday", "period", "kind"], "staff timetable"
    )
    out = []
    first_line: dict[tuple[str, str | None, str, str], int] = {}
    for line, row in rows:
        weekday = row["weekday"].lower()
        if weekday[:3] in {d[:3] for d in WEEKDAYS}:
            weekday = next(d for d in WEEKDAYS if d.startswith(weekday[:3]))
        week = row["week"].upper() or None
        try:
            period = StaffPeriod.model_validate({
                "staff_id": row["staff_id"], "week": week, "weekday": weekday,
                "period": row["period"], "kind": row["kind"].lower(),
            })
        except ValidationError as exc:
            for err in exc.errors():
                errors.append(f"{shown}:{line}: {validation_message(err)}")
            continue
        if week not in (None, "A", "B"):
            errors.append(f"{shown}:{line}: week: {row['week']!r} is not A, B or empty")
            continue
        key = (period.staff_id, week, period.weekday, period.period)
        if key in first_line:
            errors.append(f"{shown}:{line}: {period.staff_id} {period.weekday} {period.period!r}"
                          f"{f' (week {week})' if week else ''} already listed on line {first_line[key]}")
            continue
        first_line[key] = line
        out.append((line, period))
    return out, errors


def read_staff_periods(path: Path) -> tuple[list[StaffPeriod], list[str]]:
    """The MIS staff timetable's rows (see `read_staff_rows`)."""
    rows, errors = read_staff_rows(path)
    return [period for _, period in rows], errors


def read_login_rows(path: Path) -> tuple[list[tuple[int, str, str]], list[str]]:
    """(line, lower-cased login, staff id) from the directory's export; logins compare
    case-insensitively, so 'JSmith' after 'jsmith' is a second row for one login."""
    shown = shown_path(path)
    rows, errors = read_csv_rows(path, ["login", "staff_id"], "login map")
    out: list[tuple[int, str, str]] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        login, staff_id = row["login"].lower(), row["staff_id"]
        if not login or not staff_id:
            errors.append(f"{shown}:{line}: login and staff_id are both needed")
        elif login in first_line:
            errors.append(
                f"{shown}:{line}: login: {row['login']!r} already listed on line {first_line[login]}")
        else:
            first_line[login] = line
            out.append((line, login, staff_id))
    return out, errors


def read_logins(path: Path) -> tuple[dict[str, str], list[str]]:
    """Proxy login -> staff id (see `read_login_rows`)."""
    rows, errors = read_login_rows(path)
    return {login: staff_id for _, login, staff_id in rows}, errors
