"""`verify`, `purge` and `events` through the real CLI on a real file; tampering named by verify."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from monitor.cli import main
from monitor.commands.store_commands import local_time_option
from monitor.errors import UserError
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path) -> Path:
    """The example trust, with its store in tmp_path."""
    folder = tmp_path / "config"
    shutil.copytree(REPO / "config", folder)
    path = folder / "example.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["store"]["path"] = str(tmp_path / "store.db")
    path.write_text(yaml.safe_dump(raw))
    return path


def fill(db: Path, n: int = 5) -> None:
    with open_store(db) as store:
        for i in range(n):
            store.write([event(T0 + i * 1000, device=f"OAK-{i % 2:04d}")])
        store.write([event(T0 + 4000 + 10, school="ash-secondary", flags=())])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what the test's own setup logged
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def after_config_line(err: str, config: Path) -> list[str]:
    """stderr's lines after the first, which must name the config used."""
    lines = err.splitlines()
    assert lines[:1] == [f"social-monitor: config {config} (from --config)"], err
    return lines[1:]


def test_verify_ok(tmp_path, config, capsys):
    fill(tmp_path / "store.db")
    code, out, _ = run(capsys, "verify", "--config", str(config))
    assert code == 0
    assert "chain ok: 6 records, 6 sessions" in out and out.count("\n") == 1


def tamper(db: Path, sql: str, *params: object) -> None:
    con = sqlite3.connect(db)
    con.execute(sql, params)
    con.commit()
    con.close()


TAMPERING = [
    ("record body edited",
     "UPDATE records SET body = replace(body, 'facebook', 'linkedin') WHERE id = 3", "record 3 changed"),
    ("record header edited", "UPDATE records SET recorded_at = recorded_at + 1 WHERE id = 2",
     "record 2 changed"),
    ("record deleted", "DELETE FROM records WHERE id = 3", "record 3 removed"),
    ("two records deleted", "DELETE FROM records WHERE id IN (2, 3)", "records 2-3 removed"),
    ("record inserted at the end",
     "INSERT INTO records SELECT 7, 99, 1, recorded_at, body, body_sha256, hash, "
     "'f00d' || substr(hash, 5) FROM records WHERE id = 6", "record 7 inserted"),
    ("record inserted with a gap",
     "INSERT INTO records SELECT 100, 99, 1, recorded_at, body, body_sha256, prev_hash, hash "
     "FROM records WHERE id = 6", "record 100 inserted"),
    ("session row edited", "UPDATE sessions SET owner = 'staff-9999' WHERE id = 4", "session 4 changed"),
    ("session row unflagged", "UPDATE sessions SET flags = '[]', flagged = 0 WHERE id = 2",
     "session 2 changed"),
    ("session row deleted", "DELETE FROM sessions WHERE id = 5", "session 5 removed"),
    ("session row inserted",
     "INSERT INTO sessions SELECT 50, session_key, device, device_mac, asset_tag, device_kind, owner, "
     "platform, platform_name, category, school, zone, zone_kind, pupil_area, period, period_kind, week, "
     "local_date, first_seen, last_seen, observations, signals, hostnames, flags, flagged, exemption, "
     "version, 999, roles, probably_teaching, obscured_by FROM sessions WHERE id = 1", "session 50 inserted"),
]


@pytest.mark.parametrize(("sql", "named"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING])
def test_verify_names_tampering(tmp_path, config, capsys, sql, named):
    db = tmp_path / "store.db"
    fill(db)
    tamper(db, sql)
    code, _, err = run(capsys, "verify", str(db))
    assert code == 1
    assert named in err, err
    assert "Traceback" not in err


def test_purge_keeps_chain_verifiable(tmp_path, config, capsys):
    db = tmp_path / "store.db"
    fill(db)
    with open_store(db) as store:
        store.write([event(T0 + 95 * 86400, local_date="2026-12-25")])
    # 91 days after T0 (retention 90): the first six sessions go, the seventh stays
    code, out, _ = run(capsys, "purge", "--config", str(config), "--now", "2026-12-21T12:00:00Z")
    assert code == 0 and "removed 6 sessions" in out and "checkpoint at record 6" in out
    code, out, _ = run(capsys, "verify", "--config", str(config))
    # two records: the kept session's, and the purge's own (it names the sessions it removed)
    assert code == 0 and "2 records, 1 sessions" in out and "checkpoint at record 6" in out
    with open_store(db) as store:
        store.write([event(T0 + 96 * 86400, local_date="2026-12-26")])
        assert store.verify().ok
        assert store.count() == 2
        assert not store.purge_due(now=T0 + 91 * 86400 + 3600)


