"""What the trust's central store has acknowledged of this gateway's chain, kept in the local store.

A gateway with ``store.central`` set must not lose to its own retention a record
the central store never received (issue 21, retention without loss). The shipper
notes in ``store_meta`` (name ``central_acknowledged``) the last record the
central store holds, after each batch it took; `monitor.store.retention` never
blanks a session that still has a record after it, and never compacts past it.
The note is written as "0" as soon as shipping is configured, so a purge that
runs before the first batch already holds everything back.

A store with no note (no central store configured) purges as it always did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.logsetup import get_logger
from monitor.store.transactions import own_connection

log = get_logger("monitor.store.acks")

META_NAME = "central_acknowledged"


def acknowledged(con: Any) -> int | None:
    """The last record the central store acknowledged; None when this store is not shipped anywhere."""
    row = con.execute("SELECT value FROM store_meta WHERE name = ?", (META_NAME,)).fetchone()
    if row is None:
        return None
    try:
        return int(row[0])
    except ValueError:
        # a note we cannot read holds everything back rather than letting retention guess
        log.error("store_ack_unreadable", value=row[0])
        return 0


def _write(path: Path, value: int, only_if_missing: bool, busy_timeout: float) -> None:
    with own_connection(path, busy_timeout) as con:
        current = acknowledged(con)
        if current is None:
            con.execute("INSERT INTO store_meta (name, value) VALUES (?, ?)", (META_NAME, str(value)))
        elif not only_if_missing:
            con.execute("UPDATE store_meta SET value = ? WHERE name = ?", (str(value), META_NAME))


def mark_shipped(path: str | Path, busy_timeout: float = 10.0) -> None:
    """Note that this store is shipped (acknowledged: nothing yet), unless a note is already there."""
    _write(Path(path), 0, True, busy_timeout)


def record_acknowledged(path: str | Path, record_id: int, busy_timeout: float = 10.0) -> None:
    """After a batch the central store took: it holds every record up to `record_id`."""
    _write(Path(path), record_id, False, busy_timeout)


__all__ = ["META_NAME", "acknowledged", "mark_shipped", "record_acknowledged"]
