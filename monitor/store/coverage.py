"""The coverage ledger in the store: what the monitor saw, interval by interval, in the sessions' chain.

The daemon closes one interval every `store.coverage_interval_seconds` (and a
shorter one when it stops) and appends it as a record of session 0 whose body
is ``{"coverage": {...}}`` (`coverage_body`), in the same hash chain as the
sessions: an insider who deletes or edits an interval to hide an outage breaks
the chain, and one who blanks it leaves a tombstone that `verify` accepts only
when a later purge's cutoff covers it. Time the daemon was not running has no
interval at all: a gap, which the exports report as not observed.

Intervals are purged with the sessions (`due_ids`, named by retention's purge record and blanked by it
inside the purge's transaction) and read back for an export by `ledger_view`.
Plain SQL over `records` and `checkpoints`, so no schema change is needed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.store import transactions
from monitor.store.entries import append_entry
from monitor.store.sessions import canonical_json

COVERAGE_PREFIX = '{"coverage":'  # canonical JSON of a coverage body begins so (its only key)
_IS_COVERAGE = "session_id = 0 AND body LIKE '{\"coverage\":%'"
_IS_PURGE = "session_id = 0 AND body LIKE '{\"purge\":%'"


@dataclass(slots=True)
class Interval:
    """One closed interval of the ledger; counts are increases over [start, end), in UTC seconds."""

    start: float
    end: float
    interfaces: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> up_seconds/packets/drops
    sensor: str = "off"  # live (interfaces), file (a capture file), off (not configured or not running)
    sensor_up_seconds: float = 0.0
    proxy: bool = False  # whether the proxy was configured to run
    proxy_up_seconds: float = 0.0
    parse_errors: int = 0
    observations: int = 0
    refused: int = 0  # observations the DPIA gate kept out of the store
    storage_refused: bool = False  # the gate was shut at some moment of the interval
    queue_dropped: int = 0
    obscured: dict[str, int] = field(default_factory=dict)  # kind -> flows hiding their destination

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def packets(self) -> int:
        return int(sum(i.get("packets", 0) for i in self.interfaces.values()))

    @property
    def kernel_drops(self) -> int:
        return int(sum(i.get("kernel_drops", 0) for i in self.interfaces.values()))

    def body(self) -> dict[str, Any]:
        return {"coverage": {
            "start": round(self.start, 3), "end": round(self.end, 3),
            "interfaces": {k: dict(v) for k, v in sorted(self.interfaces.items())},
            "sensor": self.sensor, "sensor_up_seconds": round(self.sensor_up_seconds, 3),
            "proxy": self.proxy, "proxy_up_seconds": round(self.proxy_up_seconds, 3),
            "parse_errors": self.parse_errors, "observations": self.observations,
            "refused": self.refused, "storage_refused": self.storage_refused,
            "queue_dropped": self.queue_dropped, "obscured": dict(sorted(self.obscured.items())),
        }}

    @classmethod
    def from_body(cls, body: str) -> Interval | None:
        """The interval a record's body holds; None when it is not a coverage body (or not one we read)."""
        try:
            c = json.loads(body)["coverage"]
            return cls(
                float(c["start"]), float(c["end"]),
                {str(k): {str(n): float(x) for n, x in v.items()}
                 for k, v in c.get("interfaces", {}).items()},
                str(c.get("sensor", "off")), float(c.get("sensor_up_seconds", 0)), bool(c.get("proxy")),
                float(c.get("proxy_up_seconds", 0)), int(c.get("parse_errors", 0)),
                int(c.get("observations", 0)), int(c.get("refused", 0)), bool(c.get("storage_refused")),
                int(c.get("queue_dropped", 0)), {str(k): int(v) for k, v in c.get("obscured", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def coverage_body(interval: Interval) -> str:
    """The record body of an interval: canonical JSON, hashed like a session's."""
    return canonical_json(interval.body())


def append(con: Any, interval: Interval, now: float) -> int:
    """Append an interval at the chain's head, inside the caller's write transaction; returns its id."""
    return append_entry(con, coverage_body(interval), now).record_id


def append_to_file(path: str | Path, interval: Interval, now: float) -> int:
    """Append an interval to the SQLite store at `path` on a connection of its own (the daemon's ledger
    thread; the store writer keeps its own): one IMMEDIATE transaction, so writers queue, never interleave."""
    with transactions.own_connection(path) as con:
        return append(con, interval, now)


def _due(cutoff: float, shipped_through: int | None) -> tuple[str, tuple[float, ...]]:
    if shipped_through is None:
        return f"{_IS_COVERAGE} AND recorded_at < ?", (cutoff,)
    # shipping to a central store: what it has not acknowledged keeps its content (as sessions do)
    return f"{_IS_COVERAGE} AND recorded_at < ? AND id <= ?", (cutoff, shipped_through)


def due_ids(con: Any, cutoff: float, shipped_through: int | None = None) -> list[int]:
    """The records of the intervals recorded before `cutoff`: retention blanks them with the sessions,
    and the purge record names them (its `entries`), so `verify` can tell them from an erased outage."""
    where, args = _due(cutoff, shipped_through)
    return [int(rid) for (rid,) in con.execute(f"SELECT id FROM records WHERE {where} ORDER BY id", args)]


def _cutoff(body: str) -> float:
    try:
        return float(json.loads(body)["purge"]["cutoff"])
    except (ValueError, KeyError, TypeError):
        return float("-inf")


@dataclass(slots=True)
class LedgerView:
    """What an export needs from the ledger: the intervals overlapping its period and the history's edges."""

    intervals: list[Interval]
    purged_before: float | None  # the latest retention cutoff: nothing before it is kept
    history_start: float | None  # the start of the oldest interval kept (None: no ledger yet)


def ledger_view(con: Any, since: float, until: float, slack: float = 86400.0) -> LedgerView:
    """The intervals overlapping [since, until), read inside the caller's snapshot."""
    rows = con.execute(f"SELECT body FROM records WHERE {_IS_COVERAGE} AND recorded_at >= ? AND "
                       "recorded_at < ? ORDER BY id", (since, until + slack))
    intervals = [i for i in _parsed(rows) if i.end > since and i.start < until]
    cutoffs = [row[0] for row in con.execute("SELECT cutoff FROM checkpoints")]
    cutoffs += [_cutoff(row[0]) for row in con.execute(f"SELECT body FROM records WHERE {_IS_PURGE}")]
    first = con.execute(f"SELECT body FROM records WHERE {_IS_COVERAGE} ORDER BY id LIMIT 1").fetchone()
    oldest = Interval.from_body(first[0]) if first else None
    kept = [c for c in cutoffs if c != float("-inf")]
    return LedgerView(intervals, max(kept) if kept else None, oldest.start if oldest else None)


def _parsed(rows: Iterator[tuple[str]]) -> Iterator[Interval]:
    for (body,) in rows:
        interval = Interval.from_body(body)
        if interval is not None:
            yield interval


def open_view(path: str | Path, since: float, until: float) -> LedgerView:
    """`ledger_view` of a store file, read-only (tests and tools; exports read inside their snapshot)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return ledger_view(con, since, until)
    finally:
        con.close()


__all__ = [
    "COVERAGE_PREFIX",
    "Interval",
    "LedgerView",
    "append",
    "append_to_file",
    "coverage_body",
    "due_ids",
    "ledger_view",
    "open_view",
]
