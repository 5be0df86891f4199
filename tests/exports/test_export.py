"""Exports on a realistic store: manifests, tampering, pseudonyms, file modes, the log, SAR."""

from __future__ import annotations

import csv
import json
import os
import stat
from datetime import date
from pathlib import Path

import pytest

from monitor.exports.dates import last_week, parse_day
from monitor.exports.export import run_export
from monitor.exports.log import read_log
from monitor.exports.pseudonyms import Pseudonymiser
from monitor.exports.request import ExportError, ExportRequest, expand_out
from monitor.exports.sar import run_sar
from monitor.exports.verify import verify_export
from monitor.store.filter import SessionFilter
from tests.export_helpers import EVIL_HOST, FIRST, LAST, populate

FILES = ("sessions.csv", "sessions.jsonl", "report.html", "manifest.json")


@pytest.fixture(scope="module")
def store(example_config, tmp_path_factory):
    s = populate(example_config, tmp_path_factory.mktemp("store") / "store.db")
    yield s
    s.close()


@pytest.fixture
def export(example_config, store, tmp_path):
    """Run an export into tmp_path/<name>, logging to tmp_path/log.jsonl."""

    def run(name: str = "out", **kw):
        request = ExportRequest(school=kw.pop("school", "ash-secondary"), first_day=kw.pop("first", FIRST),
                                last_day=kw.pop("last", LAST), out=tmp_path / name, **kw)
        return run_export(example_config, store, request, log_path=tmp_path / "log.jsonl", user="head")

    return run


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "sessions.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def jsonl(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "sessions.jsonl").read_text().splitlines()]


# --- dates and pseudonyms --------------------------------------------------------------------------

TODAY = date(2026, 11, 26)  # a Thursday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-02", date(2026, 11, 2)),
        ("today", TODAY),
        ("yesterday", date(2026, 11, 25)),
        ("7-days-ago", date(2026, 11, 19)),
        ("1-day-ago", date(2026, 11, 25)),
        (" 2026-09-01 ", date(2026, 9, 1)),
    ],
)
def test_parse_day(text, expected):
    assert parse_day(text, TODAY) == expected


@pytest.mark.parametrize("text", ["2026-13-01", "last tuesday", "-3-days-ago", ""])
def test_parse_day_refuses(text):
    with pytest.raises(ExportError, match="is not a date"):
        parse_day(text, TODAY)


@pytest.mark.parametrize(
    ("today", "monday", "sunday"),
    [
        (date(2026, 11, 26), date(2026, 11, 16), date(2026, 11, 22)),  # a Thursday
        (date(2026, 11, 23), date(2026, 11, 16), date(2026, 11, 22)),  # a Monday: the week before
        (date(2026, 11, 29), date(2026, 11, 16), date(2026, 11, 22)),  # a Sunday
    ],
)
def test_last_week(today, monday, sunday):
    assert last_week(today) == (monday, sunday)


def test_expand_out_placeholders():
    assert expand_out("/x/{school}/{from}_{to}", school="oak", now="n", **{"from": "a", "to": "b"}) == \
        Path("/x/oak/a_b")
    with pytest.raises(ExportError, match="unknown placeholder"):
        expand_out("/x/{who}", school="oak", now="n", **{"from": "a", "to": "b"})


def test_pseudonyms_stable_within_and_different_across():
    devices = [f"ASH-LT-{i:04d}" for i in range(40)]
    maps = []
    for _ in range(4):
        p = Pseudonymiser({"Device": devices})
        first = {d: p.alias("Device", d) for d in devices}
        assert {d: p.alias("Device", d) for d in reversed(devices)} == first  # stable
        assert sorted(first.values()) == [f"Device {i:02d}" for i in range(1, 41)]  # short, one each
        maps.append(first)
    assert len({tuple(m.values()) for m in maps}) == 4  # a new numbering each export


def test_pseudonym_for_value_seen_late_and_none():
    p = Pseudonymiser({"Staff": ["S1", "S2"]}, key=b"k" * 32)
    assert p.alias("Staff", None) is None
    assert p.alias("Staff", "S9") == "Staff 03"
    assert p.alias("Staff", "S9") == "Staff 03"


# --- exports -----------------------------------------------------------------------------------------


def test_export_matches_store_and_verifies(export, store):
    result = export()
    out = result.out
    assert sorted(os.listdir(out)) == sorted(FILES)
    manifest = json.loads((out / "manifest.json").read_text())
    expected = store.count(SessionFilter(school="ash-secondary"))
    assert result.sessions == expected == len(rows(out)) == len(jsonl(out)) == manifest["sessions"]
    assert manifest["flagged"] == sum(r["social.flagged"] == "true" for r in rows(out)) > 0
    head = store.chain_head()
    assert manifest["chain_head"] == {"record_id": head.record_id, "hash": head.hash}
    assert manifest["period"]["from"] == "2026-11-02" and manifest["period"]["to"] == "2026-11-29"
    assert manifest["config_fingerprint"] and manifest["created_by"] == "head"
    assert set(manifest["files"]) == {"sessions.csv", "sessions.jsonl", "report.html"}
    ok, lines = verify_export(out)
    assert ok, lines
    # guest Wi-Fi is never stored, so never exported
    assert not any(r["social.platform"] == "tiktok" for r in rows(out))
    assert all(r["social.school"] == "ash-secondary" for r in rows(out))


