"""Sealed export files: private from the first byte, hashed into the manifest, renamed into place."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from monitor.exports.request import ExportError
from monitor.exports.sealed import MANIFEST, ExportWriter, base_manifest, create_private, sha256_file
from tests.export_helpers import FILES


def test_files_are_private(export):
    out = export().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in FILES:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_create_private_is_0600_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        os.close(create_private(tmp_path / "f"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600


def test_create_private_never_overwrites(tmp_path):
    (tmp_path / "f").write_text("evidence")
    with pytest.raises(FileExistsError):
        create_private(tmp_path / "f")
    assert (tmp_path / "f").read_text() == "evidence"


@pytest.mark.parametrize("content", [b"", b"a", b"x" * (1 << 20) + b"tail", "ünïcode".encode()])
def test_sha256_file(tmp_path, content):
    (tmp_path / "f").write_bytes(content)
    assert sha256_file(tmp_path / "f") == (hashlib.sha256(content).hexdigest(), len(content))


def test_seal_hashes_every_file_then_renames(tmp_path):
    writer = ExportWriter(tmp_path / "out")
    writer.add_text("a.txt", "alpha\n")
    writer.add_text("b.txt", "beta\n")
    assert not (tmp_path / "out").exists()  # nothing looks finished before the seal
    seen = []
    out, digest = writer.seal({"kind": "test"}, before_rename=lambda o, h: seen.append((o, h)))
    manifest_text = (out / MANIFEST).read_text()
    assert seen == [(tmp_path / "out", digest)]
    assert digest == hashlib.sha256(manifest_text.encode()).hexdigest()
    files = json.loads(manifest_text)["files"]
    assert files == {"a.txt": {"sha256": hashlib.sha256(b"alpha\n").hexdigest(), "bytes": 6},
                     "b.txt": {"sha256": hashlib.sha256(b"beta\n").hexdigest(), "bytes": 5}}
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_failed_seal_leaves_nothing(tmp_path):
    writer = ExportWriter(tmp_path / "out")
    writer.add_text("a.txt", "alpha")

    def refuse(_out, _digest):
        raise OSError("log unwritable")

    with pytest.raises(OSError):
        writer.seal({}, before_rename=refuse)
    writer.abort()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("existing", ["dir", "file"])
def test_an_existing_out_is_never_written_over(tmp_path, existing):
    target = tmp_path / "out"
    target.mkdir() if existing == "dir" else target.write_text("x")
    with pytest.raises(ExportError, match="already exists"):
        ExportWriter(target)


def test_missing_parents_are_created_private(tmp_path):
    writer = ExportWriter(tmp_path / "a" / "b" / "out")
    writer.abort()
    for d in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("key", "expected"),
    [("format", "social-monitor-export"), ("format_version", 1), ("kind", "sar"), ("created_by", "dpo"),
     ("created_at", "2027-01-15T07:00:00Z")],
)
def test_base_manifest(example_config, key, expected):
    manifest = base_manifest(example_config, "sar", "dpo", 1_799_996_400.0)
    assert manifest[key] == expected
    assert manifest["config_fingerprint"] == example_config.fingerprint


@pytest.mark.parametrize("logged", [True, False], ids=["with-log", "without-log"])
def test_seal_logged_appends_the_entry_before_the_export_appears(tmp_path, logged):
    from monitor.exports.log import LogEntry, read_log
    from monitor.exports.sealed import ExportWriter

    log_path = tmp_path / "exports.jsonl" if logged else None
    writer = ExportWriter(tmp_path / "out")
    writer.add_text("README.txt", "hello\n")
    seen: list[tuple] = []

    def entry_for(log, out, manifest_hash):
        seen.append((log, out.exists(), manifest_hash))  # the export is not in place yet
        return LogEntry(kind="export", at="2026-11-30T12:00:00Z", user="it", out=str(out),
                        manifest_sha256=manifest_hash, sessions=0)

    out, manifest_hash, entry = writer.seal_logged({"kind": "export"}, log_path, entry_for)
    assert out.is_dir()
    if logged:
        assert seen == [(log_path, False, manifest_hash)]
        assert entry is not None and entry.manifest_sha256 == manifest_hash
        assert [e.manifest_sha256 for e in read_log(log_path).entries] == [manifest_hash]
    else:
        assert seen == [] and entry is None


def test_seal_logged_leaves_no_export_when_the_entry_cannot_be_made(tmp_path):
    from monitor.exports.sealed import ExportWriter

    writer = ExportWriter(tmp_path / "out")

    def entry_for(log, out, manifest_hash):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        writer.seal_logged({"kind": "export"}, tmp_path / "exports.jsonl", entry_for)
    assert not (tmp_path / "out").exists() and not (tmp_path / "exports.jsonl").exists()
