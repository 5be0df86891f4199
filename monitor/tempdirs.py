"""Temporary folders named after the process that owns them, so a killed owner's are found and removed.

The daemon keeps two folders under the temp directory while it runs: the
prometheus multi-process files and the proxy child's config snapshots. It
removes them when it stops, but a process killed with SIGKILL runs no code, so
its folders would stay behind for ever. Each folder's name therefore carries
its owner's pid (`social-monitor-metrics-4242-k3j9x`), and the next start of the
same kind removes those whose owner is gone. Under systemd this never matters
(PrivateTmp and RuntimeDirectory are removed with the service); it does for
`make run` and tests.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

PREFIX = "social-monitor-"


def owned_tempdir(kind: str, parent: str | Path | None = None) -> Path:
    """A new folder `social-monitor-KIND-PID-XXXX` (mode 0700), after removing stale ones of that kind."""
    reap_stale(kind, parent)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-", dir=parent))


def owner_pid(name: str, kind: str) -> int | None:
    """The pid in a folder name made by `owned_tempdir`, or None for any other name."""
    match = re.fullmatch(rf"{re.escape(PREFIX + kind)}-([0-9]+)-[^/]+", name)
    return int(match.group(1)) if match else None


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (whoever owns it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive, and none of our business
    return True


def reap_stale(kind: str, parent: str | Path | None = None) -> list[Path]:
    """Remove this user's folders of `kind` whose owner process no longer exists; returns them.

    A folder whose pid was since reused by another process is left for a later start:
    leaving a dead folder is harmless, removing a live one is not."""
    root = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid = owner_pid(entry.name, kind)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():  # lstat: never a symlink
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
