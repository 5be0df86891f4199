"""A subject access request across every gateway: a person seen at two schools, under every sign-in form."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.exports.log import read_log
from monitor.exports.request import ExportError
from monitor.exports.sealed import ExportWriter
from monitor.exports.subjects import identity_forms
from monitor.exports.trust import GATEWAY_COLUMN
from monitor.exports.trust_sar import run_trust_sar, trust_subject_sessions, write_reviews
from monitor.exports.verify import verify_export
from monitor.store.postgres.reader import CentralReader
from monitor.store.reviews import Review
from tests.central_helpers import two_schools
from tests.export_helpers import rows

KEYS = {"oak": Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
        "elm": Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))}
JSMITH = {("oak", "OAK-LT-0002", "S1002"), ("oak", "OAK-LT-0002", ""),
          ("elm", "ASH-PC-0001", "TRUST\\jsmith"), ("elm", "ASH-PC-0001", "jsmith@trust.example")}


@pytest.fixture(scope="module")
def trust(pg_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trust")
    name, _, reader = two_schools(pg_server, tmp, KEYS)
    return pg_server.dsn(reader, name)


@pytest.mark.parametrize(
    ("asked", "subject", "found"),
    [
        # a person seen at two schools, under the staff id at one and two sign-in forms at the other
        ("S1002", "S1002", JSMITH),
        ("jsmith", "S1002", JSMITH),
        ("TRUST\\jsmith", "S1002", JSMITH),
        ("S2002", "S2002", {("elm", "ASH-LT-0002", "S2002")}),
        ("S1001", "S1001", {("oak", "OAK-LT-0001", "S1001")}),
        ("nobody", "nobody", set()),
    ],
)
def test_a_trust_wide_sar_finds_a_person_at_every_school(example_config, trust, tmp_path, asked, subject,
                                                          found):
    with CentralReader(trust) as reader:
        result = run_trust_sar(example_config, reader, asked, tmp_path / "sar",
                               log_path=tmp_path / "log.jsonl", user="dpo", reference="SAR-1")
    data = rows(result.out)
    assert {(r[GATEWAY_COLUMN], r["host.id"], r["user.id"]) for r in data} == found
    assert result.manifest["subject"] == subject
    assert result.manifest["gateways_in_sessions"] == sorted({g for g, _, _ in found})
    assert set(result.manifest["sources"]) == {"oak", "elm"}
    ok, lines = verify_export(result.out, log_path=tmp_path / "log.jsonl")
    assert ok, lines
    entry = read_log(tmp_path / "log.jsonl").entries[-1]
    assert (entry.kind, entry.subject, entry.sessions, entry.reason) == ("sar", subject, len(data), "SAR-1")
    assert "Searched the trust's central store, every gateway's records: elm (through record 4), oak " \
           "(through record 4)" in (result.out / "README.txt").read_text()


def test_the_sar_lists_the_reviews_of_the_persons_sessions_at_their_gateway(example_config, trust, tmp_path):
    with CentralReader(trust) as reader:
        result = run_trust_sar(example_config, reader, "jsmith", tmp_path / "sar")
    reviews = [json.loads(x) for x in (result.out / "reviews.jsonl").read_text().splitlines()]
    assert [(r["gateway"], r["session"], r["note"]) for r in reviews] == [("elm", 1, "spoke to J")]
    reviewed = {(r[GATEWAY_COLUMN], r["social.session_id"]): r["social.review.status"]
                for r in rows(result.out)}
    assert reviewed[("elm", "1")] == "reviewed" and reviewed[("oak", "1")] == "open"


def test_the_trust_sar_names_the_exports_that_included_the_person(example_config, trust, tmp_path):
    from datetime import date

    from monitor.exports.request import ExportRequest
    from monitor.exports.trust import run_trust_export

    log = tmp_path / "log.jsonl"
    with CentralReader(trust) as reader:
        run_trust_export(example_config, reader, ExportRequest("ash-secondary", date(2026, 9, 21),
                                                               date(2026, 9, 27), tmp_path / "exp"),
                         log_path=log, user="ceo")
    with CentralReader(trust) as reader:
        jsmith = run_trust_sar(example_config, reader, "S1002", tmp_path / "sar1", log_path=log)
        alone = run_trust_sar(example_config, reader, "S1001", tmp_path / "sar2", log_path=log)
    assert [r["by"] for r in jsmith.manifest["recipients"]] == ["ceo"]  # at elm, as TRUST\jsmith
    assert alone.manifest["recipients"] == []  # oak only: not in ash-secondary's export


@pytest.mark.parametrize("staff", ["", "  "])
def test_a_sar_needs_a_staff_id(example_config, trust, tmp_path, staff):
    with CentralReader(trust) as reader, pytest.raises(ExportError, match="--staff"):
        run_trust_sar(example_config, reader, staff, tmp_path / "sar")
    assert not (tmp_path / "sar").exists()


def test_subject_sessions_are_oldest_first_each_once(example_config, trust):
    with CentralReader(trust) as reader:
        found = trust_subject_sessions(reader, identity_forms(example_config, reader, "S1002"))
    keys = [(s.gateway, s.id) for s in found]
    assert len(set(keys)) == len(keys) == 5
    assert [s.first_seen for s in found] == sorted(s.first_seen for s in found)


def _review(sid: int, record: int, supersedes: int | None = None) -> Review:
    return Review(record, 0.0, sid, 1, 10, "no action", "", "why", "dpo", "root", supersedes)


@pytest.mark.parametrize(
    ("sessions", "written"),
    [
        ({("elm", 1)}, [("elm", 1, 5, False), ("elm", 1, 8, True)]),
        ({("oak", 1)}, [("oak", 1, 6, True)]),
        ({("oak", 2)}, []),
        ({("elm", 1), ("oak", 1)}, [("elm", 1, 5, False), ("elm", 1, 8, True), ("oak", 1, 6, True)]),
    ],
)
def test_write_reviews_matches_gateway_and_session(tmp_path, sessions, written):
    writer = ExportWriter(tmp_path / "out")
    reviews = {"elm": [_review(1, 5), _review(1, 8, 5)], "oak": [_review(1, 6)]}
    assert write_reviews(writer, reviews, sessions) == len(written)
    lines = [json.loads(x) for x in (writer.tmp / "reviews.jsonl").read_text().splitlines()]
    assert [(x["gateway"], x["session"], x["record_id"], x["current"]) for x in lines] == written
    writer.abort()
