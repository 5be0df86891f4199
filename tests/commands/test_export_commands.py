"""`export`, `verify DIR`, `export-log`, `privacy-notice` and `sar` through `social-monitor`'s main()."""

from __future__ import annotations

import json
import shutil
import stat
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.cli import main
from monitor.exports.dates import day_bounds
from monitor.store.filter import SessionFilter
from monitor.store.sqlite import open_store
from tests.export_helpers import populate


@pytest.fixture(scope="module")
def seed(example_config, tmp_path_factory) -> Path:
    """Four weeks of Ash Grove, written once for the module."""
    path = tmp_path_factory.mktemp("seed") / "store.db"
    populate(example_config, path).close()
    return path


@pytest.fixture
def trust(example_data, write_config, tmp_path, seed) -> Path:
    """A trust config whose store (a copy of the seed) lives in tmp_path."""
    (tmp_path / "var").mkdir()
    shutil.copy(seed, tmp_path / "var" / "store.db")
    example_data["store"]["path"] = str(tmp_path / "var" / "store.db")
    return write_config(example_data)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_verify_and_log(trust, tmp_path, capsys):
    out = tmp_path / "exports" / "ash"
    code, text, err = run(capsys, "export", "--config", str(trust), "--school", "ash-secondary",
                          "--from", "2026-11-02", "--to", "2026-11-29", "--out", str(out))
    assert code == 0, err
    with open_store(tmp_path / "var" / "store.db", create=False) as store:
        expected = store.count(SessionFilter(school="ash-secondary"))
    assert f"{expected} sessions" in text and "pseudonymised" in text and "logged as export 1" in text
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700  # a new parent is private too

    code, text, err = run(capsys, "verify", str(out))
    assert code == 0, err
    assert "sessions.csv: ok" in text and "export ok" in text
    code, text, err = run(capsys, "verify", str(out), "--config", str(trust))
    assert code == 0, err
    assert "manifest.json: matches export log entry 1" in text

    csv_path = out / "sessions.csv"
    data = bytearray(csv_path.read_bytes())
    data[200] ^= 0x20
    csv_path.write_bytes(bytes(data))
    code, text, err = run(capsys, "verify", str(out))
    assert code == 1
    assert "sessions.csv: CHANGED" in err and "FAILED" in err
    code, text, err = run(capsys, "verify-export", str(out))
    assert code == 1 and "sessions.csv: CHANGED" in err

    code, text, err = run(capsys, "export-log", "--config", str(trust))
    assert code == 0, err
    lines = text.splitlines()
    assert len(lines) == 2 and "ash-secondary" in lines[1] and "2026-11-02" in lines[1]
    assert lines[1].split()[2]  # the OS user who ran it


def test_identify_without_reason_is_refused(trust, tmp_path, capsys):
    out = tmp_path / "named"
    code, _text, err = run(capsys, "export", "--config", str(trust), "--school", "ash-secondary",
                          "--from", "2026-11-02", "--to", "2026-11-29", "--out", str(out), "--identify")
    assert code != 0
    assert "--identify" in err and "--reason" in err and "nothing was exported" in err
    assert not out.exists()
    code, _text, err = run(capsys, "export-log", "--config", str(trust))
    assert "no exports yet" in err


def test_identified_export_with_reason(trust, tmp_path, capsys):
    out = tmp_path / "named"
    code, text, err = run(capsys, "export", "--config", str(trust), "--school", "ash-secondary",
                          "--from", "2026-11-02", "--to", "2026-11-29", "--out", str(out), "--identify",
                          "--reason", "INV-2026-07 (clause 3.3)", "--flagged-only")
    assert code == 0, err
    assert "ASH-LT-0002" in (out / "sessions.csv").read_text()
    code, text, err = run(capsys, "export-log", "--config", str(trust), "--format", "jsonl")
    entry = json.loads(text.splitlines()[-1])
    assert entry["identified"] and entry["flagged_only"] and entry["reason"] == "INV-2026-07 (clause 3.3)"


def test_last_week_and_out_placeholders(trust, tmp_path, capsys):
    template = str(tmp_path / "exports" / "{school}" / "{from}_{to}")
    code, _text, err = run(capsys, "export", "--config", str(trust), "--school", "ash-secondary",
                          "--last-week", "--today", "2026-11-26", "--out", template)
    assert code == 0, err
    out = tmp_path / "exports" / "ash-secondary" / "2026-11-16_2026-11-22"
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["period"]["from"], manifest["period"]["to"]) == ("2026-11-16", "2026-11-22")
    with open_store(tmp_path / "var" / "store.db", create=False) as store:
        since, until = day_bounds(date(2026, 11, 16), date(2026, 11, 22), ZoneInfo("Europe/London"))
        week = SessionFilter(school="ash-secondary", since=since, until=until)
        assert manifest["sessions"] == store.count(week) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-02"], "give --from DATE and --to DATE"),
        (["--last-week", "--from", "2026-11-02"], "--last-week replaces"),
        (["--from", "soon", "--to", "today"], "'soon' is not a date"),
        (["--from", "2026-11-02", "--to", "2026-11-29", "--school", "elm"], "not a configured school"),
    ],
)
def test_bad_arguments(trust, tmp_path, capsys, args, message):
    argv = ["export", "--config", str(trust), "--out", str(tmp_path / "x")]
    if "--school" not in args:
        argv += ["--school", "ash-secondary"]
    code, _text, err = run(capsys, *argv, *args)
    assert code == 1 and message in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_privacy_notice_command(trust, capsys, fmt):
    code, text, _err = run(capsys, "privacy-notice", "--config", str(trust), "--format", fmt)
    assert code == 0
    assert "DPIA-2026-014" in text and "90 days" in text and "trade-union" in text


