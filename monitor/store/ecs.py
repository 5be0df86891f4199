"""The session's ECS record: one table of fields, from which every way of writing a session is built.

A session leaves the system as a JSON object (`Session.to_ecs()`, JSON lines in
`events` and in exports), a CSV row, a row of the principal's HTML report, and
straight out of SQLite as a ``json_object(...)`` projection. All of them come
from `FIELDS`: each field's ECS name, how to read its value from a `Session`,
its kind (how it is written as JSON and in a spreadsheet), its SQL expression
over a ``sessions`` row and, if the report shows it, its text there. Adding a
field is one row here; tests/store/test_ecs.py holds the four writers together.

The writers run for every session of a month's export, so they are generated
once from the table as Python source (as `dataclasses` builds ``__init__``), not
interpreted per row. Values that repeat from session to session (the place and
period of a school day, the flags, the signals) are encoded once per distinct
run and cached, in caches bounded whatever the data.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from json.encoder import encode_basestring  # what json.dumps(..., ensure_ascii=False) uses for a str
from typing import Any, Literal

# time: epoch seconds, written as ISO 8601 UTC with milliseconds; count: an int, never null;
# number: a float, never null; int, text, bool: may be null; strs: a tuple of strings;
# flags: a tuple of Flag; exemption: one or null.
Kind = Literal["time", "count", "number", "int", "text", "bool", "strs", "flags", "exemption"]

OUTSIDE = "Outside timetable"  # the report's name for a session outside any period
HIDDEN = "Destination hidden"  # the report's name for a session with no platform (social.obscured_by)
FLAG_LABELS = {"contact_time": "Contact time", "pupil_area": "Pupil area"}


def _iso_sql(column: str) -> str:
    """SQLite's `iso_ms`: rounded to the microsecond, then cut to the millisecond."""
    millis = f"(CAST(round({column} * 1000000.0) AS INTEGER) / 1000)"
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', {millis} / 1000.0, 'unixepoch')"


def _json_bool_sql(column: str) -> str:
    return f"CASE {column} WHEN 1 THEN json('true') WHEN 0 THEN json('false') END"


def _csv_list_sql(column: str) -> str:
    """A comma-separated column of fixed tokens as a JSON array."""
    return (f"CASE WHEN {column} = '' THEN json_array() "
            f"ELSE json('[\"' || replace({column}, ',', '\",\"') || '\"]') END")


def minutes(first_seen: float, last_seen: float) -> float:
    """Minutes from first to last sighting, to the hundredth (half up), from the same integer
    nanoseconds as `event.duration`: SQLite's `_MINUTES_SQL` gives the same float."""
    nanos = round((last_seen - first_seen) * 1e9)
    return (nanos + 300_000_000) // 600_000_000 / 100


_MINUTES_SQL = ("((CAST(round((last_seen - first_seen) * 1000000000.0) AS INTEGER) + 300000000) "
                "/ 600000000) / 100.0")


@dataclass(frozen=True, slots=True)
class SessionField:
    """One field of the session's ECS record."""

    name: str  # the ECS name: JSON key and CSV column
    value: str  # Python over `s`, a Session: the field's value
    kind: Kind
    sql: str  # SQLite over a `sessions` row, giving the same JSON value
    label: str | None = None  # an export may show another value (an alias): the parameter that carries it
    html: str | None = None  # Python over `v` (the value), `s` and `tz`: its text in the report's table
    shared: bool = False  # the same for many sessions in a row: encoded once per distinct run