def test_purge_tombstones_out_of_order_records(tmp_path):
    """A session still kept sits between purged ones: their content goes, the chain stays whole."""
    with open_store(tmp_path / "s.db") as store:
        store.write([event(T0)])
        store.write([event(T0 + 80 * 86400, local_date="2026-12-10")])  # recent: kept
        store.write([event(T0 + 60, device="OAK-0009")])  # old, written after the kept one
        result = store.purge(90, now=T0 + 91 * 86400)
        assert result.sessions_removed == 2 and result.records_removed == 1
        con = sqlite3.connect(tmp_path / "s.db")
        # record 4 is the purge itself: it names sessions 1 and 3, which is what makes tombstone 3 valid
        assert con.execute("SELECT id, body IS NULL FROM records ORDER BY id").fetchall() == [
            (2, 0), (3, 1), (4, 0)]
        con.close()
        assert store.verify().ok


def test_events_formats_and_filters(tmp_path, config, capsys):
    fill(tmp_path / "store.db")
    base = ["events", "--config", str(config)]
    code, out, _ = run(capsys, *base, "--format", "jsonl", "--school", "oak-primary", "--flagged")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 5
    assert rows[0]["social.platform"] == "facebook" and rows[0]["social.signals"] == ["tls"]
    assert rows[0]["social.flags"][0]["clause"] == "4.3" and rows[0]["event.start"].endswith("Z")
    code, out, _ = run(capsys, *base, "--format", "csv", "--device", "OAK-0001", "--identified",
                       "--reason", "test")
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 3 and table[0]["host.id"] == "OAK-0001"
    code, out, _ = run(capsys, *base, "--since", "2026-09-21T16:00", "--until", "2026-09-21")
    assert len(out.splitlines()) == 1 + 3  # header; sessions from 16:00 local (15:00 UTC) that day
    code, out, _ = run(capsys, *base, "--flagged", "--school", "ash-secondary")
    assert out.splitlines()[1:] == []


def test_events_unknown_school_is_one_line(tmp_path, config, capsys):
    fill(tmp_path / "store.db")
    code, _, err = run(capsys, "events", "--config", str(config), "--school", "elm")
    [line] = after_config_line(err, config)
    assert code == 1 and "'elm' is not a configured school" in line


@pytest.mark.parametrize(
    ("content", "message", "exit_code"),
    [
        (b"this is not a database, it is a text file\n" * 100, "not an SQLite database", 1),
        # an SQLite header over garbage is a damaged store (exit 2), not a foreign file
        (b"SQLite format 3\x00" + b"\xff" * 4000, "store damaged: ", 2),
    ],
    ids=["text file", "corrupt sqlite"],
)
def test_bad_store_file_is_one_line(tmp_path, config, capsys, content, message, exit_code):
    (tmp_path / "store.db").write_bytes(content)
    for argv in (["verify", "--config", str(config)], ["events", "--config", str(config)]):
        code, _, err = run(capsys, *argv)
        assert code == exit_code and "Traceback" not in err
        [line] = after_config_line(err, config)
        assert "store.db" in line and message in line, err


def test_missing_store_is_one_line(tmp_path, config, capsys):
    code, _, err = run(capsys, "events", "--config", str(config))
    assert code == 1 and "no such store" in err


LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2026-09-30", False, datetime(2026, 9, 30, tzinfo=LONDON)),
        ("2026-09-30", True, datetime(2026, 10, 1, tzinfo=LONDON)),  # --until a day means to its end
        ("2026-09-30T08:30", True, datetime(2026, 9, 30, 8, 30, tzinfo=LONDON)),
        ("2026-09-30T08:30Z", False, datetime(2026, 9, 30, 8, 30, tzinfo=UTC)),
    ],
)
def test_local_time_option(text, end, expected):
    value = local_time_option(text, LONDON, end=end)
    assert value == expected and value.utcoffset() == expected.utcoffset()


def test_local_time_option_bad_value_is_a_user_error():
    with pytest.raises(UserError, match=r"^'30/09/2026' is not an ISO date or date-time"):
        local_time_option("30/09/2026", LONDON)