def test_sar_command(trust, tmp_path, capsys):
    out = tmp_path / "sar-S2005"
    code, text, err = run(capsys, "sar", "--config", str(trust), "--staff", "S2005", "--out", str(out),
                          "--reference", "SAR-2026-003")
    assert code == 0, err
    rows = (out / "sessions.csv").read_text().splitlines()[1:]
    assert rows and all(",ASH-LT-0005," in r and ",S2005," in r for r in rows)
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "manifest.json", "reviews.jsonl",
                                                     "sessions.csv", "sessions.jsonl"]
    assert run(capsys, "verify", str(out))[0] == 0
    code, text, err = run(capsys, "export-log", "--config", str(trust))
    assert "staff S2005" in text and "SAR-2026-003" in text


@pytest.mark.parametrize(
    ("staff", "subject", "recipients"),
    [
        ("S2005", "S2005", 1),  # in the identified export made first
        ("a.patel", "S2002", 1),  # a mapped sign-in is the staff id it maps to
        ("S1001", "S1001", 0),  # nothing recorded, in no export
    ],
)
def test_sar_command_names_the_subject_forms_and_recipients(trust, tmp_path, capsys, staff, subject,
                                                            recipients):
    assert run(capsys, "export", "--config", str(trust), "--school", "ash-secondary", "--from", "2026-11-02",
               "--to", "2026-11-29", "--identify", "--reason", "INV-7", "--out", str(tmp_path / "x"))[0] == 0
    code, text, err = run(capsys, "sar", "--config", str(trust), "--staff", staff, "--out",
                          str(tmp_path / "s"))
    assert code == 0, err
    assert f"sessions about {subject} (searched " in text
    assert f"; {recipients} recipients from the export" in text
    code, text, _ = run(capsys, "export-log", "--config", str(trust))
    assert f"staff {subject}" in text


@pytest.mark.parametrize(
    ("scope", "target", "column", "period"),
    [("--device", "ASH-LT-0002", "host.id", []), ("--staff", "S2005", "user.id", []),
     ("--device", "ASH-LT-0002", "host.id", ["--from", "2026-11-16", "--to", "2026-11-22"])],
    ids=["device", "staff", "device-one-week"],
)
def test_investigation_export_through_the_cli(trust, tmp_path, capsys, scope, target, column, period):
    out = tmp_path / "inv"
    code, text, err = run(capsys, "export", "--config", str(trust), scope, target, "--case", "INV-2026-07",
                          "--reason", "laptop seized under clause 3.3", "--out", str(out), *period)
    assert code == 0, err
    rows = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
    with open_store(tmp_path / "var" / "store.db", create=False) as store:
        where = SessionFilter(**{"device" if scope == "--device" else "owner": target})
        if period:
            since, until = day_bounds(date(2026, 11, 16), date(2026, 11, 22), ZoneInfo("Europe/London"))
            where = SessionFilter(**{"device": target, "since": since, "until": until})
        assert len(rows) == store.count(where) > 0
        total = store.count()
    assert {r[column] for r in rows} == {target} and len(rows) < total  # only the scope, identified
    assert f"case INV-2026-07: {len(rows)} sessions" in text
    code, text, err = run(capsys, "verify-export", str(out), "--config", str(trust))
    assert code == 0 and "evidence.jsonl:" in text and "matches export log entry" in text, err
    code, text, err = run(capsys, "verify", "--config", str(trust), "--against", str(out))
    assert code == 0 and "holds 1 signed head" in text, err
    code, text, _ = run(capsys, "export-log", "--config", str(trust))
    assert "investigation" in text and "case INV-2026-07" in text and "YES" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "ASH-LT-0002", "--reason", "r"], "needs --case REF and --reason TEXT"),
        (["--device", "ASH-LT-0002", "--case", "C1"], "needs --case REF and --reason TEXT"),
        (["--device", "ASH-LT-0002", "--school", "ash-secondary", "--case", "C", "--reason", "r"],
         "give one of --school ID"),
        (["--staff", "S2005", "--device", "ASH-LT-0002", "--case", "C", "--reason", "r"],
         "give one of --school"),
        (["--case", "C", "--reason", "r"], "give one of --school ID"),
        (["--school", "ash-secondary", "--case", "C", "--last-week"], "--case belongs to an investigation"),
        (["--staff", "S2005", "--case", "C", "--reason", "r", "--from", "2026-11-02"],
         "give both --from and --to"),
    ],
    ids=["no-case", "no-reason", "school-and-device", "staff-and-device", "no-scope", "case-on-audit",
         "from-alone"],
)
def test_bad_investigation_arguments(trust, tmp_path, capsys, args, message):
    code, _text, err = run(capsys, "export", "--config", str(trust), "--out", str(tmp_path / "x"), *args)
    assert code == 1 and message in err, err
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "var" / "store.db.exports.jsonl").exists()
