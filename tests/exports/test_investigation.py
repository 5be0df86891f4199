"""Investigation exports on a real store: only the scope asked, identified, logged with its case, provable."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from monitor.exports.evidence import EVIDENCE
from monitor.exports.investigation import InvestigationRequest, run_investigation
from monitor.exports.log import read_log
from monitor.exports.request import ExportError
from monitor.exports.reviews import COLUMNS
from monitor.exports.verify import verify_export
from monitor.store.reviews import append_review
from monitor.store.signing import load_or_create_key
from monitor.store.sqlite import open_store
from tests.store_helpers import T0, event

DAY = 86400.0
# (device, owner, days after T0, school): OAK-0001 used by two people, S2 on two devices and schools
SESSIONS = [("OAK-0001", "S1", 0, "oak-primary"), ("OAK-0001", "S2", 1, "oak-primary"),
            ("OAK-0002", "S2", 2, "ash-secondary"), ("OAK-0003", "S3", 3, "oak-primary"),
            ("OAK-0001", None, 4, "oak-primary")]


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "store.db")
    for device, owner, day, school in SESSIONS:
        s.write([event(T0 + day * DAY, device=device, owner=owner, school=school)])
    yield s
    s.close()


def investigate(config, store, tmp_path: Path, scope: str, target: str, **kw):
    request = InvestigationRequest(scope, target, kw.pop("case", "INV-1"), kw.pop("reason", "complaint"),
                                   tmp_path / kw.pop("name", "inv"), kw.pop("first", None),
                                   kw.pop("last", None))
    return run_investigation(config, store, request, log_path=tmp_path / "log.jsonl", user="dpo", **kw)


def exported(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "sessions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("scope", "target", "first", "last", "expected"),
    [
        ("device", "OAK-0001", None, None, [("OAK-0001", "S1"), ("OAK-0001", "S2"), ("OAK-0001", None)]),
        ("staff", "S2", None, None, [("OAK-0001", "S2"), ("OAK-0002", "S2")]),  # on any device, any school
        ("staff", "S3", None, None, [("OAK-0003", "S3")]),
        ("device", "OAK-0001", date(2026, 9, 22), date(2026, 9, 22), [("OAK-0001", "S2")]),  # one day
        ("device", "NO-SUCH", None, None, []),
    ],
    ids=["device-every-user", "staff-any-device", "staff-one", "device-one-day", "nothing"],
)
def test_only_the_scope_is_exported_identified(example_config, store, tmp_path, scope, target, first, last,
                                               expected):
    result = investigate(example_config, store, tmp_path, scope, target, first=first, last=last)
    rows = exported(result.out)
    assert [(r["host.id"], r["user.id"]) for r in rows] == expected
    assert result.sessions == len(expected) and result.manifest["identified"] is True
    assert result.manifest["scope"] == {scope: target} and result.manifest["case"] == "INV-1"
    assert result.manifest["staff"] == sorted({o for _, o in expected if o})
    entry = read_log(tmp_path / "log.jsonl").entries[-1]
    assert (entry.kind, entry.extra["case"], entry.reason, entry.sessions) == ("investigation", "INV-1",
                                                                              "complaint", len(expected))
    assert entry.subject == (target if scope == "staff" else None)
    assert entry.extra["staff"] == sorted({o for _, o in expected if o})  # what a SAR lists as recipients
    ok, lines = verify_export(result.out, log_path=tmp_path / "log.jsonl")
    assert ok, lines
    assert any(line.startswith(f"{EVIDENCE}: {len(expected)} chain records") for line in lines)


# OAK-0009's three sessions: flagged and reviewed twice, flagged and never reviewed, not flagged
REVIEWED, OPEN, UNFLAGGED = 0, 1, 2


@pytest.fixture
def reviewed(example_config, tmp_path):
    """An investigation of OAK-0009 after its first session was reviewed twice (the second supersedes)."""
    path = tmp_path / "reviewed.db"
    s = open_store(path)
    for day, flags in ((0, None), (1, None), (2, ())):
        kw = {} if flags is None else {"flags": flags}
        s.write([event(T0 + day * DAY, device="OAK-0009", owner="S9", **kw)])
    ids = [x.id for x in sorted(s.sessions(), key=lambda x: x.first_seen)]
    append_review(path, ids[REVIEWED], "personal use: spoken to", "first look", "weekly review", "Mrs Patel",
                  "dpo", T0 + 5 * DAY)
    append_review(path, ids[REVIEWED], "teaching use", "a lesson on, it turned out", "second look",
                  "Mr Okafor", "head", T0 + 6 * DAY)
    try:
        yield investigate(example_config, s, tmp_path, "device", "OAK-0009"), ids
    finally:
        s.close()


def csv_rows(out: Path) -> list[dict[str, str]]:
    import csv

    with (out / "sessions.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("row", "column", "value"),
    [
        (REVIEWED, "social.review.status", "reviewed"),
        (REVIEWED, "social.review.outcome", "teaching use"),  # the latest review, not the superseded one
        (REVIEWED, "social.review.by", "Mr Okafor"),
        (REVIEWED, "social.review.os_user", "head"),
        (REVIEWED, "social.review.reviewed_at", "2026-09-27T14:13:20Z"),
        (REVIEWED, "social.review.version", 1),
        (REVIEWED, "social.review.note", "a lesson on, it turned out"),  # identified: never withheld
        (REVIEWED, "social.review.reason", "second look"),
        (OPEN, "social.review.status", "open"),
        (OPEN, "social.review.outcome", None),
        (OPEN, "social.review.by", None),
        (UNFLAGGED, "social.review.status", None),
        (UNFLAGGED, "social.review.note", None),
    ],
    ids=["status", "latest-outcome", "by", "os-user", "when-utc", "version", "note", "reason",
         "open-status", "open-no-outcome", "open-no-reviewer", "unflagged-empty", "unflagged-no-note"],
)
def test_each_session_carries_its_current_review(reviewed, row, column, value):
    result, _ = reviewed
    jsonl = sorted(exported(result.out), key=lambda r: r["event.start"])[row]
    csv_row = sorted(csv_rows(result.out), key=lambda r: r["event.start"])[row]
    assert jsonl[column] == value
    assert csv_row[column] == ("" if value is None else str(value))


def test_review_columns_follow_the_ecs_ones_and_are_counted(reviewed):
    result, _ = reviewed
    with (result.out / "sessions.csv").open() as fh:
        header = fh.readline().rstrip("\n").split(",")
    assert tuple(header[-len(COLUMNS):]) == COLUMNS
    assert result.manifest["reviews"] == {"reviewed": 1, "open": 1}
    assert "current review" in (result.out / "README.txt").read_text()


def test_evidence_holds_the_stores_own_records(example_config, store, tmp_path):
    result = investigate(example_config, store, tmp_path, "staff", "S2")
    lines = [json.loads(x) for x in (result.out / EVIDENCE).read_text().splitlines()]
    for line in lines:
        session = store.session(line["session_id"])
        assert session is not None and session.record_id == line["record_id"]
        assert json.loads(line["body"])["owner"] == "S2"


def test_signed_and_checked_under_the_gateways_key(example_config, store, tmp_path):
    key = load_or_create_key(tmp_path / "key.pem")
    result = investigate(example_config, store, tmp_path, "device", "OAK-0001", signing_key=key)
    ok, lines = verify_export(result.out, public_key=key.public_key())
    assert ok and any("signed chain head" in line for line in lines), lines
    head = result.manifest["signed_head"]
    assert (head["record_id"], head["hash"]) == (result.manifest["chain_head"]["record_id"],
                                                 result.manifest["chain_head"]["hash"])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"case": ""}, "needs --case REF and --reason TEXT"),
        ({"reason": "  "}, "needs --case REF and --reason TEXT"),
        ({"case": "x;y"}, "give the case reference"),
        ({"first": date(2026, 9, 22)}, "give both --from and --to"),
        ({"first": date(2026, 9, 23), "last": date(2026, 9, 22)}, "is before --from"),
    ],
    ids=["no-case", "blank-reason", "bad-case", "from-without-to", "to-before-from"],
)
def test_refused_before_anything_is_written(example_config, store, tmp_path, kw, message):
    with pytest.raises(ExportError, match=message):
        investigate(example_config, store, tmp_path, "device", "OAK-0001", **kw)
    assert not (tmp_path / "inv").exists() and not (tmp_path / "log.jsonl").exists()


@pytest.mark.parametrize(("scope", "target", "extra", "subject", "extra_out"), [
    ("staff", "S2003", {}, "S2003", {}),
    ("device", "ASH-LT-0003", {}, None, {}),
    ("device", "ASH-LT-0003", {"central": "pg://central"}, None, {"central": "pg://central"}),
], ids=["staff-is-the-subject", "device-has-no-subject", "central-extra-kept"])
def test_case_log_entry(tmp_path, scope, target, extra, subject, extra_out):
    from monitor.exports.investigation import InvestigationRequest, case_log_entry

    request = InvestigationRequest(scope, target, "INV-9", "complaint", tmp_path / "out")
    manifest = {"created_at": "2026-11-30T12:00:00Z", "period": {"from": "2026-11-02", "to": "2026-11-27"}}
    entry = case_log_entry(manifest, request, "dpo", tmp_path / "out", "ab" * 32, 4, {"S2009", "S2003"},
                           {"ASH-LT-0003"}, extra)
    assert (entry.kind, entry.subject, entry.sessions, entry.identified, entry.reason) == (
        "investigation", subject, 4, True, "complaint")
    assert (entry.period_from, entry.period_to) == ("2026-11-02", "2026-11-27")
    assert entry.extra == {"case": "INV-9", "scope": {scope: target}, "staff": ["S2003", "S2009"],
                           "devices": ["ASH-LT-0003"], **extra_out}