def test_files_are_private(export):
    out = export().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in FILES:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name


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


def test_pseudonymised_export_hides_identity_and_is_stable(export, store):
    out = export().out
    data = rows(out)
    text = "".join((out / n).read_text() for n in FILES)
    for secret in ("ASH-LT-0002", "S2002", "S2005", "3c:52:82:20:00:02"):
        assert secret not in text
    # within the export each device has exactly one alias and each alias one device (and the same for staff)
    # the store's session id would link aliases back to the store: not in a pseudonymised export
    assert all(r["social.session_id"] == "" for r in data)
    truth = {content_key(s.to_csv_row()): s for s in store.sessions(SessionFilter(school="ash-secondary"))}
    assert len(truth) == store.count(SessionFilter(school="ash-secondary"))  # the key tells sessions apart
    devices = {(truth[content_key(r)].device, r["host.id"]) for r in data}
    owners = {(truth[content_key(r)].owner, r["user.id"]) for r in data}
    for pairs in (devices, owners):
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
    assert all(r["host.id"].startswith("Device ") and r["host.mac"] == "" for r in data)
    assert {r["user.id"] for r in data} - {""} <= {f"Staff {i:02d}" for i in range(1, 10)}


def content_key(row: dict) -> tuple:
    """What tells two sessions apart without their store id (CSV string values)."""
    return tuple(str(row[k]) for k in ("event.start", "event.end", "social.platform", "social.zone",
                                       "social.period", "social.observations", "social.hostnames"))


def test_aliases_differ_across_exports(export):
    def aliases(out: Path) -> dict[tuple, str]:
        return {content_key(r): r["host.id"] + "/" + r["user.id"] for r in rows(out)}

    runs = [aliases(export(f"out{i}").out) for i in range(4)]
    assert all(set(r) == set(runs[0]) for r in runs)  # the same sessions
    assert len({tuple(sorted(r.items())) for r in runs}) > 1  # numbered differently


def test_identify_without_reason_refused_and_nothing_written(export, tmp_path):
    for reason in (None, "", "   "):
        with pytest.raises(ExportError, match="--reason"):
            export("named", identify=True, reason=reason)
    assert not (tmp_path / "named").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".named")]
    assert read_log(tmp_path / "log.jsonl").entries == []


def test_identified_export_names_devices_and_is_logged(export, tmp_path):
    result = export("named", identify=True, reason="investigation INV-7 under clause 3.3")
    data = rows(result.out)
    assert {"ASH-LT-0002", "ASH-LT-0005"} <= {r["host.id"] for r in data}
    assert "S2002" in {r["user.id"] for r in data}
    entry = read_log(tmp_path / "log.jsonl").entries[-1]
    assert entry.identified and entry.reason == "investigation INV-7 under clause 3.3"


def test_flagged_only(export, store):
    result = export(flagged_only=True)
    data = rows(result.out)
    assert len(data) == store.count(SessionFilter(school="ash-secondary", flagged=True)) > 0
    assert all(r["social.flagged"] == "true" for r in data)


def test_every_export_is_logged(export, tmp_path):
    results = [export("a"), export("b", flagged_only=True), export("c", identify=True, reason="r")]
    check = read_log(tmp_path / "log.jsonl")
    assert check.ok
    assert [e.seq for e in check.entries] == [1, 2, 3]
    for entry, result in zip(check.entries, results, strict=True):
        assert entry.user == "head" and entry.school == "ash-secondary" and entry.kind == "export"
        assert (entry.period_from, entry.period_to) == ("2026-11-02", "2026-11-29")
        assert entry.out == str(result.out.resolve())
        assert entry.manifest_sha256 == result.manifest_sha256
    assert [e.flagged_only for e in check.entries] == [False, True, False]
    assert [e.identified for e in check.entries] == [False, False, True]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"school": "elm-primary"}, "not a configured school"),
        ({"first": LAST, "last": FIRST}, "is before --from"),
    ],
)
def test_bad_requests_refused(export, kw, message):
    with pytest.raises(ExportError, match=message):
        export(**kw)


