"""Which sessions to read: one value that every reader (listings, exports, SAR) passes to the store.

The store turns it into one portable WHERE clause over indexed columns, so
a new criterion is added here once rather than in every method signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

TimeBound = datetime | float | int | None


def epoch(value: TimeBound) -> float | None:
    """Seconds since the epoch; a datetime must carry its time zone (local midnight is not UTC's)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a time zone")
        return value.timestamp()
    return float(value)


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Sessions whose first sighting is in [since, until), narrowed by whichever fields are set."""

    school: str | None = None
    since: TimeBound = None  # first sighting at or after
    until: TimeBound = None  # first sighting before
    flagged: bool | None = None  # True: flagged only; False: unflagged only
    device: str | None = None  # asset tag, else MAC
    owner: str | None = None  # pseudonymous staff id
    platform: str | None = None
    limit: int | None = None  # at most this many, oldest first

    def sql(self) -> tuple[str, list[Any]]:
        """The WHERE clause (empty, or starting with a space) and its parameters; `limit` is the caller's."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("school", self.school), ("flagged", self.flagged), ("device", self.device),
                              ("owner", self.owner), ("platform", self.platform)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(int(value) if isinstance(value, bool) else value)
        start, end = epoch(self.since), epoch(self.until)
        if start is not None:
            clauses.append("first_seen >= ?")
            params.append(start)
        if end is not None:
            clauses.append("first_seen < ?")
            params.append(end)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


EVERY_SESSION = SessionFilter()

__all__ = ["EVERY_SESSION", "SessionFilter", "TimeBound", "epoch"]
