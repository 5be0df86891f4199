"""The export log: appended under a lock, hash-chained, private; edits and removals are named."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from monitor.exports.log import ExportLogError, LogEntry, append, log_path_for, read_log


def entry(n: int = 0, **kw) -> LogEntry:
    return LogEntry(kind=kw.pop("kind", "export"), at=f"2026-11-26T05:00:{n:02d}Z", user="head",
                    out=f"/exports/{n}", manifest_sha256=f"{n:064x}", sessions=n, **kw)


def test_log_lives_beside_the_store():
    assert log_path_for("/var/lib/social-monitor/store.db") == Path(
        "/var/lib/social-monitor/store.db.exports.jsonl")


def test_append_chains_and_is_private(tmp_path):
    path = tmp_path / "log.jsonl"
    written = [append(path, entry(i, school="oak-primary", reason="r" if i else None)) for i in range(3)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    check = read_log(path)
    assert check.ok and check.problem is None
    assert [e.seq for e in check.entries] == [1, 2, 3]
    assert check.entries[1].prev == check.entries[0].hash == written[0].hash
    assert check.entries[2].reason == "r"


def test_missing_log_is_empty(tmp_path):
    check = read_log(tmp_path / "none.jsonl")
    assert check.ok and check.entries == []


def _edit(lines: list[str]) -> list[str]:
    row = json.loads(lines[1])
    row["identified"] = True  # someone hides that an export named people
    lines[1] = json.dumps(row, sort_keys=True)
    return lines


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (_edit, "entry 2 changed"),
        (lambda lines: lines[:1] + lines[2:], "entry 3 does not follow"),
        (lambda lines: [lines[1], lines[0], *lines[2:]], "entry 2 does not follow"),
        (lambda lines: lines[1:], "entry 2 does not follow"),
    ],
)
def test_tampering_is_named(tmp_path, tamper, problem):
    path = tmp_path / "log.jsonl"
    for i in range(4):
        append(path, entry(i))
    path.write_text("\n".join(tamper(path.read_text().splitlines())) + "\n")
    check = read_log(path)
    assert not check.ok
    assert problem in check.problem


def test_garbage_line_is_a_clear_error(tmp_path):
    path = tmp_path / "log.jsonl"
    append(path, entry(1))
    with path.open("a") as fh:
        fh.write("not json\n")
    with pytest.raises(ExportLogError, match=r"log.jsonl:2: not an export log entry"):
        read_log(path)
    with pytest.raises(ExportLogError, match=r"log.jsonl:2"):
        append(path, entry(2))


def test_concurrent_appends_keep_one_chain(tmp_path):
    path = tmp_path / "log.jsonl"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: append(path, entry(i)), range(40)))
    check = read_log(path)
    assert check.ok, check.problem
    assert [e.seq for e in check.entries] == list(range(1, 41))


def test_current_user_is_the_real_uid(monkeypatch):
    import os
    import pwd

    from monitor.exports.log import current_user

    real = pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("LOGNAME", "someone-else")
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert current_user() == real
    monkeypatch.setenv("SUDO_USER", "alice")
    assert current_user() == f"alice (sudo to {real})"


def test_log_head(tmp_path):
    from monitor.exports.log import log_head

    path = tmp_path / "log.jsonl"
    assert log_head(path) is None
    last = [append(path, entry(i)) for i in range(3)][-1]
    assert log_head(path) == {"seq": 3, "hash": last.hash}


@pytest.mark.integration
@pytest.mark.parametrize("room", [0, 60], ids=["no room", "room for part of a line"])
def test_a_failed_append_leaves_no_half_line(tmp_path, room):
    """The file size limit (RLIMIT_FSIZE, in a child process) cuts the write as a full disk would."""
    import os
    import subprocess
    import sys

    path = tmp_path / "log.jsonl"
    append(path, entry(1))
    before = path.read_bytes()
    repo = Path(__file__).resolve().parents[2]
    child = (
        "import resource, sys\n"
        "from monitor.exports.log import LogEntry, append, ExportLogError\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) + room}, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    append(sys.argv[1], LogEntry(kind='export', at='2026-01-02T00:00:00Z', user='u', out='/x/2',"
        " manifest_sha256='0' * 64, sessions=2))\n"
        "except ExportLogError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True,
                          timeout=30, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.stdout.strip() == f"{path}: File too large" and "Traceback" not in done.stderr, done.stderr
    assert path.read_bytes() == before
    assert read_log(path).ok
