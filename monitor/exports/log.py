"""The export log: who took which data out of the system, when, and why.

Every export and subject access request appends one entry, identified or
not, so that the trust can answer "who has seen this?" (UK GDPR
accountability; the ICO's guidance on monitoring workers). The log is a JSON
lines file beside the store (``<store>.exports.jsonl``), not a table inside
it, so that exporting never takes the store's write lock and the store's own
schema stays the store's. Each entry carries the SHA-256 of the previous
entry's line (``prev``) and its own (``hash``), so a removed or edited entry
breaks the chain and `read_log` says where.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import pwd
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.store.chain import GENESIS
from monitor.store.files import make_private_dirs
from monitor.store.sessions import canonical_json

FOLDED = "folded"  # the kind of a summary entry that stands for the entries folded before it


class ExportLogError(UserError):
    """The export log cannot be read or appended: one line naming the file."""


@dataclass(slots=True)
class LogEntry:
    """One export as the log keeps it; `seq`, `prev` and `hash` are set on append."""

    kind: str  # export | sar | investigation | hold | release | expired | folded
    at: str  # ISO 8601 UTC
    user: str  # the OS user who ran it
    out: str  # the export directory
    manifest_sha256: str
    sessions: int
    school: str | None = None
    period_from: str | None = None
    period_to: str | None = None
    flagged_only: bool = False
    identified: bool = False
    reason: str | None = None
    subject: str | None = None  # the staff id of a subject access request
    seq: int = 0
    prev: str = GENESIS
    hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        body = asdict(self)
        body.pop("hash")
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def write_failure(path: Path, exc: OSError) -> str:
    """One line for a failed write: a full disk says so plainly (whatever raised it)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on device: {path}"
    return f"{path}: {exc.strerror or exc}"


def log_path_for(store_path: str | Path) -> Path:
    """Where the export log of a store lives: beside it, named after it."""
    path = Path(store_path)
    return path.with_name(path.name + ".exports.jsonl")


def current_user() -> str:
    """The OS user running the export, from the real uid (not $USER, which anyone can set).

    Under sudo the caller is named too: "alice (sudo to root)"."""
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        name = f"uid {os.getuid()}"
    caller = os.environ.get("SUDO_USER")
    return f"{caller} (sudo to {name})" if caller and caller != name else name


def log_head(path: str | Path) -> dict[str, Any] | None:
    """The last entry's number and hash: each new manifest quotes it, so copies of exports held
    by their readers anchor the log (rewriting it would contradict them)."""
    check = read_log(path)
    if not check.entries:
        return None
    last = check.entries[-1]
    return {"seq": last.seq, "hash": last.hash}


def _entries(path: Path) -> Iterator[tuple[int, LogEntry]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, LogEntry(**json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ExportLogError(f"{path}:{lineno}: not an export log entry: {exc}") from None


def append(path: str | Path, entry: LogEntry) -> LogEntry:
    """Append one entry under an exclusive lock, chained to the last one; the file is 0600."""
    path = Path(path)
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o600)  # 0600 whatever the umask, and an older, wider log tightened
    except OSError as exc:
        raise ExportLogError(f"{path}: cannot open the export log: {exc.strerror}") from None
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if _replaced(path, fd):  # folded (monitor.exports.logfold) while this waited: append to the new file
            return append(path, entry)
        last: LogEntry | None = None
        fh.seek(0)
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    last = LogEntry(**json.loads(line))
                except (ValueError, TypeError) as exc:
                    raise ExportLogError(f"{path}:{lineno}: not an export log entry: {exc}") from None
        entry.seq = last.seq + 1 if last else 1
        entry.prev = last.hash if last else GENESIS
        entry.hash = entry.digest()
        # straight to the descriptor: a buffered write that failed would be retried when closing
        data = memoryview((json.dumps(asdict(entry), ensure_ascii=False, sort_keys=True) + "\n").encode())
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError as exc:  # a full disk: no half line left to break the chain
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise ExportLogError(write_failure(path, exc)) from None
    return entry


def _replaced(path: Path, fd: int) -> bool:
    """Whether `path` now names another file than the one open as `fd` (a fold renamed a new log in)."""
    try:
        return os.stat(path).st_ino != os.fstat(fd).st_ino
    except FileNotFoundError:
        return True


@dataclass(slots=True)
class LogCheck:
    entries: list[LogEntry]
    ok: bool
    problem: str | None = None


def _folded_start(numbered: list[tuple[int, LogEntry]]) -> tuple[str, int]:
    """Where the chain of a log starts: at GENESIS and entry 1, or, once older entries were folded,
    after the entry a later summary (kind "folded", chained like any entry) says it folded through.
    A log whose head was cut without a summary naming that cut starts at GENESIS, and so breaks."""
    first = numbered[0][1]
    for _, entry in reversed(numbered):
        folded = entry.extra.get("folded") if entry.kind == FOLDED else None
        if isinstance(folded, dict) and folded.get("through_seq") == first.seq - 1 and \
                folded.get("through_hash") == first.prev:
            return first.prev, first.seq
    return GENESIS, 1


def read_log(path: str | Path) -> LogCheck:
    """All entries, and whether the chain holds (the first break is named)."""
    path = Path(path)
    if not path.exists():
        return LogCheck([], True)
    entries: list[LogEntry] = []
    problem = None
    try:
        numbered = list(_entries(path))
    except OSError as exc:  # root's 0600 log read by the service user, say
        raise ExportLogError(f"{path}: cannot read the export log: {exc.strerror or exc}") from None
    prev, seq = _folded_start(numbered) if numbered else (GENESIS, 1)
    for lineno, entry in numbered:
        if problem is None:
            if entry.hash != entry.digest():
                problem = f"{path}:{lineno}: entry {entry.seq} changed (its hash does not match)"
            elif entry.prev != prev:
                problem = f"{path}:{lineno}: entry {entry.seq} does not follow the entry before it " \
                          "(an entry was removed or reordered)"
            elif entry.seq != seq:
                problem = f"{path}:{lineno}: entry {entry.seq} out of sequence (expected {seq})"
        prev, seq = entry.hash, entry.seq + 1
        entries.append(entry)
    return LogCheck(entries, problem is None, problem)


__all__ = [
    "FOLDED",
    "ExportLogError",
    "LogCheck",
    "LogEntry",
    "append",
    "current_user",
    "log_head",
    "log_path_for",
    "read_log",
    "write_failure",
]
