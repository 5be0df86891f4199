"""sessions.csv and sessions.jsonl, written in one pass over the sessions.

Both come from the writer that `monitor.store.ecs` generates from the session
field table: the JSON line is byte for byte ``json.dumps(record, ensure_ascii=False)``
of the ECS record, and the CSV row has the same columns in the same order, lists
flattened for a spreadsheet. An export writes a month of a school (100,000
sessions and more), so the repeating parts of a record are encoded once.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from typing import Any

from monitor.exports.pseudonyms import Labeller, identity
from monitor.exports.sealed import ExportWriter
from monitor.store.ecs import ECS_FIELDS, make_writer
from monitor.store.sessions import Session

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
) -> int:
    """sessions.csv and sessions.jsonl in one pass; `labels` gives (device, MAC, owner) as shown.

    `extra` adds columns after the ECS ones (`monitor.exports.reviews.ReviewColumns`: `columns`,
    `add(session, line, row)` giving both back with its values).

    The store's session id would link a pseudonymised export back to the store and to
    other exports: only an identified export (`labels` is `identity`) carries it."""
    n = 0
    encode = session_encoder()
    show_ids = labels is identity
    with writer.open_text("sessions.csv") as csv_fh, writer.open_text("sessions.jsonl") as json_fh:
        rows = csv.writer(csv_fh, lineterminator="\n")
        rows.writerow(ECS_FIELDS if extra is None else (*ECS_FIELDS, *extra.columns))
        write_row = rows.writerow
        write_json = json_fh.write
        for s in sessions:
            device, mac, owner = labels(s)
            line, row = encode(s, device, mac, owner, s.id if show_ids else None)
            if extra is not None:
                line, row = extra.add(s, line, row)
            write_row(row)
            write_json(line)
            if observe is not None:
                observe(s, device, owner)
            n += 1
    return n


__all__ = ["SessionEncoder", "session_encoder", "write_sessions"]
