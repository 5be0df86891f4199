"""Signed chain heads at a real central PostgreSQL store: accepted, refused (tampered, forked), rotated."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.store.chain import ChainHead
from monitor.store.postgres.central import CentralStore
from monitor.store.postgres.heads import HeadRefused
from monitor.store.postgres.shipper import Shipper, ShipRefused
from monitor.store.signing import public_key_text, sign
from tests.central_helpers import central_db, fill, local_records

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
NOW = 1_790_000_000.0


@pytest.fixture
def shipped(pg_server, tmp_path):
    """Gateway oak with 40 records shipped, its key registered, and its first head (record 10) taken."""
    name, roles = central_db(pg_server, ["oak"])
    store = tmp_path / "oak.db"
    fill(store, 20)  # 40 records
    shipper = Shipper(store, pg_server.dsn(roles["oak"], name), "oak")
    shipper.ship_once()
    shipper.close()
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        admin.set_public_key("oak", public_key_text(KEY.public_key()))
    records = {r[0]: r[7] for r in local_records(store)}
    gateway = CentralStore(pg_server.dsn(roles["oak"], name))
    first = sign(KEY, ChainHead(10, records[10]), None, "interval", NOW)
    assert gateway.receive_head("oak", first) is True
    yield gateway, first, records, (name, roles, store)
    gateway.close()


def at(records, record_id):
    return ChainHead(record_id, records[record_id])


@pytest.mark.parametrize(
    ("make", "refused"),
    [
        (lambda first, rec: sign(KEY, at(rec, 20), first, "interval", NOW + 300), None),
        (lambda first, rec: sign(KEY, at(rec, 40), replace(first, seq=5), "interval", NOW), None),  # a gap
        (lambda first, rec: sign(OTHER, at(rec, 20), first, "interval", NOW), "not the expected key"),
        (lambda first, rec: replace(sign(KEY, at(rec, 20), first, "interval", NOW), hash=rec[21]),
         "signature does not match"),
        (lambda first, rec: sign(KEY, at(rec, 30), None, "interval", NOW), "two different signed heads"),
        (lambda first, rec: sign(KEY, at(rec, 20), replace(first, reason="export"), "interval", NOW),
         "does not name head 1"),
        (lambda first, rec: sign(KEY, ChainHead(41, "a" * 64), first, "interval", NOW), "beyond the 40"),
        (lambda first, rec: sign(KEY, ChainHead(20, "b" * 64), first, "interval", NOW),
         "record 20 is not the one the central store holds"),
    ],
    ids=["next", "after a gap", "another key", "tampered", "fork", "rewritten heads", "beyond central",
         "another record"],
)
def test_a_head_is_kept_only_when_it_holds(shipped, make, refused):
    gateway, first, records, _ = shipped
    head = make(first, records)
    if refused is None:
        assert gateway.receive_head("oak", head) is True
        assert gateway.latest_head("oak")[0] == head
    else:
        with pytest.raises(HeadRefused, match=refused):
            gateway.receive_head("oak", head)
        assert gateway.latest_head("oak")[0] == first


@pytest.mark.parametrize(
    ("make", "refused"),
    [
        (lambda first, rec: sign(KEY, at(rec, 30), None, "interval", NOW), "already held"),  # a fork
        (lambda first, rec: sign(OTHER, at(rec, 20), first, "interval", NOW), "not signed by its registered"),
        (lambda first, rec: sign(KEY, at(rec, 20), replace(first, reason="x"), "interval", NOW),
         "does not name head 1"),
        (lambda first, rec: sign(KEY, ChainHead(20, "b" * 64), first, "interval", NOW), "record 20 is not"),
    ],
    ids=["fork", "another key", "rewritten heads", "another record"],
)
def test_the_database_refuses_what_a_gateway_inserts_around_the_check(shipped, make, refused):
    """A gateway's own role writing SQL directly, past `receive_head`: the trigger still refuses."""
    gateway, first, records, _ = shipped
    head = make(first, records)
    with pytest.raises(psycopg.errors.RaiseException, match=refused):
        gateway.con.execute("INSERT INTO chain_heads (gateway_id, seq, record_id, hash, signature, head) "
                            "VALUES ('oak', %s, %s, %s, %s, %s)",
                            (head.seq, head.record_id, head.hash, head.signature, head.to_json()))


def test_the_same_head_again_adds_nothing_and_nobody_updates_one(shipped):
    gateway, first, _, _ = shipped
    assert gateway.receive_head("oak", first) is False
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        gateway.con.execute("UPDATE chain_heads SET hash = 'x'")


def test_a_rotation_head_moves_the_registered_key(shipped):
    gateway, first, records, _ = shipped
    rotation = sign(KEY, at(records, 20), first, "rotation", NOW,
                    next_key=public_key_text(OTHER.public_key()))
    assert gateway.receive_head("oak", rotation)
    assert gateway.latest_head("oak") == (rotation, public_key_text(KEY.public_key()))  # checked by the old
    after = sign(OTHER, at(records, 30), rotation, "interval", NOW)
    assert gateway.receive_head("oak", after)
    with pytest.raises(HeadRefused, match="not the expected key"):
        gateway.receive_head("oak", sign(KEY, at(records, 40), after, "interval", NOW))


def test_the_shipper_sends_the_stores_signed_head_and_stops_at_a_forked_one(shipped, pg_server):
    gateway, first, _, (name, roles, store) = shipped
    from monitor.store.sqlite import SQLiteSessionStore

    with SQLiteSessionStore(store) as local:
        for _ in range(2):  # the store's own heads 1 and 2: head 1 is a fork of the one taken above
            signed = local.sign_head(KEY, "interval")
    shipper = Shipper(store, pg_server.dsn(roles["oak"], name), "oak")
    with pytest.raises(ShipRefused, match="does not name head 1"):
        shipper.ship_once()
    shipper.close()
    assert gateway.latest_head("oak")[0] == first
    assert signed.seq == 2


@pytest.mark.parametrize(("records_first", "held"), [(True, True), (False, False)],
                         ids=["records shipped first", "head ahead of the records"])
def test_the_shipper_sends_the_stores_head_once_the_central_store_holds_its_record(
        pg_server, tmp_path, records_first, held):
    name, roles = central_db(pg_server, ["elm"])
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        admin.set_public_key("elm", public_key_text(KEY.public_key()))
    store = tmp_path / "elm.db"
    fill(store, 10)
    from monitor.store.sqlite import SQLiteSessionStore

    with SQLiteSessionStore(store) as local:
        signed = local.sign_head(KEY, "interval")
    shipper = Shipper(store, pg_server.dsn(roles["elm"], name), "elm", batch_size=5)
    shipper.ship_once(max_batches=None if records_first else 1)
    shipper.close()
    with CentralStore(pg_server.dsn(dbname=name)) as admin:
        assert admin.latest_head("elm") == ((signed, signed.key) if held else None)
