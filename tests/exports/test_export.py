"""run_export on a realistic store: the manifest, pseudonyms, identified exports, the log, one snapshot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from monitor.exports.export import run_export
from monitor.exports.log import ExportLogError, read_log
from monitor.exports.request import ExportError, ExportRequest
from monitor.exports.verify import verify_export
from monitor.store.filter import SessionFilter
from tests.export_helpers import EVIL_HOST, FILES, FIRST, LAST, jsonl, populate, rows


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
    said = f"^{unwritable_log}: cannot read the export log: Is a directory$"
    with pytest.raises(ExportLogError, match=said):
        run_export(example_config, store, request, log_path=unwritable_log, user="head")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no temp dir left


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """The example trust as a file whose store holds the four weeks (for the command line)."""
    import shutil

    import yaml

    from monitor.config.loader import load_config
    from tests.export_helpers import populate

    folder = tmp_path_factory.mktemp("trust")
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", folder / "config")
    path = folder / "config" / "example.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["store"]["path"] = str(folder / "store.db")
    path.write_text(yaml.safe_dump(raw))
    populate(load_config(path), folder / "store.db").close()
    return path


def _can_unshare_mounts() -> bool:
    import shutil
    import subprocess

    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("mount")):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10).returncode == 0


@pytest.mark.integration
@pytest.mark.parametrize("size", ["48k", "100k", "112k"], ids=["at the JSON lines", "at the report",
                                                                "at the report or manifest"])
def test_export_on_a_full_disk_is_one_line_and_leaves_nothing(config_file, tmp_path, size):
    """A real tmpfs of `size` (the export needs 124 KiB) in a private mount namespace."""
    import subprocess
    import sys

    if not _can_unshare_mounts():
        pytest.skip("needs root, unshare and mount for a small tmpfs in a private mount namespace")
    repo = Path(__file__).resolve().parents[2]
    small = tmp_path / "small"
    small.mkdir()
    out = small / "exports" / "week"
    script = (f'mount -t tmpfs -o size={size},mode=0755 tmpfs "$1" || exit 99\n'
              '"$2" -m monitor export --config "$3" --school ash-secondary --from 2026-11-02 '
              '--to 2026-11-29 --out "$4"\n'
              'echo "exit=$?"\n'
              'find "$1" -mindepth 1 -not -name exports | sort | sed "s/^/left: /"\n')
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(small),
                           sys.executable, str(config_file), str(out)],
                          capture_output=True, text=True, timeout=120, cwd=repo,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert "exit=99" not in done.stdout, done.stderr
    # structured log lines (the signing key made, the export's signed head) are events, not the error
    errors = [line for line in done.stderr.splitlines()
              if not line.startswith(("social-monitor: config ", "{"))]
    assert errors == [f"social-monitor: no space left on device: {out}; the export was not written"], \
        done.stderr
    assert "exit=1" in done.stdout and "left: " not in done.stdout, done.stdout  # no folder, no file
    log = config_file.parent.parent / "store.db.exports.jsonl"
    assert not log.exists() or all(f"{out}" not in line for line in log.read_text().splitlines())


@pytest.mark.parametrize(("identify", "local_start"), [
    (True, "2027-06-14T11:30:42+01:00"),  # British Summer Time: the school's clock, not UTC
    (False, "2027-06-14T11:30:00+01:00"),  # and to the minute under aliases
])
def test_local_times_are_the_schools_in_summer(example_config, tmp_path, identify, local_start):
    from datetime import date

    from monitor.store.sessions import Session
    from monitor.store.sqlite import open_store
    from tests.conftest import london

    start = london(2027, 6, 14, 11, 30, 42)
    with open_store(tmp_path / "store.db") as store:
        store.write_sessions([Session(device="ASH-LT-0002", platform="youtube", school="ash-secondary",
                                      zone="classrooms", period="P3", local_date="2027-06-14",
                                      first_seen=start, last_seen=start + 60, owner="S2002")])
        day = date(2027, 6, 14)
        request = ExportRequest("ash-secondary", day, day, tmp_path / "out", identify=identify,
                                reason="check" if identify else None)
        run_export(example_config, store, request)
    [row] = rows(tmp_path / "out")
    assert row["social.local_start"] == local_start
