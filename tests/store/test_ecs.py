"""The session field table: JSON object, JSON lines, CSV row, report cells and SQL agree, field for field."""

from __future__ import annotations

import dataclasses
import json
import random
from zoneinfo import ZoneInfo

import pytest

from monitor.observation import Exemption, Flag, iso_utc
from monitor.store import ecs
from monitor.store.ecs import ECS_FIELDS, FIELDS, SessionField, iso_ms, make_writer
from monitor.store.sessions import Session
from monitor.store.sqlite import open_store
from tests.store_helpers import CONTACT, PUPILS, T0

LONDON = ZoneInfo("Europe/London")
EXEMPT = Exemption("marketing-team", 'posts "for" the school — ünïcode', "4.1")


def session(**changes) -> Session:
    base = Session(
        device="OAK-0001", platform="facebook", school="oak-primary", zone="classrooms", period="Lesson 1",
        local_date="2026-09-21", first_seen=T0 + 0.25, last_seen=T0 + 100.5, observations=4,
        signals=("dns", "tls"), hostnames=("m.facebook.com", "www.facebook.com"), flags=(CONTACT,),
        period_kind="contact", week="A", pupil_area=True, owner="staff-0001", asset_tag="OAK-0001",
        device_mac="3c:52:82:10:00:01", device_kind="laptop", platform_name="Facebook", category="social",
        zone_kind="classroom", id=7, version=2, record_id=9,
    )
    return dataclasses.replace(base, **changes)


# one session per row: each exercises a way a value can be absent, empty or awkward
SESSIONS = {
    "ordinary": session(),
    "no owner, MAC or kind": session(owner=None, device_mac=None, device_kind=None, asset_tag=None),
    "outside the timetable": session(period=None, period_kind="closed", week=None, flags=()),
    "unknown pupil area": session(pupil_area=None, zone_kind=None),
    "not a pupil area": session(pupil_area=False, flags=()),
    "exempt, unicode and quotes": session(flags=(CONTACT, PUPILS), exemption=EXEMPT),
    "exemption without a clause": session(exemption=Exemption("it-team", "admin")),
    "hostile hostnames": session(hostnames=('ünï,"code".youtube.com', "a\\b\n.example", "<script>")),
    "no signals, no hostnames": session(signals=(), hostnames=()),
    "no session id yet": session(id=None),
    "no platform name": session(platform_name=None, category=None),
    "zero duration": session(last_seen=T0 + 0.25, observations=1),
    "destination hidden": session(platform="", platform_name=None, category=None, flags=(), hostnames=(),
                                  signals=("wireguard",), obscured_by=("vpn",)),
    "hidden two ways, on a platform": session(obscured_by=("ech", "encrypted-dns")),
}
CASES = pytest.mark.parametrize("s", list(SESSIONS.values()), ids=list(SESSIONS))


