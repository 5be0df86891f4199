"""`social-monitor hold` through the real CLI on real files: placed, listed, honoured by `purge`, released."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.exports.log import log_path_for, read_log
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event

REPO = Path(__file__).resolve().parents[2]
LATER = "2027-06-01T12:00:00Z"  # every session below is past the 90-day retention then


@pytest.fixture
def config(tmp_path) -> Path:
    """The example trust, its store in tmp_path holding four old sessions of two devices and owners."""
    folder = tmp_path / "config"
    shutil.copytree(REPO / "config", folder)
    path = folder / "example.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["store"]["path"] = str(tmp_path / "store.db")
    path.write_text(yaml.safe_dump(raw))
    with open_store(tmp_path / "store.db") as store:
        for i, (device, owner) in enumerate([("OAK-0001", "S1"), ("OAK-0001", "S2"), ("OAK-0002", "S2"),
                                             ("OAK-0002", "S3")]):
            store.write([event(T0 + i * 1000, device=device, owner=owner)])
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("scope", "target", "kept"),
    [("--device", "OAK-0001", 2), ("--staff", "S2", 2), ("--staff", "S3", 1), ("--device", "OAK-9999", 0)],
    ids=["device", "staff-on-two-devices", "staff-one", "device-unknown"],
)
def test_hold_purge_release_purge(tmp_path, config, capsys, scope, target, kept):
    c = ("--config", str(config))
    code, out, err = run(capsys, "hold", *c, "--case", "INV-7", scope, target, "--reason", "seized laptop")
    assert code == 0, err
    assert f"case INV-7: holding {scope[2:]} {target} ({kept} sessions stored now" in out
    code, out, _ = run(capsys, "hold", *c, "--list")
    assert "INV-7" in out and target in out and "open" in out
    code, out, err = run(capsys, "purge", *c, "--now", LATER)
    assert code == 0, err
    assert f"removed {4 - kept} sessions" in out
    if kept:
        assert f"kept {kept} sessions past retention under legal hold (case INV-7: {kept})" in out
    else:
        assert "legal hold" not in out
    assert run(capsys, "verify", *c)[0] == 0
    code, out, err = run(capsys, "hold", *c, "--release", "--case", "INV-7", "--reason", "case closed")
    assert code == 0 and "released" in out, err
    code, out, _ = run(capsys, "purge", *c, "--now", LATER)
    assert f"removed {kept} sessions" in out and "legal hold" not in out
    entries = read_log(log_path_for(tmp_path / "store.db"))
    assert entries.ok
    kinds = [(x.kind, x.extra.get("case"), x.sessions, x.reason) for x in entries.entries]
    assert kinds == [("hold", "INV-7", kept, "seized laptop"), ("release", "INV-7", kept, "case closed")]
    assert entries.entries[0].subject == (target if scope == "--staff" else None)  # a SAR finds it
    code, out, _ = run(capsys, "export-log", *c)
    assert "case INV-7" in out and "chain record" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--case", "INV-1", "--device", "OAK-0001"], "a hold needs --reason TEXT"),
        (["--device", "OAK-0001", "--reason", "r"], "--case None: give the case reference"),
        (["--case", "INV-1", "--reason", "r"], "give --device ASSET or --staff ID"),
        (["--case", "INV-1", "--device", "OAK-0001", "--staff", "S1", "--reason", "r"],
         "give --device ASSET or --staff ID"),
        (["--case", "bad\ncase", "--device", "OAK-0001", "--reason", "r"], "give the case reference"),
        (["--release", "--case", "INV-1", "--reason", "r"], "no open hold has that case"),
        (["--release", "--case", "INV-1"], "releasing a hold needs --reason TEXT"),
        (["--release", "--case", "INV-1", "--device", "OAK-0001", "--reason", "r"],
         "--release ends every hold of the case"),
    ],
    ids=["no-reason", "no-case", "no-scope", "two-scopes", "bad-case", "release-unknown", "release-no-reason",
         "release-with-scope"],
)
def test_bad_holds_are_one_line_and_write_nothing(tmp_path, config, capsys, argv, message):
    db = tmp_path / "store.db"
    with open_store(db, create=False) as store:
        head = store.chain_head()
    code, _out, err = run(capsys, "hold", "--config", str(config), *argv)
    assert code != 0 and message in err and "Traceback" not in err, err
    with open_store(db, create=False) as store:
        assert store.chain_head() == head
    assert not log_path_for(db).exists()


def test_hold_needs_an_existing_store(tmp_path, config, capsys):
    (tmp_path / "store.db").unlink()
    code, _, err = run(capsys, "hold", "--config", str(config), "--case", "C", "--staff", "S1",
                       "--reason", "r")
    assert code != 0 and "no such store" in err
    assert not (tmp_path / "store.db").exists()


def test_a_device_held_by_its_mac_is_normalised(tmp_path, config, capsys):
    code, out, _ = run(capsys, "hold", "--config", str(config), "--case", "C", "--device",
                       "AA-BB-CC-00-11-22", "--reason", "r")
    assert code == 0 and "device aa:bb:cc:00:11:22" in out
