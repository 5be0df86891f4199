"""Exports have a retention of their own: the daily purge deletes export folders older than it.

An export is a copy of personal data, so it is deleted once it is older than
`exports.retention_days` (default `retention_days`), from the exports folder
(`exports.folder`, default 'exports' beside the store). Only folders whose
`manifest.json` says they are social-monitor exports are touched, never
anything else in the folder, and an investigation export whose case still has
an open legal hold is kept until the hold is released. One export log entry
(kind "expired") names what went, so the log says when each copy ceased to exist.

`upkeep` is the whole daily job beside the store's purge: expire exports, then
fold the export log (`monitor.exports.logfold`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from monitor.config.exportsettings import export_retention_days
from monitor.exports.log import LogEntry, append, current_user, log_path_for
from monitor.exports.logfold import fold_log
from monitor.exports.sealed import FORMAT, MANIFEST

log = structlog.get_logger("monitor.exports.expiry")

DAY = 86400.0
MAX_DEPTH = 4  # exports/<school>/<week>/ is two deep; a deeper tree is not walked into


@dataclass(slots=True)
class Expired:
    removed: list[Path] = field(default_factory=list)
    kept_for_hold: list[Path] = field(default_factory=list)
    unreadable: int = 0  # folders with a manifest.json that could not be read: left alone
    folded: int = 0  # export log entries folded into a summary


def export_created(manifest_path: Path) -> tuple[float, str | None] | None:
    """(created_at, the case of an investigation) of a social-monitor export, or None if it is not one."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            return None
        created = datetime.fromisoformat(str(manifest["created_at"]).replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError):
        return None
    case = manifest.get("case") if manifest.get("kind") == "investigation" else None
    return created.astimezone(UTC).timestamp(), (str(case) if case is not None else None)


def expire_exports(folder: Path, keep_days: int, now: float, held_cases: set[str]) -> Expired:
    """Delete the export folders under `folder` created more than `keep_days` ago (see the module)."""
    result = Expired()
    if not folder.is_dir():
        return result
    cutoff = now - keep_days * DAY
    base = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        deep = len(here.parts) - base >= MAX_DEPTH
        dirs[:] = [] if deep else sorted(d for d in dirs if not d.startswith("."))  # not partial exports
        if MANIFEST not in files:
            continue
        dirs[:] = []  # an export's own folder holds no other export
        found = export_created(here / MANIFEST)
        if found is None:
            result.unreadable += 1
            continue
        created, case = found
        if created >= cutoff:
            continue
        if case is not None and case in held_cases:
            result.kept_for_hold.append(here)
            continue
        shutil.rmtree(here)
        result.removed.append(here)
    return result


def upkeep(config: Any, held_cases: set[str], now: float, user: str | None = None) -> Expired:
    """The daily purge's part beside the store: expire exports (logged), then fold the export log."""
    keep = export_retention_days(config.model.exports, config.model.retention_days)
    result = expire_exports(config.exports_folder, keep, now, held_cases)
    log_path = log_path_for(config.store_path)
    user = user or current_user()
    if result.removed:
        at = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        append(log_path, LogEntry(kind="expired", at=at, user=user, out=str(config.exports_folder),
                                  manifest_sha256="", sessions=0,
                                  reason=f"exports older than {keep} days deleted",
                                  extra={"removed": [str(p) for p in result.removed]}))
        log.info("exports_expired", folder=str(config.exports_folder), removed=len(result.removed),
                 kept_for_hold=len(result.kept_for_hold))
    result.folded = fold_log(log_path, config.model.exports.log_retention_days, now, user).folded
    return result


__all__ = ["Expired", "expire_exports", "export_created", "upkeep"]