FIELDS: tuple[SessionField, ...] = (
    SessionField("event.start", "s.first_seen", "time", _iso_sql("first_seen"),
                 html="datetime.fromtimestamp(v, tz).strftime('%a %d %b %Y %H:%M')"),
    SessionField("event.end", "s.last_seen", "time", _iso_sql("last_seen"),
                 html="datetime.fromtimestamp(v, tz).strftime('%H:%M')"),
    SessionField("event.duration", "round((s.last_seen - s.first_seen) * 1e9)", "count",  # ECS: nanoseconds
                 "CAST(round((last_seen - first_seen) * 1000000000.0) AS INTEGER)"),
    SessionField("host.id", "s.device", "text", "device", label="device", html="v"),
    SessionField("host.mac", "s.device_mac", "text", "device_mac", label="mac"),
    SessionField("host.type", "s.device_kind", "text", "device_kind"),
    SessionField("user.id", "s.owner", "text", "owner", label="owner", html="v"),
    SessionField("social.session_id", "s.id", "int", "id", label="session_id"),
    SessionField("social.platform", "s.platform or None", "text", "NULLIF(platform, '')", shared=True,
                 html="s.platform_name or v or HIDDEN"),
    SessionField("social.platform_name", "s.platform_name", "text", "platform_name", shared=True),
    SessionField("social.category", "s.category", "text", "category", shared=True),
    SessionField("social.school", "s.school", "text", "school", shared=True),
    SessionField("social.zone", "s.zone", "text", "zone", shared=True, html="v"),
    SessionField("social.zone_kind", "s.zone_kind", "text", "zone_kind", shared=True),
    SessionField("social.pupil_area", "s.pupil_area", "bool", _json_bool_sql("pupil_area"), shared=True),
    SessionField("social.local_date", "s.local_date", "text", "local_date", shared=True),
    SessionField("social.week", "s.week", "text", "week", shared=True),
    SessionField("social.period", "s.period", "text", "period", shared=True, html="v or OUTSIDE"),
    SessionField("social.period_kind", "s.period_kind", "text", "period_kind", shared=True),
    SessionField("social.flagged", "bool(s.flags) and s.exemption is None", "bool",
                 _json_bool_sql("flagged"), shared=True, html="v"),
    SessionField("social.flags", "s.flags", "flags", "json(flags)", shared=True,
                 html="'; '.join(f'{FLAG_LABELS.get(f.name, f.name)} ({f.clause})' for f in v)"),
    SessionField("social.exemption", "s.exemption", "exemption", "json(exemption)", shared=True,
                 # a neutral label ("exempt (clause 4.1)", monitor.exports.minimise) already names its clause
                 html="((f'{v.name} ({v.clause})' if v.clause and v.clause not in v.name else v.name) "
                      "if v else '')"),
    SessionField("social.probably_teaching", "s.probably_teaching", "bool",
                 _json_bool_sql("probably_teaching"), shared=True),
    SessionField("social.signals", "s.signals", "strs", _csv_list_sql("signals"), shared=True),
    SessionField("social.roles", "s.roles", "strs", _csv_list_sql("roles"), shared=True),
    SessionField("social.obscured_by", "s.obscured_by", "strs", _csv_list_sql("obscured_by"), shared=True),
    SessionField("social.observations", "s.observations", "count", "observations"),
    SessionField("social.hostnames", "s.hostnames", "strs", "json(hostnames)", html="', '.join(v)"),
    # last, so the columns before it keep their places: first to last sighting, to 0.01 minute
    SessionField("social.minutes", "minutes(s.first_seen, s.last_seen)", "number", _MINUTES_SQL,
                 html="f'{v:g}'"),
)

ECS_FIELDS = tuple(f.name for f in FIELDS)  # the keys of `Session.to_ecs()`, and the CSV columns in order
LABELS = ("device", "mac", "owner", "session_id")  # the parameters of a labelled writer, in this order

# One SQLite expression giving each session's JSON line: byte for byte what `events --format jsonl`
# prints; it parses to `Session.to_ecs()` (flags and exemption come out with their keys sorted).
ECS_JSON_SQL = "json_object(" + ", ".join(f"'{f.name}', {f.sql}" for f in FIELDS) + ")"


# --- values ---------------------------------------------------------------------------------------

_day_text: dict[int, str] = {}


