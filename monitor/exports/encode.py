"""sessions.csv and sessions.jsonl, written in one pass over the sessions.

Both come from the writer that `monitor.store.ecs` generates from the session
field table: the JSON line is byte for byte ``json.dumps(record, ensure_ascii=False)``
of the ECS record, and the CSV row has the same columns in the same order, lists
flattened for a spreadsheet. An export writes a month of a school (100,000
sessions and more), so the repeating parts of a record are encoded once.

An export knows its school's time zone, so after the ECS fields (which keep
their UTC times and places, for tools that read them) it adds `LOCAL_FIELDS`:
the session's start and end in local time, ISO 8601 with the UTC offset, as a
principal reads a timetable. `social.minutes` (in the ECS table) is the time
between them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.exports.pseudonyms import Labeller, identity
from monitor.exports.sealed import ExportWriter
from monitor.store.ecs import ECS_FIELDS, make_writer
from monitor.store.sessions import Session

LOCAL_FIELDS = ("social.local_start", "social.local_end")  # the export's own: need the school's zone
EXPORT_FIELDS = (*ECS_FIELDS, *LOCAL_FIELDS)  # sessions.csv's columns, sessions.jsonl's keys, in order
OFFSET_STEP = 900  # seconds: every zone's offset changes on a quarter hour of UTC
OFFSET_CACHE = 4096


class LocalClock:
    """Epoch seconds as local ISO 8601 text to the second (`2026-11-02T11:30:00+00:00`).

    One zoneinfo lookup per quarter hour of UTC, then arithmetic: a month's export
    turns 200,000 times into text."""

    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self._offsets: dict[int, tuple[int, str]] = {}
        self._days: dict[int, str] = {}

    def _offset(self, step: int) -> tuple[int, str]:
        found = self._offsets.get(step)
        if found is None:
            moment = datetime.fromtimestamp(step * OFFSET_STEP, UTC).astimezone(self.tz)
            delta = moment.utcoffset() or timedelta(0)
            seconds = int(delta.total_seconds())
            sign, rest = ("-", -seconds) if seconds < 0 else ("+", seconds)
            found = (seconds, f"{sign}{rest // 3600:02d}:{rest % 3600 // 60:02d}")
            if len(self._offsets) >= OFFSET_CACHE:
                self._offsets.clear()
            self._offsets[step] = found
        return found

    def text(self, ts: float) -> str:
        whole = math.floor(ts)
        offset, suffix = self._offset(whole // OFFSET_STEP)
        day, rest = divmod(whole + offset, 86400)
        day_text = self._days.get(day)
        if day_text is None:
            day_text = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
            if len(self._days) >= OFFSET_CACHE:
                self._days.clear()
            self._days[day] = day_text
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{day_text}T{hours:02d}:{minutes:02d}:{seconds:02d}{suffix}"


SessionEncoder = Callable[[Session, str, str | None, str | None, int | None], tuple[str, tuple]]


def session_encoder() -> SessionEncoder:
    """`(session, device, mac, owner, session_id)` -> (JSON line with its newline, CSV row), fresh caches."""
    return make_writer(json_style="spaced", csv=True, labelled=True, newline=True)


def write_sessions(
    writer: ExportWriter,
    sessions: Iterable[Session],
    *,
    labels: Labeller = identity,
    observe: Callable[[Session, str, str | None], None] | None = None,
    extra: Any = None,
    tz: ZoneInfo | None = None,
) -> int:
    """sessions.csv and sessions.jsonl in one pass; `labels` gives (device, MAC, owner) as shown,
    `tz` the school's time zone for the local times (UTC if not given).

    `extra` adds columns after the ECS ones (`monitor.exports.reviews.ReviewColumns`: `columns`,
    `add(session, line, row)` giving both back with its values).

    The store's session id would link a pseudonymised export back to the store and to
    other exports: only an identified export (`labels` is `identity`) carries it."""
    n = 0
    encode = session_encoder()
    local = LocalClock(tz or ZoneInfo("UTC")).text
    show_ids = labels is identity
    with writer.open_text("sessions.csv") as csv_fh, writer.open_text("sessions.jsonl") as json_fh:
        rows = csv.writer(csv_fh, lineterminator="\n")
        rows.writerow(EXPORT_FIELDS if extra is None else (*EXPORT_FIELDS, *extra.columns))
        write_row = rows.writerow
        write_json = json_fh.write
        for s in sessions:
            device, mac, owner = labels(s)
            line, row = encode(s, device, mac, owner, s.id if show_ids else None)
            start, end = local(s.first_seen), local(s.last_seen)
            row = (*row, start, end)
            # the ECS line ends '}\n': the local times follow its last field (their text needs no escaping)
            line = f'{line[:-2]}, "{LOCAL_FIELDS[0]}": "{start}", "{LOCAL_FIELDS[1]}": "{end}"}}\n'
            if extra is not None:
                line, row = extra.add(s, line, row)
            write_row(row)
            write_json(line)
            if observe is not None:
                observe(s, device, owner)
            n += 1
    return n


__all__ = ["EXPORT_FIELDS", "LOCAL_FIELDS", "LocalClock", "SessionEncoder", "session_encoder",
           "write_sessions"]
