"""Damaged store files, made for real: garbage pages mid-file, broken WAL frames, a broken WAL header."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.store.damage import StoreDamaged, in_use, is_damage, one_line, quick_check, wal_problem
from monitor.store.sqlite import open_store
from tests.damaged_store import (
    break_frame,
    commit_frames,
    crashed_with_wal,
    digest,
    fill,
    overwrite,
    overwrite_pages,
    record_count,
)

REPO = Path(__file__).resolve().parents[2]


def _no_damage(db: Path) -> None:
    pass


def _middle_frame(db: Path) -> None:
    break_frame(db, commit_frames(db)[5])  # six transactions in: fourteen committed after it


def _last_commit_frame(db: Path) -> None:
    break_frame(db, commit_frames(db)[-1])  # what a crash mid-commit leaves: nothing committed after


def _header_salt(db: Path) -> None:
    overwrite(Path(f"{db}-wal"), 16, 4)  # salt-1: the header's checksum no longer holds


def _torn_tail(db: Path) -> None:
    wal = Path(f"{db}-wal")
    os.truncate(wal, wal.stat().st_size - 1000)  # the last frame half written


def _no_wal(db: Path) -> None:
    Path(f"{db}-wal").unlink()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_no_damage, None),
        (_middle_frame, r"frame \d+ fails its checksum; 14 committed transaction\(s\) after it"),
        (_last_commit_frame, None),
        (_header_salt, r"its header is damaged; 20 committed transaction\(s\)"),
        (_torn_tail, None),
        (_no_wal, None),
    ],
    ids=["sound", "frame mid-log", "last commit frame (a crash)", "header", "torn tail", "no WAL"],
)
def test_wal_problem(tmp_path, damage, expected):
    db = crashed_with_wal(tmp_path / "s.db")
    damage(db)
    found = wal_problem(db, recheck_after=0)
    if expected is None:
        assert found is None
    else:
        assert found is not None and re.search(expected, found), found


@pytest.mark.parametrize(
    ("damage", "lost"),
    [(_no_damage, 0), (_last_commit_frame, 1), (_torn_tail, 1)],
    ids=["sound", "last commit frame", "torn tail"],
)
def test_a_wal_called_sound_loses_at_most_the_last_transaction(tmp_path, damage, lost):
    """What wal_problem lets through is what a crash may lose anyway, checked by SQLite itself."""
    db = crashed_with_wal(tmp_path / "s.db")
    damage(db)
    assert record_count(db) == 220 - lost


def test_sqlite_drops_what_wal_problem_reports(tmp_path):
    """Why the check exists: SQLite's own recovery silently drops the transactions after the break."""
    db = crashed_with_wal(tmp_path / "s.db")
    _middle_frame(db)
    assert record_count(db) < 220 - 1


@pytest.mark.parametrize(
    ("exc", "damage"),
    [
        (sqlite3.DatabaseError("database disk image is malformed"), True),
        (sqlite3.DatabaseError("file is not a database"), True),
        (sqlite3.OperationalError("database is locked"), False),
        (sqlite3.OperationalError("database or disk is full"), False),
        (OSError(5, "Input/output error"), False),
    ],
    ids=["malformed", "not a database", "locked", "full", "OSError"],
)
def test_is_damage(exc, damage):
    assert is_damage(exc) is damage


def test_is_damage_reads_sqlites_error_code(tmp_path):
    db = tmp_path / "s.db"
    fill(db)
    overwrite_pages(db, 0.1, 0.9)
    con = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError) as caught:
        con.execute("SELECT * FROM records").fetchall()
    con.close()
    assert caught.value.sqlite_errorcode == 11 and is_damage(caught.value)  # SQLITE_CORRUPT


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("*** in database main ***\nPage 542: btreeInitPage() returns error code 11\nPage 541: x\nPage 9: y",
         "Page 542: btreeInitPage() returns error code 11; Page 541: x"),
        ("database disk image is malformed", "database disk image is malformed"),
        ("", "damaged"),
    ],
    ids=["integrity report", "one line", "empty"],
)
def test_one_line(text, line):
    assert one_line(text) == line


