"""Folding the export log on real files: old entries become one chained summary, and the chain holds."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.exports.log import FOLDED, LogEntry, append, read_log
from monitor.exports.logfold import fold_log

NOW = datetime(2032, 1, 1, tzinfo=UTC).timestamp()
DAY = 86400.0


def at(days_ago: float) -> str:
    when = datetime.fromtimestamp(NOW - days_ago * DAY, UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def entry(days_ago: float, kind: str = "export", identified: bool = False, sessions: int = 10) -> LogEntry:
    return LogEntry(kind=kind, at=at(days_ago), user="head", out="/x", manifest_sha256="0" * 64,
                    sessions=sessions, identified=identified, reason="r" if identified else None)


def write_log(path: Path, ages: list[float]) -> None:
    for i, age in enumerate(ages):
        append(path, entry(age, kind="sar" if i % 2 else "export", identified=bool(i % 2)))


@pytest.mark.parametrize(
    ("ages", "keep", "folded", "left"),
    [
        ([900, 800, 10, 5], 365, 2, 3),  # two old entries folded; two kept and the summary
        ([900, 800, 700], 365, 3, 1),  # all old: only the summary is left
        ([10, 5], 365, 0, 2),  # nothing old enough
        ([900, 10, 800], 365, 1, 3),  # only the leading run folds: the log stays in order
        ([], 365, 0, 0),
    ],
    ids=["some-old", "all-old", "none-old", "leading-run-only", "empty"],
)
def test_fold_leaves_a_verifiable_log(tmp_path, ages, keep, folded, left):
    path = tmp_path / "log.jsonl"
    write_log(path, ages)
    result = fold_log(path, keep, NOW, user="purge")
    check = read_log(path)
    assert check.ok, check.problem
    assert result.folded == folded and len(check.entries) == left
    if folded:
        summary = check.entries[-1]
        assert summary.kind == FOLDED and summary.seq == len(ages) + 1
        info = summary.extra["folded"]
        assert (info["through_seq"], info["entries"]) == (folded, folded)
        assert sum(info["kinds"].values()) == folded and summary.sessions == 10 * folded
        assert info["first_at"] == at(ages[0])


def test_a_second_fold_carries_the_first_summary_over(tmp_path):
    path = tmp_path / "log.jsonl"
    write_log(path, [900, 800, 10, 5])
    fold_log(path, 365, NOW)
    append(path, entry(1, identified=True))
    later = NOW + 400 * DAY  # now the first summary and the entries after it are old too
    result = fold_log(path, 365, later)
    check = read_log(path)
    assert check.ok, check.problem
    summary = check.entries[-1]
    assert result.folded == 4 and len(check.entries) == 1  # two entries, the summary, the appended one
    assert summary.extra["folded"]["entries"] == 5  # 2 carried over, 3 folded now
    assert summary.extra["folded"]["identified"] == 3 and summary.seq == 7
    append(path, entry(0))
    assert read_log(path).ok and read_log(path).entries[-1].seq == 8  # appends go on from the summary


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda lines: lines[1:], "does not follow"),  # an entry after the cut removed as well
        (lambda lines: lines[:-1], "does not follow"),  # the summary removed: the cut is unexplained
        (lambda lines: [*lines[:-1], lines[-1].replace('"entries": 2', '"entries": 1')], "changed"),
        (lambda lines: [lines[0].replace('"sessions": 10', '"sessions": 11'), *lines[1:]], "changed"),
    ],
    ids=["kept-entry-removed", "summary-removed", "summary-edited", "kept-entry-edited"],
)
def test_tampering_after_a_fold_breaks_the_chain(tmp_path, edit, problem):
    path = tmp_path / "log.jsonl"
    write_log(path, [900, 800, 10, 5])
    fold_log(path, 365, NOW)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))
    check = read_log(path)
    assert not check.ok and problem in (check.problem or ""), check.problem


def test_a_broken_log_is_not_folded(tmp_path):
    path = tmp_path / "log.jsonl"
    write_log(path, [900, 800, 10])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0].replace('"sessions": 10', '"sessions": 99') + "".join(lines[1:]))
    before = path.read_bytes()
    assert fold_log(path, 365, NOW).folded == 0
    assert path.read_bytes() == before  # the break stays for read_log to name


def test_an_append_waiting_for_the_lock_lands_in_the_folded_log(tmp_path):
    path = tmp_path / "log.jsonl"
    write_log(path, [900, 800, 10])
    holder = open(path, "r+")  # noqa: SIM115 - held across the thread's start
    fcntl.flock(holder, fcntl.LOCK_EX)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (append(path, entry(0)), done.set()))
    worker.start()
    time.sleep(0.3)  # the append has opened the old file and waits for its lock
    assert not done.is_set()
    folded = tmp_path / "folded.jsonl"
    folded.write_text(path.read_text())
    fold_log(folded, 365, NOW)
    os.replace(folded, path)  # what fold_log does under the lock
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    worker.join(5)
    check = read_log(path)
    assert check.ok, check.problem
    assert [x.kind for x in check.entries] == ["export", FOLDED, "export"]
    assert json.loads(path.read_text().splitlines()[-1])["at"] == at(0)