def test_existing_directory_never_overwritten(export, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export()


def test_report_escapes_hostnames(export):
    html = (export().out / "report.html").read_text()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert any(EVIL_HOST in r["social.hostnames"] for r in rows(export("again").out))


# --- subject access requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("staff", "devices", "expected"),
    [
        ("S2002", {"ASH-LT-0002"}, True),
        ("S2005", {"ASH-LT-0005"}, True),
        ("S2003", {"ASH-LT-0003"}, True),
        ("S1001", set(), False),  # owns a device with nothing recorded
        ("S0000", set(), False),  # unknown: an empty answer, still logged
    ],
)
def test_sar_contains_only_that_person(example_config, store, tmp_path, staff, devices, expected):
    result = run_sar(example_config, store, staff, tmp_path / "sar", log_path=tmp_path / "log.jsonl",
                     user="dpo")
    data = rows(result.out)
    assert bool(data) == expected
    assert {r["host.id"] for r in data} == devices
    assert all(r["user.id"] in (staff, "") for r in data)
    everything = {s.id for s in store.sessions() if s.owner == staff}
    assert {int(r["social.session_id"]) for r in data} == everything
    ok, lines = verify_export(result.out)
    assert ok, lines
    assert stat.S_IMODE((result.out / "sessions.csv").stat().st_mode) == 0o600
    entry = read_log(tmp_path / "log.jsonl").entries[-1]
    assert (entry.kind, entry.subject, entry.user, entry.sessions) == ("sar", staff, "dpo", len(data))


# --- the export's own ECS and CSV encoders match the store's ---------------------------------------


def test_ecs_and_csv_match_session_encoders(store):
    import random

    from monitor.exports.encode import session_encoder
    from monitor.observation import iso_utc
    from monitor.store.ecs import ECS_FIELDS, iso_ms, labelled_ecs_dict

    checked = 0
    encode = session_encoder()
    for s in store.sessions():
        ecs = labelled_ecs_dict(s, s.device, s.device_mac, s.owner, s.id)
        assert ecs == s.to_ecs() and list(ecs) == list(ECS_FIELDS)
        line, row = encode(s, s.device, s.device_mac, s.owner, s.id)
        assert line.endswith("\n") and line.count("\n") == 1
        assert json.loads(line) == ecs and list(json.loads(line)) == list(ECS_FIELDS)
        assert line == json.dumps(ecs, ensure_ascii=False) + "\n"
        expected = s.to_csv_row()
        got = ["" if v is None else str(v) for v in row]
        assert got == [expected[k] for k in ECS_FIELDS]
        checked += 1
    assert checked > 50
    rnd = random.Random(3)
    edges = [0.0, 1.0005, 1790000000.9995, 1790000000.9999996, -1.5, 86400.0, 86399.9999996, -0.0000004]
    for ts in [*edges, *(rnd.uniform(0, 2e9) for _ in range(3000))]:
        assert iso_ms(ts) == iso_utc(ts), ts


def test_export_reads_one_snapshot_while_the_daemon_writes(example_config, tmp_path, monkeypatch):
    from monitor.observation import Observation
    from monitor.store.sqlite import open_store
    from monitor.tagging.tagger import Tagger
    from tests.conftest import london

    store = populate(example_config, tmp_path / "live.db")
    before_head, before_count = store.chain_head(), store.count(SessionFilter(school="ash-secondary"))
    daemon = open_store(tmp_path / "live.db")
    original = store.sessions

    def racing(where):
        # the daemon records a new access in the middle of the export
        obs = Observation(london(2026, 11, 10, 9, 30), "10.20.10.41", 50000, "198.51.100.7", 443, "tcp",
                          "tls", "www.tiktok.com")
        daemon.write([Tagger(example_config).tag(obs)])
        yield from original(where)

    monkeypatch.setattr(store, "sessions", racing)
    result = run_export(example_config, store, ExportRequest("ash-secondary", FIRST, LAST, tmp_path / "o"),
                        user="head")
    assert result.sessions == before_count
    assert result.manifest["chain_head"] == {"record_id": before_head.record_id, "hash": before_head.hash}
    monkeypatch.undo()
    # written, just not in this export
    assert store.count(SessionFilter(school="ash-secondary")) == before_count + 1
    daemon.close()
    store.close()


def test_store_write_drops_unmonitored_zone(example_config, tmp_path):
    from monitor.observation import Observation
    from monitor.store.sqlite import open_store
    from monitor.tagging.tagger import Tagger
    from tests.conftest import london

    guest = Tagger(example_config).tag(Observation(london(2026, 11, 2, 11, 40), "10.20.99.5", 50000,
                                                   "198.51.100.7", 443, "tcp", "tls", "www.tiktok.com",
                                                   client_mac="3c:52:82:20:00:05"))
    assert not guest.recordable
    with open_store(tmp_path / "s.db") as store:
        store.write([guest])
        assert store.count() == 0


def test_manifest_quotes_the_export_log_head(export, tmp_path):
    first = export("a")
    assert first.manifest["export_log_head"] is None
    second = export("b")
    assert second.manifest["export_log_head"] == {"seq": 1, "hash": first.log_entry.hash}


def test_no_export_appears_without_its_log_entry(example_config, store, tmp_path):
    """The log is appended before the export is moved into place; a failed append leaves nothing."""
    unwritable_log = tmp_path / "log-is-a-directory"
    unwritable_log.mkdir()
    request = ExportRequest(school="ash-secondary", first_day=FIRST, last_day=LAST, out=tmp_path / "out",
                            identify=True, reason="investigation 3.3/2026-01")
    with pytest.raises(OSError):
        run_export(example_config, store, request, log_path=unwritable_log, user="head")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no temp dir left