@pytest.mark.parametrize(("damaged", "sound"), [(False, True), (True, False)], ids=["sound", "pages"])
def test_quick_check(tmp_path, damaged, sound):
    db = tmp_path / "s.db"
    fill(db)
    if damaged:
        overwrite_pages(db)
    con = sqlite3.connect(db)
    try:
        assert (quick_check(con) is None) is sound
    finally:
        con.close()


def test_opening_a_store_with_a_damaged_wal_is_refused_and_keeps_the_wal(tmp_path):
    db = crashed_with_wal(tmp_path / "s.db")
    _middle_frame(db)
    before = digest(Path(f"{db}-wal"))
    with pytest.raises(StoreDamaged) as caught:
        open_store(db, create=False)
    assert str(caught.value).startswith(f"store damaged: {db}: s.db-wal: frame ")
    assert digest(Path(f"{db}-wal")) == before  # nothing checkpointed, nothing deleted


def test_a_damaged_page_met_while_reading_is_one_error_naming_the_file(tmp_path):
    db = tmp_path / "s.db"
    fill(db)
    store = open_store(db, create=False)  # opening reads only the schema: still fine
    overwrite_pages(db, 0.1, 0.9)
    with pytest.raises(StoreDamaged) as caught, store:
        list(store.sessions())
    assert str(caught.value).startswith(f"store damaged: {db}: ")


@pytest.mark.integration
def test_in_use_sees_another_process_holding_the_store(tmp_path):
    db = tmp_path / "s.db"
    fill(db)
    assert not in_use(db)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('SELECT COUNT(*) FROM sessions').fetchall(); print('open', flush=True); time.sleep(60)",
         str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert in_use(db)
    finally:
        holder.kill()
        holder.wait(10)
    assert not in_use(db)


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *argv], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def _pages(db: Path) -> None:
    overwrite_pages(db)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("damage", "code", "said"),
    [
        (_no_damage, 0, r"chain ok: 220 records"),
        (_pages, 2, r"^social-monitor: store damaged: {db}: .*(error code 11|malformed)"),
        (_middle_frame, 2, r"^social-monitor: store damaged: {db}: s\.db-wal: frame \d+ fails its checksum"),
        (_header_salt, 2, r"^social-monitor: store damaged: {db}: s\.db-wal: its header is damaged"),
    ],
    ids=["sound", "pages mid-file", "WAL frame", "WAL header"],
)
def test_verify_command_on_damaged_files(tmp_path, damage, code, said):
    db = crashed_with_wal(tmp_path / "s.db")
    damage(db)
    wal = Path(f"{db}-wal")
    before = digest(wal)
    done = _cli("verify", str(db))
    out = done.stdout + done.stderr
    assert done.returncode == code, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert re.search(said.format(db=re.escape(str(db))), out.strip()), out
    if code:
        assert digest(wal) == before  # the damaged files are kept as found, for recovery


def _sqlite3_cli_recovers() -> bool:
    """`.recover` as docs/operations.md gives it; the Debian 12 build (3.40.1) fails it on any file."""
    tool = shutil.which("sqlite3")
    if tool is None:
        return False
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.split()[0]
    return tuple(int(x) for x in version.split(".")[:2]) >= (3, 41)


@pytest.mark.integration
def test_documented_recovery_gives_a_store_that_verify_reads(tmp_path):
    if not _sqlite3_cli_recovers():
        pytest.skip("needs the sqlite3 command line tool 3.41 or later for .recover")
    db = tmp_path / "s.db"
    fill(db)
    overwrite_pages(db)
    recovered = tmp_path / "recovered.db"
    dump = subprocess.run(["sqlite3", str(db), ".recover"], capture_output=True, timeout=60)
    subprocess.run(["sqlite3", str(recovered)], input=dump.stdout, check=True, timeout=60)
    done = _cli("verify", str(recovered))
    assert "Traceback" not in done.stderr and "store damaged" not in done.stderr