def csv_text(value) -> str:
    """What a spreadsheet cell should read for an ECS value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(f"{v['name']} ({v['clause']})" if isinstance(v, dict) else v for v in value)
    if isinstance(value, dict):
        return value["name"]
    return str(value)


def test_the_table_names_every_field_once():
    assert len(set(ECS_FIELDS)) == len(FIELDS) == 29
    assert ECS_FIELDS[:2] == ("event.start", "event.end") and ECS_FIELDS[-1] == "social.minutes"


@CASES
def test_to_ecs_reads_the_session(s):
    record = s.to_ecs()
    assert list(record) == list(ECS_FIELDS)
    assert record["event.start"] == iso_utc(s.first_seen) and record["event.end"] == iso_utc(s.last_seen)
    assert record["event.duration"] == round((s.last_seen - s.first_seen) * 1e9)
    assert record["social.flagged"] == (bool(s.flags) and s.exemption is None)
    assert record["social.flags"] == [f.to_dict() for f in s.flags]
    assert record["social.exemption"] == (s.exemption.to_dict() if s.exemption else None)
    assert (record["host.id"], record["user.id"], record["social.session_id"]) == (s.device, s.owner, s.id)


@CASES
def test_compact_json_line_is_the_record(s):
    """`to_json`: compact between fields, values as json.dumps writes them (a byte-for-byte contract)."""
    expected = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v, ensure_ascii=False)}"
                              for k, v in s.to_ecs().items()) + "}"
    assert s.to_json() == expected


@CASES
def test_export_json_line_is_json_dumps_of_the_record(s):
    write = make_writer(json_style="spaced", csv=True, labelled=True, newline=True)
    line, _row = write(s, s.device, s.device_mac, s.owner, s.id)
    assert line == json.dumps(s.to_ecs(), ensure_ascii=False) + "\n"


@CASES
def test_csv_row_is_the_record_flattened(s):
    record = s.to_ecs()
    assert s.to_csv_row() == {name: csv_text(record[name]) for name in ECS_FIELDS}


MAC = "3c:52:82:10:00:01"


@pytest.mark.parametrize(
    ("labels", "changed"),
    [
        (("OAK-0001", MAC, "staff-0001", 7), set()),
        (("Device 01", MAC, "staff-0001", 7), {"host.id"}),
        (("OAK-0001", None, "staff-0001", 7), {"host.mac"}),
        (("OAK-0001", MAC, "Staff 02", 7), {"user.id"}),
        (("OAK-0001", MAC, "staff-0001", None), {"social.session_id"}),
    ],
)
def test_labels_replace_only_their_field(labels, changed):
    s = session()
    record = ecs.labelled_ecs_dict(s, *labels)
    assert {k for k in record if record[k] != s.to_ecs()[k]} == changed


@pytest.mark.parametrize(
    ("s", "field", "text"),
    [
        (session(), "event.start", "Mon 21 Sep 2026 15:13"),  # local time (BST)
        (session(), "event.end", "15:15"),
        (session(), "social.platform", "Facebook"),
        (session(platform_name=None), "social.platform", "facebook"),
        (session(period=None), "social.period", "Outside timetable"),
        (session(flags=(CONTACT, PUPILS)), "social.flags", "Contact time (4.3); Pupil area (4.3)"),
        (session(flags=(Flag("new_rule", "9.9", "r"),)), "social.flags", "new_rule (9.9)"),
        (session(exemption=EXEMPT), "social.exemption", "marketing-team (4.1)"),
        (session(exemption=Exemption("it-team", "admin")), "social.exemption", "it-team"),
        (session(), "social.exemption", ""),
        (session(), "social.hostnames", "m.facebook.com, www.facebook.com"),
        (session(platform="", platform_name=None, obscured_by=("vpn",)), "social.platform",
         "Destination hidden"),
        (session(exemption=EXEMPT), "social.flagged", False),
    ],
)
def test_report_cells(s, field, text):
    assert ecs.report_cells(s, s.device, None, s.owner, None, LONDON)[field] == text


@pytest.mark.parametrize(
    ("s", "platform", "obscured_by"),
    [(session(), "facebook", []),
     (session(platform="", platform_name=None, obscured_by=("vpn",)), None, ["vpn"]),
     (session(obscured_by=("ech",)), "facebook", ["ech"])],
)
def test_a_hidden_destination_has_no_platform_in_the_record(s, platform, obscured_by):
    record = s.to_ecs()
    assert (record["social.platform"], record["social.obscured_by"]) == (platform, obscured_by)


def test_sql_projection_is_the_record(tmp_path):
    """The json_object() lines parse to `to_ecs()` of the same rows, and read back the same sessions."""
    with open_store(tmp_path / "s.db") as store:
        segments = [dataclasses.replace(s, id=None, version=0, record_id=None, device=f"D{i}")
                    for i, s in enumerate(SESSIONS.values())]
        store.write_sessions(segments, now=T0 + 1000)
        stored = list(store.sessions())
        lines = list(store.ecs_json())
    assert len(stored) == len(lines) == len(SESSIONS)
    for s, line in zip(stored, lines, strict=True):
        assert json.loads(line) == s.to_ecs(), s.device
        assert list(json.loads(line)) == list(ECS_FIELDS)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, 0.0),  # seen once: no time
        (0.29, 0.0),  # under 0.005 minute rounds down
        (0.31, 0.01),  # over half a hundredth rounds up
        (60.0, 1.0),
        (100.25, 1.67),
        (7199.999, 120.0),
        (8 * 3600 + 17.5, 480.29),
    ],
)
def test_minutes_from_first_to_last_sighting(seconds, expected):
    s = session(first_seen=T0, last_seen=T0 + seconds)
    assert ecs.minutes(s.first_seen, s.last_seen) == expected
    assert s.to_ecs()["social.minutes"] == expected and s.to_csv_row()["social.minutes"] == str(expected)


def test_sql_minutes_agree_with_python_on_random_durations(tmp_path):
    rng = random.Random(18)
    segments = [session(id=None, version=0, record_id=None, device=f"D{i}", first_seen=(t := T0 + rng.random()
                        * 1e6), last_seen=t + rng.choice([0, 0.3, 17.999, 300]) + rng.random() * 3600)
                for i in range(300)]
    with open_store(tmp_path / "s.db") as store:
        store.write_sessions(segments, now=T0 + 2e6)
        stored = {s.device: s for s in store.sessions()}
        got = {json.loads(line)["host.id"]: json.loads(line)["social.minutes"] for line in store.ecs_json()}
    assert got == {d: ecs.minutes(s.first_seen, s.last_seen) for d, s in stored.items()}


def test_adding_a_field_is_one_row(monkeypatch):
    """Every writer is generated from the table: a new row appears in the JSON line and the CSV row."""
    extra = SessionField("social.extra", "s.category", "text", "category")
    monkeypatch.setattr(ecs, "FIELDS", (*FIELDS, extra))
    line, row = make_writer(json_style="spaced", csv=True, labelled=False)(session())
    assert json.loads(line)["social.extra"] == "social" and list(json.loads(line))[-1] == "social.extra"
    assert len(row) == len(FIELDS) + 1 and row[-1] == "social"


def test_caches_stay_bounded_and_correct(monkeypatch):
    monkeypatch.setattr(ecs, "CACHE_LIMIT", 3)
    write = make_writer(json_style="compact", csv=True, labelled=False)
    for i in range(20):
        s = session(hostnames=(f"h{i}.example",), zone=f"zone-{i % 5}")
        line, row = write(s)
        assert json.loads(line) == s.to_ecs() and row[12] == f"zone-{i % 5}"


@pytest.mark.parametrize(
    "ts",
    [T0, T0 + 0.0005, T0 + 0.9995, T0 + 0.999_999_7, 0.0, 951_782_400.123, 4_102_444_799.999, T0 + 1e-7,
     1.0005, 1790000000.9999996, -1.5, 86400.0, 86399.9999996, -0.0000004],
)
def test_fast_iso_matches_iso_utc(ts):
    assert iso_ms(ts) == iso_utc(ts)


def test_fast_iso_matches_iso_utc_on_random_times():
    rnd = random.Random(3)
    for ts in (rnd.uniform(0, 2e9) for _ in range(3000)):
        assert iso_ms(ts) == iso_utc(ts), ts


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=HYPERLINK(\"http://x\",\"y\").youtube.com", "'=HYPERLINK(\"http://x\",\"y\").youtube.com"),
        ("+1+cmd", "'+1+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("www.youtube.com", "www.youtube.com"),
        ("a=b", "a=b"),  # only the first character makes a formula
        ("'=x", "'=x"),
        ("", ""),
        (None, None),
    ],
)
def test_csv_cell_neutralises_formulas(value, cell):
    assert ecs.csv_cell(value) == cell


@pytest.mark.parametrize(
    ("changes", "column", "cell"),
    [
        ({"hostnames": ("=1+1.youtube.com", "www.youtube.com")}, "social.hostnames",
         "'=1+1.youtube.com;www.youtube.com"),
        ({"hostnames": ("www.youtube.com", "=1+1.youtube.com")}, "social.hostnames",
         "www.youtube.com;=1+1.youtube.com"),  # mid-cell: text already
        ({"owner": "@cmd|' /C calc'!A0"}, "user.id", "'@cmd|' /C calc'!A0"),
        ({"device": "-OAK"}, "host.id", "'-OAK"),
        ({"zone": "+zone"}, "social.zone", "'+zone"),
        ({"exemption": Exemption("=team", "why")}, "social.exemption", "'=team"),
    ],
)
def test_csv_rows_carry_no_formula_and_json_keeps_the_value(changes, column, cell):
    s = session(**changes)
    row = dict(zip(ECS_FIELDS, ecs.csv_cells(s), strict=True))
    assert row[column] == cell
    write = make_writer(json_style="spaced", csv=True, labelled=True)
    written = write(s, s.device, s.device_mac, s.owner, s.id)
    assert dict(zip(ECS_FIELDS, written[1], strict=True))[column] == cell
    raw = json.loads(s.to_json())[column]
    assert (raw["name"] if isinstance(raw, dict) else ";".join(raw) if isinstance(raw, list) else raw) == (
        cell[1:] if cell.startswith("'") else cell)