# --- events: aliases by default, names for a logged reason ------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "table"])
def test_events_are_pseudonymised_by_default(tmp_path, config, capsys, fmt):
    fill(tmp_path / "store.db")
    code, out, _ = run(capsys, "events", "--config", str(config), "--format", fmt)
    assert code == 0 and "Device 0" in out and "Staff 01" in out
    for identifying in ("OAK-0000", "OAK-0001", "staff-0001", "3c:52:82:10:00:01"):
        assert identifying not in out
    assert not (tmp_path / "store.db.exports.jsonl").exists()  # nothing identified: nothing to log


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--identified"], "--identified shows asset tags and staff ids and needs --reason"),
        (["--identified", "--reason", "  "], "needs --reason"),
        (["--user", "staff-0001", "--format", "csv"], "--user selects one person's"),  # the listing
        (["--device", "OAK-0001"], "--device selects one person's or one device's"),
        (["--device", "OAK-0001", "--reason", "why"], "add --identified"),
    ],
)
def test_identifying_listing_without_a_reason_is_refused(tmp_path, config, capsys, argv, message):
    fill(tmp_path / "store.db")
    code, out, err = run(capsys, "events", "--config", str(config), *argv)
    assert code == 1 and out == "" and message in err
    assert not (tmp_path / "store.db.exports.jsonl").exists()


@pytest.mark.parametrize(
    ("argv", "sessions", "school"),
    [
        (["--user", "staff-0001"], 6, None),
        (["--device", "OAK-0001"], 3, None),
        (["--school", "oak-primary", "--format", "csv"], 5, "oak-primary"),
        (["--format", "jsonl"], 6, None),
    ],
)
def test_identified_listing_is_logged_with_its_reason(tmp_path, config, capsys, argv, sessions, school):
    from monitor.exports.log import read_log

    fill(tmp_path / "store.db")
    code, out, err = run(capsys, "events", "--config", str(config), *argv, "--identified",
                         "--reason", "case 12 under clause 3.3")
    assert code == 0 and "OAK-000" in out and "logged as export 1" in err
    [entry] = read_log(tmp_path / "store.db.exports.jsonl").entries
    assert (entry.kind, entry.identified, entry.reason, entry.sessions, entry.school) == (
        "listing", True, "case 12 under clause 3.3", sessions, school)
    assert entry.extra["included"] and "staff-0001" not in json.dumps(entry.extra)  # whom, keyed hashes


@pytest.mark.parametrize(
    ("exports", "ages", "gone", "said"),
    [
        ({}, {"week-a": 100, "week-b": 10}, ["week-a"], "deleted 1 exports older than 90 days"),
        ({"retention_days": 7}, {"week-a": 100, "week-b": 10}, ["week-a", "week-b"],
         "deleted 2 exports older than 7 days"),
        ({"retention_days": 365}, {"week-a": 100}, [], "deleted 0 exports older than 365 days"),
    ],
    ids=["default-retention", "own-retention", "kept"],
)
def test_purge_expires_exports_in_the_exports_folder(tmp_path, config, capsys, exports, ages, gone, said):
    raw = yaml.safe_load(config.read_text())
    raw["exports"] = {**exports, "log_retention_days": 3650}
    config.write_text(yaml.safe_dump(raw))
    fill(tmp_path / "store.db")
    now = datetime(2027, 3, 1, tzinfo=UTC)
    for name, days in ages.items():
        folder = tmp_path / "exports" / "ash" / name
        folder.mkdir(parents=True)
        created = datetime.fromtimestamp(now.timestamp() - days * 86400, UTC).isoformat()
        (folder / "manifest.json").write_text(json.dumps({"format": "social-monitor-export", "kind": "export",
                                                          "created_at": created}))
    code, out, err = run(capsys, "purge", "--config", str(config), "--now", now.isoformat())
    assert code == 0, err
    assert f"{tmp_path / 'exports'}: {said}" in out
    assert sorted(p.name for p in (tmp_path / "exports" / "ash").iterdir()) == sorted(set(ages) - set(gone))
    assert "free pages given back" in out


def test_purge_migrates_a_store_from_an_earlier_release_first(tmp_path, config, capsys):
    """A v1 store (tests/data/store) is purged after its migrations, not refused by a reader's view."""
    shutil.copy(REPO / "tests" / "data" / "store" / "v1-store.db", tmp_path / "store.db")
    code, out, err = run(capsys, "purge", "--config", str(config), "--now", "2036-01-01T00:00:00Z")
    assert code == 0 and "removed" in out and "Traceback" not in err, err
    assert run(capsys, "verify", "--config", str(config))[0] == 0


def test_purge_of_a_missing_store_is_one_line(tmp_path, config, capsys):
    code, _, err = run(capsys, "purge", "--config", str(config))
    assert code != 0 and "no such store" in err and not (tmp_path / "store.db").exists()
