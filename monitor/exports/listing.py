"""Listings on the command line (`events`): aliases by default, names only for a reason that is logged.

A listing shown on a terminal discloses as much as an export: `events --user S2005 --format csv`
is one person's month. So a listing is pseudonymised like an export: aliases numbered afresh for
each listing, no MAC, no session id, and the rows minimised as an export's (times to the minute,
the school's period kind, small exemptions unnamed, `host.type` only where it marks out no one).
A listing selected by one person or device is identified whatever its labels, and an identified
listing needs a reason and is entered in the export log, with whom it included, before its first
row is printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.config.loader import Config
from monitor.exports.log import LogEntry, append, current_user
from monitor.exports.minimise import per_school
from monitor.exports.pseudonyms import Labeller, Pseudonymiser, alias_labeller, identity
from monitor.exports.request import ExportError
from monitor.exports.subjects import Included
from monitor.store.base import SessionReader
from monitor.store.filter import SessionFilter, epoch
from monitor.store.sessions import Session


def check_listing(identified: bool, reason: str | None, selects_one: str | None) -> str | None:
    """Refuse, before anything is read, a listing that would identify someone without a reason."""
    reason = (reason or "").strip() or None
    if identified and reason is None:
        raise ExportError("--identified shows asset tags and staff ids and needs --reason TEXT "
                          "(e.g. --reason 'investigation 2026-07 under clause 3.3'); nothing was listed")
    if selects_one and not identified:
        raise ExportError(f"{selects_one} selects one person's or one device's sessions, which identifies "
                          "them whatever the labels: add --identified --reason TEXT; nothing was listed")
    return reason


def listing_labels(store: SessionReader, where: SessionFilter, identified: bool) -> Labeller:
    """`identity` for an identified listing, else fresh aliases for this listing alone."""
    if identified:
        return identity
    devices, owners = store.devices_and_owners(where)
    return alias_labeller(Pseudonymiser({"Device": devices, "Staff": owners}))


def listing_minimiser(config: Config, identified: bool) -> Callable[[Session], Session] | None:
    """None for an identified listing (times to the millisecond, as stored), else the rewrite a
    pseudonymised export applies (`monitor.exports.minimise`), school by school."""
    if identified:
        return None
    return per_school(config, ZoneInfo(config.trust.timezone))


def log_listing(store: SessionReader, where: SessionFilter, log_path: Path, *, reason: str, shown: str,
                user: str | None = None, now: float | None = None) -> LogEntry:
    """Enter an identified listing in the export log (read from the same snapshot it will print)."""
    included = Included()
    n = 0
    for s in store.sessions(where):
        included.add(s)
        n += 1
    criteria: dict[str, Any] = {k: v for k, v in asdict(where).items() if v is not None}
    # whom it selected is in `included`, keyed like every entry's; never in clear in the log
    for chosen in ("owner", "device"):
        if criteria.pop(chosen, None) is not None:
            criteria[f"one_{chosen}"] = True
    for bound in ("since", "until"):
        if bound in criteria:
            criteria[bound] = _iso(epoch(criteria[bound]) or 0.0)
    return append(log_path, LogEntry(
        kind="listing", at=_iso(time.time() if now is None else now), user=user or current_user(),
        out=shown, manifest_sha256="", sessions=n, school=where.school, identified=True, reason=reason,
        extra={"included": included.tokens(log_path), "filter": criteria},
    ))


def _iso(ts: float) -> str:
    """As the log's other entries write their time (the manifest's `created_at`)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


__all__ = ["check_listing", "listing_labels", "listing_minimiser", "log_listing"]
