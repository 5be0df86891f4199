"""The package's YAML data through its compiled JSON copies: used only while current, never stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor import datafiles


@pytest.mark.parametrize("name", datafiles.COMPILED)
def test_the_shipped_copy_is_current(name):
    """Fails after an edit to monitor/data/<name>.yaml until `python -m monitor.datafiles` is run."""
    shipped = Path(datafiles.__file__).parent / "data" / f"{name}.json"
    assert shipped.read_text("utf-8") == datafiles.compiled_text(name)


@pytest.mark.parametrize("name", datafiles.COMPILED)
def test_load_gives_what_the_yaml_says(name):
    assert datafiles.load(name) == datafiles.parse_yaml(datafiles.yaml_text(name))


YAML = "kinds:\n  vpn: [a.example]\n"


@pytest.mark.parametrize(("copy", "read_from"), [
    (lambda d: {"yaml_sha256": d, "data": {"from": "copy"}}, "copy"),
    (lambda d: {"yaml_sha256": "0" * 64, "data": {"from": "copy"}}, "yaml"),  # made from other text
    (lambda d: {"yaml_sha256": d}, "yaml"),
    (lambda d: ["not", "a", "mapping"], "yaml"),
    (lambda d: "{not json", "yaml"),
    (None, "yaml"),  # no copy shipped
])
def test_a_copy_is_used_only_when_made_from_this_text(tmp_path, monkeypatch, copy, read_from):
    (tmp_path / "x.yaml").write_text(YAML)
    if copy is not None:
        made = copy(datafiles.digest(YAML))
        (tmp_path / "x.json").write_text(made if isinstance(made, str) else json.dumps(made))
    monkeypatch.setattr(datafiles, "_data", lambda name: tmp_path / name)
    want = {"from": "copy"} if read_from == "copy" else {"kinds": {"vpn": ["a.example"]}}
    assert datafiles.load("x") == want


@pytest.mark.parametrize("text", ["1: one\n", "when: 2024-01-01\n", "true: x\n"])
def test_data_json_would_change_is_refused(tmp_path, monkeypatch, text):
    (tmp_path / "x.yaml").write_text(text)
    monkeypatch.setattr(datafiles, "_data", lambda name: tmp_path / name)
    with pytest.raises((ValueError, TypeError)):
        datafiles.compiled_text("x")
