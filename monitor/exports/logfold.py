"""Folding the export log: entries older than `exports.log_retention_days` become one chained summary.

The log answers "who received my data", so it is kept longer than the data
(`monitor.config.exportsettings`), but not for ever: the daily purge folds the
leading run of entries older than the log's period into a summary entry
appended at the log's head (kind "folded", chained to the entry before it like
any other). The summary names the last entry it folded and that entry's hash,
so the first entry left still links to something the chain vouches for, and
`read_log` starts the chain there; it keeps counts (entries by kind,
identified ones, sessions, the first and last dates), never names. An earlier
summary in the folded run is folded too, its counts carried over.

A log whose chain does not hold is never folded: the break would be folded away.
The new file is written beside the old one and renamed over it under the log's
lock; an append waiting for the lock sees the rename and appends to the new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from monitor.exports.log import FOLDED, ExportLogError, LogEntry, current_user, read_log, write_failure

log = structlog.get_logger("monitor.exports.logfold")

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class FoldResult:
    folded: int  # entries removed from the file (an earlier summary among them counts as one)
    through_seq: int | None  # the last entry folded
    summary: LogEntry | None


def _when(entry: LogEntry) -> float:
    try:
        return datetime.fromisoformat(entry.at.replace("Z", "+00:00")).timestamp()
    except ValueError:  # an entry whose time cannot be read is never old enough to fold
        return float("inf")


def summary_of(old: list[LogEntry], keep_days: int, now: float, user: str) -> LogEntry:
    """One entry standing for `old` (oldest first): counts carried over from earlier summaries."""
    kinds: Counter[str] = Counter()
    identified = sessions = entries = 0
    first_at, last_at = old[0].at, old[-1].at
    for x in old:
        folded = x.extra.get("folded") if x.kind == FOLDED else None
        if isinstance(folded, dict):
            kinds.update({str(k): int(v) for k, v in folded.get("kinds", {}).items()})
            identified += int(folded.get("identified", 0))
            entries += int(folded.get("entries", 0))
            sessions += x.sessions
            first_at = min(first_at, str(folded.get("first_at", first_at)))
        else:
            kinds[x.kind] += 1
            identified += bool(x.identified)
            entries += 1
            sessions += x.sessions
    at = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return LogEntry(
        kind=FOLDED, at=at, user=user, out="", manifest_sha256="", sessions=sessions,
        reason=f"export log entries older than {keep_days} days folded into this summary",
        extra={"folded": {"through_seq": old[-1].seq, "through_hash": old[-1].hash, "entries": entries,
                          "kinds": dict(sorted(kinds.items())), "identified": identified,
                          "first_at": first_at, "last_at": last_at}},
    )


def fold_log(path: str | Path, keep_days: int, now: float, user: str | None = None) -> FoldResult:
    """Fold the entries older than `keep_days` into a summary at the log's head (see the module)."""
    path = Path(path)
    if not path.exists():
        return FoldResult(0, None, None)
    cutoff = now - keep_days * DAY
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        check = read_log(path)
        if not check.ok:
            log.error("export_log_not_folded", path=str(path), problem=check.problem)
            return FoldResult(0, None, None)
        old: list[LogEntry] = []
        for entry in check.entries:
            if _when(entry) >= cutoff:
                break
            old.append(entry)
        if not old or (len(old) == 1 and old[0].kind == FOLDED and len(check.entries) == 1):
            return FoldResult(0, None, None)  # nothing older, or only the summary itself
        kept = check.entries[len(old):]
        summary = summary_of(old, keep_days, now, user or current_user())
        head = kept[-1] if kept else old[-1]
        summary.seq, summary.prev = head.seq + 1, head.hash
        summary.hash = summary.digest()
        lines = [json.dumps(asdict(x), ensure_ascii=False, sort_keys=True) + "\n" for x in (*kept, summary)]
        _replace(path, "".join(lines))
    log.info("export_log_folded", path=str(path), entries=len(old), through=old[-1].seq)
    return FoldResult(len(old), old[-1].seq, summary)


def _replace(path: Path, text: str) -> None:
    """Write `text` beside `path` (0600), flush it to disk, rename it over `path`."""
    tmp = path.with_name(f".{path.name}.fold-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ExportLogError(f"{write_failure(path, exc)}; the export log was not folded") from None


__all__ = ["FoldResult", "fold_log", "summary_of"]
