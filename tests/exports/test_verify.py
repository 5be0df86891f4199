"""verify_export: a changed, missing or added file is named; a forged manifest is caught by the log."""

from __future__ import annotations

import json

import pytest

from monitor.exports.verify import verify_export
from tests.export_helpers import FILES


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("where", [0, 0.5, -1])
def test_changed_byte_is_detected_and_named(export, tmp_path, name, where):
    out = export().out
    assert verify_export(out, log_path=tmp_path / "log.jsonl")[0]
    path = out / name
    data = bytearray(path.read_bytes())
    i = int(len(data) * where) if where != -1 else len(data) - 2
    data[i] ^= 0x01
    path.write_bytes(bytes(data))
    ok, lines = verify_export(out, log_path=tmp_path / "log.jsonl")
    assert not ok
    named = [line for line in lines if "CHANGED" in line or "NOT IN THE EXPORT LOG" in line
             or "unreadable manifest" in line]
    assert named and all(line.startswith(name) or f"/{name}:" in line for line in named), lines


def test_manifest_edit_detected_against_log(export, tmp_path):
    """Editing a hash in the manifest to match a forged file still leaves the log's manifest hash."""
    import hashlib

    result = export()
    out = result.out
    forged = (out / "sessions.csv").read_text().replace("classrooms", "staff-room", 1)
    (out / "sessions.csv").write_text(forged)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["sessions.csv"]["sha256"] = hashlib.sha256(forged.encode()).hexdigest()
    manifest["files"]["sessions.csv"]["bytes"] = len(forged.encode())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    assert verify_export(out)[0]  # the directory alone is consistent again...
    ok, lines = verify_export(out, log_path=tmp_path / "log.jsonl")
    assert not ok  # ...but the export log remembers the original manifest
    assert any(line.startswith("manifest.json: NOT IN THE EXPORT LOG") for line in lines)


def test_missing_and_added_files_fail(export):
    out = export().out
    (out / "report.html").unlink()
    (out / "extra.txt").write_text("x")
    ok, lines = verify_export(out)
    assert not ok
    assert "report.html: MISSING" in lines
    assert any(line.startswith("extra.txt: NOT IN MANIFEST") for line in lines)


def test_not_an_export(tmp_path):
    ok, lines = verify_export(tmp_path)
    assert not ok and "no manifest.json" in lines[0]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("not json", "unreadable manifest"),
        ('{"format": "something-else", "files": {}}', "not a social-monitor export manifest"),
        ('{"format": "social-monitor-export", "files": []}', "not a social-monitor export manifest"),
        ('{"format": "social-monitor-export"}', "unreadable manifest"),
    ],
)
def test_unreadable_manifest_is_one_line(tmp_path, manifest, message):
    (tmp_path / "manifest.json").write_text(manifest)
    ok, lines = verify_export(tmp_path)
    assert not ok and len(lines) == 1 and message in lines[0]
