"""Investigation exports from the central store: one device or one person, at every gateway, with evidence."""

from __future__ import annotations

import json
from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.exports.investigation import InvestigationRequest
from monitor.exports.log import read_log
from monitor.exports.request import ExportError
from monitor.exports.trust import GATEWAY_COLUMN
from monitor.exports.trust_investigation import run_trust_investigation
from monitor.exports.verify import verify_export
from monitor.store.postgres.central import CentralStore
from monitor.store.postgres.reader import CentralReader
from monitor.store.postgres.sources import check_sources, evidence_hashes
from monitor.store.sqlite import SQLiteSessionStore
from tests.central_helpers import DAY, two_schools
from tests.export_helpers import rows
from tests.store_helpers import T0, event

KEYS = {"oak": Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
        "elm": Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))}
OFFICE = Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35)))


@pytest.fixture(scope="module")
def trust(pg_server, tmp_path_factory):
    """two_schools, and oak's laptop OAK-LT-0002 carried to elm for a day (elm's session 4)."""
    from monitor.store.postgres.shipper import Shipper

    tmp = tmp_path_factory.mktemp("trust")
    name, roles, reader = two_schools(pg_server, tmp, KEYS)
    with SQLiteSessionStore(tmp / "elm.db") as store:
        store.write([event(T0 + 5 * DAY, device="OAK-LT-0002", owner="S1002", school="ash-secondary",
                           local_date="2026-09-26")])
        store.sign_head(KEYS["elm"], "interval")
    shipper = Shipper(tmp / "elm.db", pg_server.dsn(roles["elm"], name), "elm")
    shipper.ship_once()
    shipper.close()
    return pg_server.dsn(reader, name)


def _run(example_config, trust, tmp_path, scope="device", target="OAK-LT-0002", case="HR-2026-014",
         reason="disciplinary investigation", days=(None, None)):
    request = InvestigationRequest(scope, target, case, reason, tmp_path / "case", *days)
    with CentralReader(trust) as reader:
        return run_trust_investigation(example_config, reader, request, log_path=tmp_path / "log.jsonl",
                                       user="hr", signing_key=OFFICE)


@pytest.mark.parametrize(
    ("scope", "target", "days", "found"),
    [
        ("device", "OAK-LT-0002", (None, None), {("oak", 1), ("oak", 2), ("oak", 4), ("elm", 4)}),
        ("staff", "S1002", (None, None), {("oak", 1), ("oak", 4), ("elm", 4)}),
        ("device", "ASH-PC-0001", (None, None), {("elm", 1), ("elm", 3)}),
        ("device", "OAK-LT-0002", (date(2026, 9, 26), date(2026, 9, 26)), {("elm", 4)}),
        ("staff", "NOBODY", (None, None), set()),
    ],
    ids=["laptop-at-two-schools", "person-at-two-schools", "one-gateway", "one-day", "nobody"],
)
def test_the_scope_is_taken_at_every_gateway_and_nothing_else(example_config, trust, tmp_path, scope, target,
                                                              days, found):
    result = _run(example_config, trust, tmp_path, scope, target, days=days)
    exported = {(r[GATEWAY_COLUMN], int(r["social.session_id"])) for r in rows(result.out)}
    assert exported == found
    evidence = [json.loads(x) for x in (result.out / "evidence.jsonl").read_text().splitlines()]
    assert {(e["gateway"], e["session_id"]) for e in evidence} == found
    assert result.manifest["gateways_in_sessions"] == sorted({g for g, _ in found})
    ok, lines = verify_export(result.out, tmp_path / "log.jsonl", OFFICE.public_key())
    assert ok, lines


def test_each_evidence_record_is_the_central_stores(example_config, trust, tmp_path):
    result = _run(example_config, trust, tmp_path)
    evidence = [json.loads(x) for x in (result.out / "evidence.jsonl").read_text().splitlines()]
    with CentralStore(trust) as central:
        for e in evidence:
            held = central.con.execute("SELECT hash, body FROM records WHERE gateway_id = %s AND seq = %s",
                                       (e["gateway"], e["record_id"])).fetchone()
            assert (held[0], held[1]) == (e["hash"], e["body"])
        checks = check_sources(central, result.manifest["sources"], evidence_hashes(iter(evidence)))
    assert all(c.ok for c in checks), [c.line for c in checks]


def test_it_is_logged_as_an_investigation_with_the_case(example_config, trust, tmp_path):
    result = _run(example_config, trust, tmp_path, "staff", "S1002")
    entry = read_log(tmp_path / "log.jsonl").entries[-1]
    assert (entry.kind, entry.extra["case"], entry.subject) == ("investigation", "HR-2026-014", "S1002")
    assert set(entry.extra["sources"]) == {"oak", "elm"} and entry.manifest_sha256 == result.manifest_sha256
    assert result.manifest["case"] == "HR-2026-014" and result.manifest["scope"] == {"staff": "S1002"}


def _swap_gateway(line: dict) -> dict:
    return {**line, "gateway": "oak" if line["gateway"] == "elm" else "elm"}


def _alter_body(line: dict) -> dict:
    return {**line, "body": line["body"].replace("OAK-LT-0002", "OAK-LT-0003")}


def _unknown_gateway(line: dict) -> dict:
    return {**line, "gateway": "pine"}


@pytest.mark.parametrize(
    ("alter", "problem"),
    [
        (_alter_body, "evidence.jsonl:1: record"),
        (_swap_gateway, "they differ"),
        (_unknown_gateway, "gateway 'pine' is not in the manifest's sources"),
    ],
    ids=["body", "gateway-swapped", "unknown-gateway"],
)
def test_altered_evidence_is_caught(example_config, trust, tmp_path, alter, problem):
    from monitor.exports.sealed import sha256_file

    result = _run(example_config, trust, tmp_path)
    path = result.out / "evidence.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[0] = alter(lines[0])
    path.write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))
    manifest = json.loads((result.out / "manifest.json").read_text())
    digest, size = sha256_file(path)  # even with the manifest's entry rewritten to match
    manifest["files"]["evidence.jsonl"] = {"sha256": digest, "bytes": size}
    (result.out / "manifest.json").write_text(json.dumps(manifest))
    ok, out = verify_export(result.out)
    assert not ok and any(problem in x for x in out), out


@pytest.mark.parametrize(
    ("kw", "error"),
    [({"case": ""}, "needs --case REF"), ({"reason": " "}, "needs --case REF"), ({"target": ""}, "give the")],
)
def test_a_request_without_case_or_reason_reads_nothing(example_config, trust, tmp_path, kw, error):
    with pytest.raises(ExportError, match=error):
        _run(example_config, trust, tmp_path, **kw)
    assert not (tmp_path / "case").exists() and not (tmp_path / "log.jsonl").exists()
