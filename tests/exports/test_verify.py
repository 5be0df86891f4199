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
             or "unreadable manifest" in line or "malformed manifest" in line]
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
        ('{"format": "social-monitor-export", "files": []}', "malformed manifest: files: missing or not an"),
        ('{"format": "social-monitor-export"}', "malformed manifest: files: missing or not an object"),
    ],
)
def test_unreadable_manifest_is_one_line(tmp_path, manifest, message):
    (tmp_path / "manifest.json").write_text(manifest)
    ok, lines = verify_export(tmp_path)
    assert not ok and len(lines) == 1 and message in lines[0]


def _set(path: str, value):
    def mutate(manifest):
        *parents, last = path.split("/")
        node = manifest
        for key in parents:
            node = node[key]
        node[last] = value
        return manifest
    return mutate


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda m: [m], "not a JSON object (a list)"),
        (lambda m: "manifest", "not a JSON object (a str)"),
        (_set("format", "something-else"), "format: 'something-else' is not"),
        (_set("files", ["sessions.csv"]), "files: missing or not an object"),
        (_set("files", None), "files: missing or not an object"),
        (_set("files/sessions.csv", "0" * 64), "files.sessions.csv: not an object"),
        (_set("files/report.html", None), "files.report.html: not an object"),
        (_set("files/sessions.csv/sha256", 42), "files.sessions.csv.sha256: not a SHA-256 in hex"),
        (_set("files/sessions.csv/sha256", "zz" * 32), "files.sessions.csv.sha256: not a SHA-256 in hex"),
        (_set("files/sessions.csv/bytes", "12"), "files.sessions.csv.bytes: not a size in bytes"),
        (_set("files/sessions.csv/bytes", -1), "files.sessions.csv.bytes: not a size in bytes"),
        (_set("files/sessions.csv/bytes", True), "files.sessions.csv.bytes: not a size in bytes"),
        (_set("chain_head", "abc"), "chain_head: not an object"),
    ],
    ids=["list", "string", "format", "files a list", "files null", "entry a string", "entry null",
         "sha256 a number", "sha256 not hex", "bytes a string", "bytes negative", "bytes a boolean",
         "chain_head a string"],
)
def test_malformed_manifest_is_named_by_field(export, mutate, named):
    out = export().out
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(mutate(manifest)))
    ok, lines = verify_export(out)
    [line] = lines
    assert not ok and line.startswith(f"{out / 'manifest.json'}: malformed manifest: ") and named in line


@pytest.mark.integration
def test_verify_command_on_a_malformed_manifest_is_one_line(export):
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = export().out
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["sessions.csv"] = "not an object"
    (out / "manifest.json").write_text(json.dumps(manifest))
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "monitor", "verify", str(out)], capture_output=True,
                          text=True, timeout=60, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    said = f"{out / 'manifest.json'}: malformed manifest: files.sessions.csv: not an object"
    assert done.stderr.strip() == said
