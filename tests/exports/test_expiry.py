"""Exports past their own retention are deleted from the exports folder, and only they; logged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from monitor.config.loader import load_config
from monitor.exports.expiry import expire_exports, export_created, upkeep
from monitor.exports.log import LogEntry, append, log_path_for, read_log

NOW = datetime(2027, 3, 1, tzinfo=UTC).timestamp()
DAY = 86400.0


def made(folder: Path, name: str, days_ago: float, kind: str = "export", case: str | None = None,
         fmt: str = "social-monitor-export") -> Path:
    d = folder / name
    d.mkdir(parents=True)
    created = datetime.fromtimestamp(NOW - days_ago * DAY, UTC).isoformat().replace("+00:00", "Z")
    (d / "manifest.json").write_text(json.dumps({"format": fmt, "kind": kind, "case": case,
                                                 "created_at": created}))
    (d / "sessions.csv").write_text("x\n")
    return d


@pytest.mark.parametrize(
    ("layout", "held", "removed", "kept_for_hold"),
    [
        ([("ash/2026-10-05_2026-10-11", 100)], set(), ["ash/2026-10-05_2026-10-11"], []),
        ([("ash/week", 89)], set(), [], []),  # younger than 90 days
        ([("ash/week", 91), ("oak/week", 10)], set(), ["ash/week"], []),
        ([("inv", 200, "investigation", "C1")], {"C1"}, [], ["inv"]),  # its case is on hold
        ([("inv", 200, "investigation", "C1")], {"C2"}, ["inv"], []),  # another case's hold
        ([("sar-1", 200, "sar")], set(), ["sar-1"], []),
        ([("notours", 200, "export", None, "someone-else")], set(), [], []),  # not a social-monitor export
        ([(".ash.partial-1-ab", 200)], set(), [], []),  # an export being written is never touched
        ([("a/b/c/d/e", 200)], set(), [], []),  # deeper than exports ever are: not walked into
    ],
    ids=["old", "young", "old-and-young", "held-case", "other-case-held", "sar", "foreign", "partial",
         "too-deep"],
)
def test_expire_exports(tmp_path, layout, held, removed, kept_for_hold):
    folder = tmp_path / "exports"
    for row in layout:
        made(folder, *row)
    (folder / "notes.txt").write_text("the folder's other files stay")
    result = expire_exports(folder, 90, NOW, held)
    assert sorted(str(p.relative_to(folder)) for p in result.removed) == removed
    assert [str(p.relative_to(folder)) for p in result.kept_for_hold] == kept_for_hold
    for name in removed:
        assert not (folder / name).exists()
    assert (folder / "notes.txt").exists()


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ({"format": "social-monitor-export", "kind": "export", "created_at": "2027-01-01T00:00:00Z"},
         (datetime(2027, 1, 1, tzinfo=UTC).timestamp(), None)),
        ({"format": "social-monitor-export", "kind": "investigation", "case": "C1",
          "created_at": "2027-01-01T00:00:00Z"}, (datetime(2027, 1, 1, tzinfo=UTC).timestamp(), "C1")),
        ({"format": "social-monitor-export", "created_at": "yesterday"}, None),
        ({"format": "other", "created_at": "2027-01-01T00:00:00Z"}, None),
        ([], None),
    ],
    ids=["export", "investigation", "bad-date", "other-format", "not-an-object"],
)
def test_export_created(tmp_path, manifest, expected):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    assert export_created(path) == expected


def test_upkeep_expires_logs_and_folds(tmp_path, example_data, write_config):
    example_data["store"]["path"] = str(tmp_path / "var" / "store.db")
    example_data["exports"] = {"retention_days": 30, "log_retention_days": 365}
    config = load_config(write_config(example_data))
    made(config.exports_folder, "old", 40)
    made(config.exports_folder, "new", 5)
    log_path = log_path_for(config.store_path)
    append(log_path, LogEntry(kind="export", at="2025-01-01T00:00:00Z", user="u", out="/x",
                              manifest_sha256="0" * 64, sessions=3))
    result = upkeep(config, set(), NOW, user="svc")
    assert [p.name for p in result.removed] == ["old"] and result.folded == 1
    check = read_log(log_path)
    assert check.ok, check.problem
    assert [x.kind for x in check.entries] == ["expired", "folded"]
    assert check.entries[0].extra["removed"] == [str(config.exports_folder / "old")]
    assert yaml.safe_load(config.snapshot(tmp_path / "snap").read_text())["exports"]["folder"] == \
        str(config.exports_folder)  # a child process reads the same folder
