"""An identified live stream (`sense --config --identified --reason`), in the export log from start to stop.

`classify --identified` reads its files twice so that the export log names whom the rows include
before the first is printed (`monitor.exports.tagged`). A live stream cannot: whom it will name
depends on traffic not yet sent. So it is logged honestly in two entries of kind ``listing``:

- when it starts, before the first row: the reason, the interfaces, ``"scope": "live stream"``,
  the start time, and no ``included``: whom it names is not known yet;
- when it stops (a signal, an error, the end): ``completes`` (the first entry's number), the
  rows printed, the start and stop times, and whom the rows named (``included``, keyed like
  every entry's: the owner, else the device; how many people and devices).

A subject access request (`monitor.exports.subjects.disclosures`) reads a completed start through
its completion. A stream killed outright (SIGKILL, a power cut) leaves its start uncompleted: the
log still says who watched, when and why, and a SAR counts it among the entries that did not
record whom they held, rather than guess. Whom a stream names is bounded by the inventory (the
owners and devices it lists), so the sets kept while it runs stay small however long it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config.loader import Config
from monitor.errors import UserError
from monitor.exports.log import LogEntry, append, current_user, log_path_for
from monitor.exports.tagged import Inclusion, TaggedRows
from monitor.observation import Observation, iso_utc

LIVE = "live stream"
COMMAND = "sense"


def check_live(identified: bool, reason: str | None, config_path: str | None) -> str | None:
    """The reason for an identified stream, None for aliases; refused before anything is captured."""
    if not identified:
        return None
    if not config_path:
        raise UserError("sense --identified names the devices and people the config's inventory gives; "
                        "add --config PATH")
    given = " ".join((reason or "").split())
    if not given:
        raise UserError("sense --identified prints asset tags and staff ids as they are seen and needs "
                        "--reason TEXT (e.g. --reason 'INV-2026-07: watching the seized laptop'), entered "
                        "in the export log; nothing was captured")
    return given


def _at(now: float | None) -> str:
    return iso_utc(time.time() if now is None else now)[:19] + "Z"


@dataclass
class LiveStream:
    """One identified live stream: the rows it names, and its two export-log entries."""

    config: Config
    interfaces: list[str]
    reason: str
    shown: str  # where the rows go, e.g. "stdout (sense --config --identified --format jsonl)"
    user: str = field(default_factory=current_user)
    inclusion: Inclusion = field(default_factory=Inclusion)
    started: LogEntry | None = None
    completed: LogEntry | None = None

    @property
    def log_path(self) -> Path:
        return log_path_for(self.config.store_path)

    def row_maker(self) -> tuple[Callable[[Observation], dict[str, Any]], Any]:
        """(row maker, tagger): each observation tagged, counted with whom it names, then named as tagged."""
        from monitor.tagging.tagger import Tagger

        tagger = Tagger(self.config)
        rows = TaggedRows(self.config, identified=True)
        include = self.inclusion.add

        def row(obs: Observation) -> dict[str, Any]:
            event = tagger.tag(obs)
            include(event)
            return rows.row(event)

        return row, tagger

    def _extra(self) -> dict[str, Any]:
        return {"command": COMMAND, "scope": LIVE, "interfaces": list(self.interfaces)}

    def start(self, now: float | None = None) -> LogEntry:
        """The first entry, before any row: who, why, on which interfaces, from when."""
        if self.started is not None:
            raise RuntimeError("this live stream was started already")
        at = _at(now)
        self.started = append(self.log_path, LogEntry(
            kind="listing", at=at, user=self.user, out=self.shown, manifest_sha256="", sessions=0,
            identified=True, reason=self.reason, extra={**self._extra(), "live": "started", "started_at": at},
        ))
        return self.started

    def complete(self, now: float | None = None) -> LogEntry:
        """The second entry, once: how many rows, and whom they named. Nothing to do before `start`."""
        if self.started is None:
            raise RuntimeError("a live stream completes only after it started")
        if self.completed is not None:
            return self.completed
        at = _at(now)
        named = self.inclusion.included
        schools = sorted(self.inclusion.schools)
        self.completed = append(self.log_path, LogEntry(
            kind="listing", at=at, user=self.user, out=self.shown, manifest_sha256="",
            sessions=self.inclusion.rows, school=schools[0] if len(schools) == 1 else None, identified=True,
            reason=self.reason,
            extra={**self._extra(), "live": "completed", "completes": self.started.seq,
                   "started_at": self.started.at, "stopped_at": at, "rows": self.inclusion.rows,
                   "people": len(named.people), "devices": len(named.devices),
                   "included": named.tokens(self.log_path)},
        ))
        return self.completed


__all__ = ["COMMAND", "LIVE", "LiveStream", "check_live"]
