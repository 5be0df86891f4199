"""Modes whatever the umask, and root refused in the service's folder (with a real unprivileged user)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitor.exports.log import LogEntry, append
from monitor.exports.sealed import ExportWriter
from monitor.store.base import StoreError
from monitor.store.files import make_private_dirs, prepare_store, refuse_root_in_foreign_folder
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event

REPO = Path(__file__).resolve().parents[2]
UMASKS = [0o022, 0o002, 0o000, 0o077]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.mark.parametrize("umask", UMASKS, indirect=True, ids=[f"umask {u:04o}" for u in UMASKS])
def test_store_folders_0700_and_files_0600(tmp_path, umask):
    db = tmp_path / "var" / "lib" / "sm" / "store.db"
    store = open_store(db)
    store.write([event(T0)])  # the WAL and its index exist while the store is open
    try:
        paths = (db.parent.parent, db.parent, db, Path(f"{db}-wal"), Path(f"{db}-shm"))
        found = {p.name: mode(p) for p in paths}
    finally:
        store.close()
    assert found == {"lib": 0o700, "sm": 0o700, "store.db": 0o600, "store.db-wal": 0o600,
                     "store.db-shm": 0o600}


@pytest.mark.parametrize("umask", UMASKS, indirect=True, ids=[f"umask {u:04o}" for u in UMASKS])
def test_export_folders_files_and_log_private(tmp_path, umask):
    writer = ExportWriter(tmp_path / "exports" / "ash" / "week")
    writer.add_text("sessions.csv", "a,b\n")
    out, _ = writer.seal({"format": "x"})
    log = tmp_path / "logs" / "store.db.exports.jsonl"
    append(log, LogEntry(kind="export", at="2026-01-01T00:00:00Z", user="u", out=str(out),
                         manifest_sha256="0" * 64, sessions=0))
    assert [mode(p) for p in (tmp_path / "exports", out, out / "sessions.csv", out / "manifest.json")] == \
        [0o700, 0o700, 0o600, 0o600]
    assert (mode(log.parent), mode(log)) == (0o700, 0o600)


@pytest.mark.parametrize(
    ("name", "before", "after"),
    [("store.db", 0o644, 0o600), ("store.db-wal", 0o644, 0o600), ("store.db-shm", 0o660, 0o600),
     ("store.db", 0o600, 0o600)],
    ids=["store 0644", "wal 0644", "shm 0660", "store already 0600"],
)
def test_a_store_from_an_older_release_is_tightened(tmp_path, name, before, after):
    with open_store(tmp_path / "store.db") as store:
        store.write([event(T0)])
    target = tmp_path / name
    target.touch()
    os.chmod(target, before)
    prepare_store(tmp_path / "store.db")
    assert mode(target) == after


def test_existing_folders_are_left_as_they_are(tmp_path):
    os.chmod(tmp_path, 0o755)
    make_private_dirs(tmp_path / "new")
    assert (mode(tmp_path), mode(tmp_path / "new")) == (0o755, 0o700)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to chown to a real unprivileged user)")


@needs_root
@pytest.mark.parametrize(
    ("owner", "refused"),
    [("root", False), ("nobody", True)],
    ids=["root's folder", "another user's folder"],
)
def test_root_is_refused_in_another_users_folder(tmp_path, owner, refused):
    folder = tmp_path / "state"
    folder.mkdir()
    shutil.chown(folder, owner)
    if refused:
        with pytest.raises(StoreError, match=r"belongs to nobody.*runuser -u nobody -- social-monitor"):
            refuse_root_in_foreign_folder(folder / "sub" / "store.db")
        with pytest.raises(StoreError):
            open_store(folder / "store.db")
        assert list(folder.iterdir()) == []  # refused before anything was created
    else:
        refuse_root_in_foreign_folder(folder / "store.db")


def _python_for(user: str) -> list[str] | None:
    """A Python the user can run with this project's packages, or None."""
    site = next(Path(sys.prefix, "lib").glob("python3*/site-packages"), None)
    for exe in (sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"):
        env = ["env", f"PYTHONPATH={REPO}:{site}"]
        probe = subprocess.run(["runuser", "-u", user, "--", *env, exe, "-c", "import monitor.cli, pydantic"],
                               capture_output=True, timeout=60, cwd="/")
        if probe.returncode == 0:
            return [*env, exe]
    return None


@pytest.mark.integration
@needs_root
def test_root_then_the_service_user_exports_the_weekly_export_keeps_working():
    """Root runs an export (refused, nothing made); the service user (`nobody` here) then exports."""
    if shutil.which("runuser") is None:
        pytest.skip("needs runuser")
    python = _python_for("nobody")
    if python is None:
        pytest.skip("no Python that nobody may run with this project's packages")
    base = Path(tempfile.mkdtemp(prefix="sm-owner-"))  # pytest's own tmp folder is closed to others
    try:
        os.chmod(base, 0o755)
        shutil.copytree(REPO / "config", base / "config")
        state = base / "state"
        raw = yaml.safe_load((base / "config" / "example.yaml").read_text())
        raw["store"]["path"] = str(state / "store.db")
        (base / "config" / "example.yaml").write_text(yaml.safe_dump(raw))
        for p in (base / "config").rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        from monitor.config.loader import load_config
        from tests.export_helpers import populate

        populate(load_config(base / "config" / "example.yaml"), state / "store.db").close()
        for p in (state, *state.iterdir()):
            shutil.chown(p, "nobody", "nogroup" if _group_exists("nogroup") else "nobody")
        argv = ["-m", "monitor", "export", "--config", str(base / "config" / "example.yaml"),
                "--school", "ash-secondary", "--from", "2026-11-02", "--to", "2026-11-08"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}

        as_root = subprocess.run([sys.executable, *argv, "--out", str(state / "exports" / "by-root")],
                                 capture_output=True, text=True, timeout=120, cwd="/", env=env)
        [line] = [x for x in as_root.stderr.splitlines() if not x.startswith("social-monitor: config ")]
        assert as_root.returncode == 1 and "Traceback" not in as_root.stderr
        assert line == (f"social-monitor: {state} belongs to nobody, and files root writes there would not "
                        "be theirs: run this as nobody (`runuser -u nobody -- social-monitor ...`)")
        assert sorted(p.name for p in state.iterdir()) == ["store.db"]  # no log, no export, no -wal

        out = state / "exports" / "week"
        as_service = subprocess.run(["runuser", "-u", "nobody", "--", *python, *argv, "--out", str(out)],
                                    capture_output=True, text=True, timeout=120, cwd="/")
        assert as_service.returncode == 0 and "Traceback" not in as_service.stderr, as_service.stderr
        log = state / "store.db.exports.jsonl"
        uid = pwd.getpwnam("nobody").pw_uid
        assert [p.stat().st_uid for p in (out, out / "manifest.json", log, state / "exports")] == [uid] * 4
        assert (mode(out), mode(out / "sessions.csv"), mode(log), mode(state / "exports")) == \
            (0o700, 0o600, 0o600, 0o700)

        # a log left root's by an older release: the service user's export says so in one line, leaves nothing
        shutil.chown(log, "root", "root")
        again = subprocess.run(["runuser", "-u", "nobody", "--", *python, *argv, "--out", str(out) + "-2"],
                               capture_output=True, text=True, timeout=120, cwd="/")
        [line] = [x for x in again.stderr.splitlines()  # a JSON line is a logged event (the signed head)
                  if not x.startswith(("social-monitor: config ", "{"))]
        assert again.returncode == 1 and line == f"social-monitor: {log}: cannot read the export log: " \
            "Permission denied", again.stderr
        assert sorted(p.name for p in (state / "exports").iterdir()) == ["week"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
