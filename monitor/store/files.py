"""The store's files stay private and stay the service's, whoever runs the command and whatever the umask.

Folders are created 0700 and files 0600 with an explicit chmod, so a umask of
0022 (a shell, `make run`) gives the same modes as systemd's 0027/0077. SQLite
creates a store 0644 and gives its -wal and -shm the store's mode; the store is
therefore created here, 0600, before SQLite opens it, and an existing one this
user owns is tightened when a writer opens it.

Root is refused in a folder that belongs to another user (the service's
`/var/lib/social-monitor`), rather than writing there and chowning what it made.
Why refuse and not chown: whatever root opens or creates there (the store's
-wal/-shm, the export log, an export) sits in a folder the service user
controls, so a planted symlink would have root append to, or chown, any file
on the system; and SQLite creates -wal/-shm itself, out of reach of a chown
made afterwards. The one line says what to run instead (`runuser -u USER --`),
and the export log still names who asked (`alice (sudo to root)` is not lost:
`runuser` keeps `SUDO_USER`).
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from monitor.store.base import StoreError

DIR_MODE = 0o700
FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm")


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def refuse_root_in_foreign_folder(path: str | Path) -> None:
    """As root, refuse to touch a store whose folder (or nearest existing parent) another user owns."""
    if os.geteuid() != 0:
        return
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    owner = folder.stat().st_uid
    if owner != 0:
        name = owner_name(owner)
        raise StoreError(
            f"{folder} belongs to {name}, and files root writes there would not be theirs: run this as "
            f"{name} (`runuser -u {name} -- social-monitor ...`)"
        )


def make_private_dirs(folder: Path) -> None:
    """Create `folder` and any missing parents 0700, whatever the umask (existing ones are left alone)."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process: theirs to set
        os.chmod(d, DIR_MODE)


def create_private_file(path: Path) -> None:
    """An empty file, 0600 from its first byte, unless it exists already (SQLite takes it as new)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def prepare_store(path: str | Path) -> None:
    """Before a writer opens the store: private folders, a private file, and -wal/-shm no wider.

    A store made by an earlier release (0644, its folder 0755) is tightened if this user owns it."""
    path = Path(path)
    make_private_dirs(path.parent)
    create_private_file(path)
    for p in (path, *(path.with_name(path.name + s) for s in SIDE_FILES)):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.chmod(p, FILE_MODE)


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "create_private_file",
    "make_private_dirs",
    "owner_name",
    "prepare_store",
    "refuse_root_in_foreign_folder",
]
