"""What an export is asked for and what it returns; the error that refuses one before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.exports.log import LogEntry


class ExportError(UserError):
    """An export that cannot be made as asked: nothing is written."""


@dataclass(slots=True)
class ExportRequest:
    school: str
    first_day: date
    last_day: date  # inclusive
    out: Path
    flagged_only: bool = False
    identify: bool = False
    reason: str | None = None


@dataclass(slots=True)
class ExportResult:
    out: Path
    sessions: int
    flagged: int
    manifest_sha256: str
    seconds: float
    log_entry: LogEntry | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


def check_identify(identify: bool, reason: str | None) -> str | None:
    """`--identify` needs a reason in words; without it nothing is exported."""
    reason = (reason or "").strip() or None
    if identify and reason is None:
        raise ExportError("--identify reveals asset tags and staff ids and needs --reason TEXT "
                          "(e.g. --reason 'investigation 2026-07 under clause 3.3'); nothing was exported")
    return reason


def expand_out(template: str, **values: str) -> Path:
    """`--out` may name `{school}`, `{from}`, `{to}`, `{now}` so a timer writes a new directory each run."""
    try:
        return Path(template.format(**values))
    except (KeyError, IndexError, ValueError) as exc:
        raise ExportError(f"--out {template!r}: unknown placeholder {exc} (use {{school}}, {{from}}, "
                          "{to} or {now})") from None


__all__ = ["ExportError", "ExportRequest", "ExportResult", "check_identify", "expand_out"]
