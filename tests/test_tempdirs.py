"""Temp folders named after their owner, and the removal of a killed owner's folders at the next start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.tempdirs import owned_tempdir, owner_pid, pid_alive, reap_stale


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped (not reused within a test)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    ("name", "kind", "pid"),
    [
        ("social-monitor-metrics-4242-k3j9x_a", "metrics", 4242),
        ("social-monitor-run-7-abc", "run", 7),
        ("social-monitor-metrics-k3j9x_a", "metrics", None),  # made before names carried the pid
        ("social-monitor-run-4242-abc", "metrics", None),  # another kind
        ("social-monitor-metrics-42x-abc", "metrics", None),
        ("social-monitor-metrics-4242-", "metrics", None),
        ("other-metrics-4242-abc", "metrics", None),
    ],
)
def test_owner_pid(name: str, kind: str, pid: int | None) -> None:
    assert owner_pid(name, kind) == pid


@pytest.mark.parametrize(
    ("pid", "alive"),
    [
        (os.getpid(), True),
        (1, True),  # init: someone else's process is alive too (EPERM when not root)
        (0, False),
        (-1, False),
    ],
)
def test_pid_alive(pid: int, alive: bool) -> None:
    assert pid_alive(pid) is alive


def test_pid_alive_is_false_for_an_exited_process() -> None:
    assert pid_alive(dead_pid()) is False


def _make(root: Path, entry: str, owner: str) -> Path:
    pid = {"dead": dead_pid(), "parent": os.getppid(), "self": os.getpid()}[owner]
    path = root / entry.format(pid=pid)
    if entry.startswith("file:"):
        path = root / entry[5:].format(pid=pid)
        path.write_text("x")
    elif entry.startswith("link:"):
        target = root / "target"
        target.mkdir()
        (target / "keep").write_text("x")
        path = root / entry[5:].format(pid=pid)
        path.symlink_to(target)
    else:
        path.mkdir()
        (path / "counter_1.db").write_bytes(b"\0" * 8)
    return path


@pytest.mark.parametrize(
    ("entry", "owner", "removed"),
    [
        ("social-monitor-metrics-{pid}-abc", "dead", True),
        ("social-monitor-metrics-{pid}-abc", "parent", False),  # its owner still runs
        ("social-monitor-metrics-{pid}-abc", "self", False),
        ("social-monitor-run-{pid}-abc", "dead", False),  # another kind: reaped by its own maker
        ("social-monitor-metrics-abc", "dead", False),  # no pid in the name: not ours to judge
        ("file:social-monitor-metrics-{pid}-abc", "dead", False),  # not a folder
        ("link:social-monitor-metrics-{pid}-abc", "dead", False),  # a symlink is never followed
    ],
)
def test_reap_stale(tmp_path: Path, entry: str, owner: str, removed: bool) -> None:
    path = _make(tmp_path, entry, owner)
    reaped = reap_stale("metrics", tmp_path)
    assert (not path.is_symlink() and not path.exists()) is removed
    assert reaped == ([path] if removed else [])
    if entry.startswith("link:"):
        assert (tmp_path / "target" / "keep").exists()


def test_reap_stale_in_a_missing_folder_removes_nothing(tmp_path: Path) -> None:
    assert reap_stale("metrics", tmp_path / "absent") == []


def test_owned_tempdir_carries_the_pid_is_private_and_reaps_first(tmp_path: Path) -> None:
    stale = _make(tmp_path, "social-monitor-run-{pid}-old", "dead")
    made = owned_tempdir("run", tmp_path)
    assert owner_pid(made.name, "run") == os.getpid()
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert not stale.exists()
    assert list(tmp_path.iterdir()) == [made]
