"""A trust export's sources against a real central store later: cursors and signed heads, per gateway."""

from __future__ import annotations

import copy

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.store.chain import body_digest, record_hash
from monitor.store.postgres.central import CentralStore
from monitor.store.postgres.reader import CentralReader
from monitor.store.postgres.sources import check_sources, evidence_hashes
from monitor.store.signing import SignedHead, public_key_text
from tests.central_helpers import two_schools
from tests.pg_server import SUPERUSER

KEYS = {"oak": Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
        "elm": Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))}
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))


@pytest.fixture
def trust(pg_server, tmp_path):
    """Two gateways shipped; the sources a trust export reads (as its manifest holds them); the owner."""
    from monitor.exports.trust import sources_dict

    name, _, reader = two_schools(pg_server, tmp_path, KEYS)
    with CentralReader(pg_server.dsn(reader, name)) as snapshot:
        sources = sources_dict(snapshot.sources())
    with CentralStore(pg_server.dsn(reader, name)) as central, \
            CentralStore(pg_server.dsn(SUPERUSER, name)) as owner:
        yield central, owner, sources


def change_body(owner: CentralStore, _sources: dict) -> None:
    """An owner edits one record's content in place."""
    owner.con.execute("UPDATE records SET body = replace(body, 'OAK-LT-0001', 'OAK-LT-0009') "
                      "WHERE gateway_id = 'oak' AND seq = 3")


def rewrite_chain(owner: CentralStore, _sources: dict) -> None:
    """An owner rewrites oak's chain from record 2 consistently: every link and digest recomputed."""
    rows = owner.con.execute("SELECT seq, session_id, version, recorded_at, body, prev_hash FROM records "
                             "WHERE gateway_id = 'oak' ORDER BY seq").fetchall()
    prev = rows[0][5]
    for seq, sid, version, at, body, old_prev in rows:
        if seq >= 2:
            body = body.replace("OAK-LT-0002", "OAK-LT-0007")
        prev = old_prev if seq == 1 else prev
        digest = body_digest(body)
        hashed = record_hash(seq, sid, version, at, digest, prev)
        owner.con.execute("UPDATE records SET body = %s, body_sha256 = %s, prev_hash = %s, hash = %s "
                          "WHERE gateway_id = 'oak' AND seq = %s", (body, digest, prev, hashed, seq))
        prev = hashed


def replace_key(owner: CentralStore, _sources: dict) -> None:
    owner.set_public_key("oak", public_key_text(OTHER.public_key()))


def forged_head(_owner: CentralStore, sources: dict) -> None:
    """The manifest names a head with oak's number but signed by another key."""
    head = SignedHead.from_dict(sources["oak"]["signed_head"], "test")
    forged = SignedHead(head.seq, head.record_id, head.hash, head.signed_at, head.reason, head.prev,
                        public_key_text(OTHER.public_key()))
    sources["oak"]["signed_head"] = forged.to_dict()


def unknown_gateway(_owner: CentralStore, sources: dict) -> None:
    sources["pine"] = copy.deepcopy(sources["oak"])


def malformed_cursor(_owner: CentralStore, sources: dict) -> None:
    sources["oak"]["cursor"] = {"record_id": "four", "hash": "x"}


def cursor_beyond(_owner: CentralStore, sources: dict) -> None:
    sources["oak"]["cursor"] = {"record_id": 9, "hash": "0" * 64}


@pytest.mark.parametrize(
    ("tamper", "gateway", "problem"),
    [
        (change_body, "oak", "central chain broken at record 3: changed"),
        (rewrite_chain, "oak", "record 4 (the cursor the export was read at) has hash"),
        (replace_key, "oak", "signed head 1 is not signed by the gateway's registered key"),
        (forged_head, "oak", "is not the head 1 the central store holds"),
        (unknown_gateway, "pine", "not registered with the central store"),
        (malformed_cursor, "oak", "malformed in the manifest"),
        (cursor_beyond, "oak", "record 9 (the cursor the export was read at) is no longer held centrally"),
    ],
    ids=lambda x: getattr(x, "__name__", None),
)
def test_a_change_after_the_export_fails_naming_the_gateway_and_record(trust, tamper, gateway, problem):
    central, owner, sources = trust
    central.chain_batch = 1  # each record a batch of its own: a fault after the first batch is still found
    tamper(owner, sources)
    checks = {c.gateway_id: c for c in check_sources(central, sources)}
    assert not checks[gateway].ok and problem in checks[gateway].line, checks[gateway].line
    assert checks["elm"].ok, checks["elm"].line  # the other gateway still holds


@pytest.mark.parametrize("batch", [1, 2, 5000], ids=lambda b: f"batch-{b}")
def test_untouched_sources_hold(trust, batch):
    central, _, sources = trust
    central.chain_batch = batch
    checks = check_sources(central, sources)
    assert [(c.gateway_id, c.ok) for c in checks] == [("elm", True), ("oak", True)]
    assert "central chain intact through record 4" in checks[1].line and "signed head 1" in checks[1].line


@pytest.mark.parametrize(
    ("evidence", "ok", "problem"),
    [
        ({"oak": {2: "held"}}, True, ""),
        ({"oak": {2: "f" * 64}}, False, "record 2 (an evidence record) has hash"),
        ({"oak": {7: "f" * 64}}, False, "record 7 (an evidence record) is no longer held centrally"),
    ],
)
def test_evidence_records_are_held_to_the_central_chain(trust, evidence, ok, problem):
    central, owner, sources = trust
    if evidence["oak"].get(2) == "held":
        held = owner.con.execute("SELECT hash FROM records WHERE gateway_id = 'oak' AND seq = 2").fetchone()
        evidence = {"oak": {2: held[0]}}
    oak = next(c for c in check_sources(central, sources, evidence) if c.gateway_id == "oak")
    assert oak.ok is ok and problem in oak.line, oak.line


def test_evidence_hashes_groups_by_gateway():
    lines = [{"gateway": "oak", "record_id": 2, "hash": "a"},
             {"gateway": "elm", "record_id": "3", "hash": "b"}]
    assert evidence_hashes(iter(lines)) == {"oak": {2: "a"}, "elm": {3: "b"}}