def iso_ms(ts: float) -> str:
    """ISO 8601 UTC with milliseconds, by arithmetic and a per-day cache: `iso_utc`'s text, faster."""
    whole = math.floor(ts)
    micros = round((ts - whole) * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    day, rest = divmod(whole, 86400)
    text = _day_text.get(day)
    if text is None:
        text = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        if len(_day_text) < 20000:
            _day_text[day] = text
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{text}T{hours:02d}:{minutes:02d}:{seconds:02d}.{micros // 1000:03d}Z"


_dumps = json.JSONEncoder(ensure_ascii=False).encode  # default separators, as json.dumps writes values

# Per kind, as Python source: `@v` is the field's value, `@t` its ISO time (iso_ms, computed once).
# _JSON: pieces of an f-string; _CACHED_JSON: containers, encoded once per distinct value.
_JSON = {
    "time": '"{@t}"',
    "count": "{@v}",
    "number": "{@v!r}",
    "int": "{(NULL if @v is None else @v)}",
    "text": "{(NULL if @v is None else quote(@v))}",
    "bool": "{(NULL if @v is None else TRUE if @v else FALSE)}",
}
_CACHED_JSON = {
    "strs": "dumps(list(@v))",
    "flags": "dumps([f.to_dict() for f in @v])",
    "exemption": "dumps(@v.to_dict())",
}
_PYTHON = {"time": "@t", "count": "@v", "number": "@v", "int": "@v", "text": "@v", "bool": "@v",
           "strs": "list(@v)",
           "flags": "[f.to_dict() for f in @v]", "exemption": "(@v.to_dict() if @v else None)"}
_CSV = {"time": "@t", "count": "@v", "number": "@v", "int": "@v", "text": "cell(@v)",
        "bool": "(None if @v is None else TRUE if @v else FALSE)", "strs": "cell(SEMI.join(@v))",
        "flags": "SEMI.join([f'{f.name} ({f.clause})' for f in @v])",
        "exemption": "(cell(@v.name) if @v else '')"}

FORMULA_START = frozenset("=+-@\t\r")  # what a spreadsheet reads as the start of a formula (OWASP)


def csv_cell(value: str | None) -> str | None:
    """A text cell no spreadsheet runs: one starting like a formula gets a leading apostrophe (OWASP's
    advice on CSV injection). A monitored device chooses its hostnames and a proxy user their
    sign-in, so `=HYPERLINK(...).youtube.com` must reach the principal's spreadsheet as text."""
    if value and value[0] in FORMULA_START:
        return "'" + value
    return value


_NAMESPACE = {"iso_ms": iso_ms, "minutes": minutes, "quote": encode_basestring, "dumps": _dumps,
              "datetime": datetime,
              "FLAG_LABELS": FLAG_LABELS, "OUTSIDE": OUTSIDE, "HIDDEN": HIDDEN, "NULL": "null",
              "TRUE": "true", "FALSE": "false", "SEMI": ";", "cell": csv_cell}
CACHE_LIMIT = 8192


def _fill(template: str, i: int) -> str:
    return template.replace("@v", f"v{i}").replace("@t", f"t{i}")


def _fill_html(expression: str, i: int) -> str:
    """A report expression of `v` (a whole name) for field i."""
    return re.sub(r"(?<![\w.])v(?!\w)", f"v{i}", expression)


def _keep(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= CACHE_LIMIT:  # bounded, whatever the data
        cache.clear()
    cache[key] = value
    return value


class _Source:
    """The Python source of one generated factory: `factory(keep)` returns a fresh writer."""

    def __init__(self, params: str) -> None:
        self.lines = ["def factory(keep):"]
        self.params = params

    def add(self, line: str, depth: int = 2) -> None:
        self.lines.append("    " * depth + line)

    def read(self, fields: list[int], labelled: bool, times: bool = True) -> None:
        for i in fields:
            f = FIELDS[i]
            self.add(f"v{i} = {f.label if labelled and f.label else f.value}")
            if f.kind == "time" and times:
                self.add(f"t{i} = iso_ms(v{i})")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _runs() -> list[list[int]]:
    """Field indexes grouped: consecutive shared fields form one run, every other field is alone."""
    groups: list[list[int]] = []
    for i, f in enumerate(FIELDS):
        if f.shared and groups and groups[-1][-1] == i - 1 and FIELDS[i - 1].shared:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _json_piece(src: _Source, i: int, depth: int, cached: bool) -> str:
    """Statements leaving field i's JSON text in `j{i}` if it is a container; its f-string piece."""
    f = FIELDS[i]
    if f.kind in _JSON:
        return _fill(_JSON[f.kind], i)
    encode = _fill(_CACHED_JSON[f.kind], i)
    if f.kind == "exemption":
        src.add(f"j{i} = NULL", depth)
        src.add(f"if v{i} is not None:", depth)
        depth += 1
    if cached:
        src.add(f"j{i} = cache{i}.get(v{i})", depth)
        src.add(f"if j{i} is None:", depth)
        src.add(f"j{i} = keep(cache{i}, v{i}, {encode})", depth + 1)
    else:
        src.add(f"j{i} = {encode}", depth)
    return f"{{j{i}}}"


def writer_source(*, json_style: str | None, csv: bool, labelled: bool, newline: bool = False) -> str:
    """Source of a writer `(s)`, or `(s, device, mac, owner, session_id)` when `labelled`, returning the
    JSON line, the CSV row (a tuple for `csv.writer`), or both as a pair.

    `json_style` "compact" separates the record's fields with "," and ":", "spaced" with ", " and ": "
    (as json.dumps does); values inside a field are always written as json.dumps writes them."""
    comma, colon = (", ", ": ") if json_style == "spaced" else (",", ":")
    src = _Source("s, " + ", ".join(LABELS) if labelled else "s")
    groups = _runs()
    for group in groups:
        if len(group) > 1 or FIELDS[group[0]].kind in _CACHED_JSON:
            src.add(f"cache{group[0]} = {{}}", 1)
    src.add(f"def write({src.params}):", 1)
    pieces: list[str] = []
    cells: list[str] = []
    for group in groups:
        src.read(group, labelled)
        if len(group) == 1:
            i = group[0]
            if json_style:
                pieces.append(f'"{FIELDS[i].name}"{colon}' + _json_piece(src, i, 2, True))
            cells.append(_fill(_CSV[FIELDS[i].kind], i))
            continue
        # a shared run: its JSON text and its CSV cells, made once per distinct run of values
        first, key = group[0], "(" + ", ".join(f"v{i}" for i in group) + ",)"
        src.add(f"r{first} = cache{first}.get({key})")
        src.add(f"if r{first} is None:")
        run_cells = ", ".join(_fill(_CSV[FIELDS[i].kind], i) for i in group)
        run_json = "None"
        if json_style:
            parts = [f'"{FIELDS[i].name}"{colon}' + _json_piece(src, i, 3, False) for i in group]
            run_json = "f'''" + comma.join(parts) + "'''"
            pieces.append(f"{{r{first}[0]}}")
        src.add(f"r{first} = keep(cache{first}, {key}, ({run_json}, ({run_cells},)))", 3)
        cells.append(f"*r{first}[1]")
    line = "f'''{{" + comma.join(pieces) + "}}" + ("\\n" if newline else "") + "'''"
    row = "(" + ", ".join(cells) + ",)"
    result = f"{line}, {row}" if json_style and csv else (line if json_style else row)
    src.add(f"return {result}")
    src.add("return write", 1)
    return src.text()


def _dict_source(labelled: bool, report: bool) -> str:
    """Source of the ECS record as a dict (`to_ecs`), or of the report's cells (fields with `html`)."""
    src = _Source("s, " + ", ".join(LABELS) if labelled else "s")
    src.add(f"def write({src.params}{', tz' if report else ''}):", 1)
    chosen = [i for i, f in enumerate(FIELDS) if f.html or not report]
    src.read(chosen, labelled, times=not report)
    if report:
        items = [f'"{FIELDS[i].name}": ' + _fill_html(FIELDS[i].html or "v", i) for i in chosen]
    else:
        items = [f'"{FIELDS[i].name}": ' + _fill(_PYTHON[FIELDS[i].kind], i) for i in chosen]
    src.add("return {" + ", ".join(items) + "}")
    src.add("return write", 1)
    return src.text()


def _build(name: str, source: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = dict(_NAMESPACE)
    exec(compile(source, f"<monitor.store.ecs {name}>", "exec"), namespace)  # the table, compiled once
    return namespace["factory"](_keep)


def make_writer(*, json_style: str | None, csv: bool, labelled: bool, newline: bool = False
                ) -> Callable[..., Any]:
    """A writer generated from `FIELDS` (see `writer_source`), with caches of its own."""
    source = writer_source(json_style=json_style, csv=csv, labelled=labelled, newline=newline)
    return _build("writer", source)


# The shared writers, each generated on first use (`events --format jsonl` needs none of them):
ecs_dict: Callable[..., dict[str, Any]]  # (s): `Session.to_ecs()`
labelled_ecs_dict: Callable[..., dict[str, Any]]  # (s, device, mac, owner, session_id): relabelled
report_cells: Callable[..., dict[str, Any]]  # (s, device, mac, owner, session_id, tz): the report's cells
json_line: Callable[..., str]  # (s): `Session.to_json()`, compact
csv_cells: Callable[..., tuple[Any, ...]]  # (s): the CSV row, for csv.writer

_GENERATED: dict[str, Callable[[], Callable[..., Any]]] = {
    "ecs_dict": lambda: _build("ecs_dict", _dict_source(False, False)),
    "labelled_ecs_dict": lambda: _build("labelled_ecs_dict", _dict_source(True, False)),
    "report_cells": lambda: _build("report_cells", _dict_source(True, True)),
    "json_line": lambda: make_writer(json_style="compact", csv=False, labelled=False),
    "csv_cells": lambda: make_writer(json_style=None, csv=True, labelled=False),
}


def __getattr__(name: str) -> Any:
    """Build a shared writer the first time it is asked for; later lookups find it in the module."""
    build = _GENERATED.get(name)
    if build is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    writer = globals()[name] = build()
    return writer

__all__ = [
    "ECS_FIELDS",
    "ECS_JSON_SQL",
    "FIELDS",
    "FLAG_LABELS",
    "HIDDEN",
    "OUTSIDE",
    "SessionField",
    "csv_cell",
    "csv_cells",
    "ecs_dict",
    "iso_ms",
    "json_line",
    "labelled_ecs_dict",
    "make_writer",
    "minutes",
    "report_cells",
    "writer_source",
]
