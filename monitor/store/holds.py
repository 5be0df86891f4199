"""Legal holds: an investigation (clause 3.3) keeps one device's or one person's sessions past retention.

A hold is a link of the hash chain, not a row beside it: a record of session 0
whose body is ``{"hold": {...}}`` (`hold_body`), placed and released the same way.
So placing, releasing or quietly removing a hold is as visible to `verify` as
any other change to the evidence, the central store receives it with the rest,
and the holds open at any moment are read back from the chain itself
(`read_holds`). Retention (`monitor.store.retention`) keeps every session an
open hold covers, and never compacts away the record of a hold still open.

Scope: a device hold covers the sessions of that device (its asset tag, or the
MAC of a device without one), whoever used it; a staff hold covers the sessions
whose owner is that person, on any device.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from monitor.errors import UserError
from monitor.store.chain import PURGE_SESSION, ChainHead
from monitor.store.entries import append_entry
from monitor.store.sessions import canonical_json

SCOPES = ("device", "staff")
CASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/:#-]{0,63}$")
_SCOPE_COLUMN = {"device": "device", "staff": "owner"}


class HoldError(UserError):
    """A hold that cannot be placed or released as asked: nothing is written."""


@dataclass(frozen=True, slots=True)
class Hold:
    """One hold as the chain holds it; `released_*` are set once a later record releases it."""

    case: str
    scope: str  # device | staff
    target: str  # asset tag (or MAC), or staff id
    reason: str
    placed_by: str
    placed_at: float
    record_id: int
    released_at: float | None = None
    released_by: str | None = None
    release_reason: str | None = None
    release_record_id: int | None = None

    @property
    def open(self) -> bool:
        return self.release_record_id is None


def check_case(case: str | None) -> str:
    """A case reference: 1 to 64 letters, digits and ``. _ / : # -`` or spaces, starting with one
    of the first two; anything else is refused with the rule."""
    text = (case or "").strip()
    if not CASE_RE.match(text):
        raise HoldError(f"--case {case!r}: give the case reference (1-64 letters, digits, spaces and "
                        "._/:#-, starting with a letter or digit)")
    return text


def check_reason(reason: str | None, what: str) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise HoldError(f"{what} needs --reason TEXT (recorded in the chain and the export log)")
    return text


def hold_body(action: str, case: str, reason: str, by: str, scope: str | None = None,
              target: str | None = None) -> str:
    """A hold record's body (canonical JSON): place names its scope and target, release only the case."""
    inner: dict[str, Any] = {"action": action, "case": case, "reason": reason, "by": by}
    if action == "place":
        inner.update(scope=scope, target=target)
    return canonical_json({"hold": inner})


def read_holds(con: Any) -> list[Hold]:
    """Every hold whose placing record is still in the chain, oldest first, with its release if any."""
    holds: list[Hold] = []
    rows = con.execute("SELECT id, recorded_at, body FROM records WHERE session_id = ? AND body LIKE "
                       "'{\"hold\":%' ORDER BY id", (PURGE_SESSION,))
    for rid, at, body in rows:
        try:
            h = json.loads(body)["hold"]
            action, case, reason, by = h["action"], str(h["case"]), str(h["reason"]), str(h["by"])
        except (ValueError, KeyError, TypeError):
            continue  # not a hold body the store writes: verify judges the record, not this list
        if action == "place" and h.get("scope") in SCOPES:
            holds.append(Hold(case, h["scope"], str(h.get("target")), reason, by, at, rid))
        elif action == "release":
            holds = [Hold(x.case, x.scope, x.target, x.reason, x.placed_by, x.placed_at, x.record_id, at, by,
                          reason, rid) if x.open and x.case == case else x for x in holds]
    return holds


def open_holds(con: Any) -> list[Hold]:
    return [h for h in read_holds(con) if h.open]


def held_clause(holds: list[Hold]) -> tuple[str, list[Any]]:
    """SQL over `sessions` true for a session any of `holds` covers ('0' for none), and its parameters."""
    if not holds:
        return "0", []
    parts = [f"{_SCOPE_COLUMN[h.scope]} = ?" for h in holds]
    return "(" + " OR ".join(parts) + ")", [h.target for h in holds]


def place(con: Any, start: ChainHead, now: float, *, case: str, scope: str, target: str, reason: str,
          by: str) -> Hold:
    """Place a hold (inside the caller's write transaction); the same case on the same target twice is
    refused."""
    if scope not in SCOPES:
        raise HoldError(f"hold scope {scope!r}: one of {', '.join(SCOPES)}")
    target = target.strip()
    if not target:
        raise HoldError(f"--{scope}: give the {'asset tag' if scope == 'device' else 'staff id'} to hold")
    for h in open_holds(con):
        if (h.case, h.scope, h.target) == (case, scope, target):
            raise HoldError(f"case {case} already holds {scope} {target} (since record {h.record_id})")
    rid = append_entry(con, hold_body("place", case, reason, by, scope, target), now).record_id
    return Hold(case, scope, target, reason, by, round(now, 6), rid)


def release(con: Any, start: ChainHead, now: float, *, case: str, reason: str, by: str) -> list[Hold]:
    """Release every open hold of `case` with one record; returns them (refused when none is open)."""
    held = [h for h in open_holds(con) if h.case == case]
    if not held:
        known = sorted({h.case for h in open_holds(con)})
        raise HoldError(f"--case {case}: no open hold has that case (open: {', '.join(known) or 'none'})")
    append_entry(con, hold_body("release", case, reason, by), now)
    return held


def count_held(con: Any, hold: Hold) -> int:
    """How many stored sessions a hold covers now."""
    clause, params = held_clause([hold])
    return int(con.execute(f"SELECT count(*) FROM sessions WHERE {clause}", params).fetchone()[0])


__all__ = ["CASE_RE", "SCOPES", "Hold", "HoldError", "check_case", "check_reason",
           "count_held", "held_clause", "hold_body", "open_holds", "place", "read_holds", "release"]
