"""The gateways' signed chain heads at the central store: received, checked, kept as the off-box anchor.

A gateway's shipper sends its latest signed head (`monitor.store.signing`, whose
module docstring is the contract) after its records. `receive_head` checks it as
that contract says: the signature under the key registered for the gateway (not
the key the head carries), `successor_problem` against the last head accepted,
and the hash of the record it names against the central copy. PostgreSQL cannot
check an Ed25519 signature, so the database checks the rest itself, whoever
inserts (a BEFORE INSERT trigger, `central_head_arrived`): the head's key is the
registered one, its number grows, the next number names the digest of the head
before, a second different head with one number is a fork, and the record it
names is the one the central store holds. Heads are never updated; a rotation
head (``next_key``) moves the registered key on. Every reader checks the
signature again (`latest_head` hands back the key to check it with).
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from monitor.errors import UserError
from monitor.store.schema import Migration
from monitor.store.signing import SignedHead, parse_public_key, successor_problem

log = structlog.get_logger("monitor.store.postgres.heads")

_HEAD_ARRIVED = """CREATE FUNCTION central_head_arrived() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    gw record;
    last record;
    h jsonb := NEW.head::jsonb;
    held text;
BEGIN
    SELECT * INTO gw FROM gateways WHERE gateway_id = NEW.gateway_id FOR UPDATE;
    IF gw.public_key IS NULL THEN
        RAISE EXCEPTION 'gateway %: no public key registered: signed heads cannot be checked', NEW.gateway_id;
    END IF;
    IF h->>'key' IS DISTINCT FROM gw.public_key THEN
        RAISE EXCEPTION 'gateway %: signed head % refused: not signed by its registered key', NEW.gateway_id,
            NEW.seq;
    END IF;
    IF (h->>'seq')::bigint IS DISTINCT FROM NEW.seq
       OR (h->>'record_id')::bigint IS DISTINCT FROM NEW.record_id
       OR h->>'hash' IS DISTINCT FROM NEW.hash OR h->>'signature' IS DISTINCT FROM NEW.signature THEN
        RAISE EXCEPTION 'gateway %: signed head % refused: its columns are not its fields', NEW.gateway_id,
            NEW.seq;
    END IF;
    SELECT seq, head INTO last FROM chain_heads WHERE gateway_id = NEW.gateway_id ORDER BY seq DESC LIMIT 1;
    IF FOUND THEN
        IF NEW.seq = last.seq AND NEW.head = last.head THEN
            RETURN NULL;  -- the same head again (a batch resent): nothing to add
        ELSIF NEW.seq <= last.seq THEN
            RAISE EXCEPTION 'gateway %: signed head % refused: head % is already held (a fork: the chain was '
                'rewritten and signed again)', NEW.gateway_id, NEW.seq, last.seq;
        ELSIF NEW.seq = last.seq + 1
              AND h->>'prev' <> encode(sha256(convert_to(last.head, 'UTF8')), 'hex') THEN
            RAISE EXCEPTION 'gateway %: signed head % refused: it does not name head % before it',
                NEW.gateway_id, NEW.seq, last.seq;
        END IF;
    END IF;
    IF NEW.record_id > gw.last_seq THEN
        RAISE EXCEPTION 'gateway %: signed head % refused: it names record %, beyond the % the central store '
            'holds', NEW.gateway_id, NEW.seq, NEW.record_id, gw.last_seq;
    END IF;
    IF NEW.record_id = gw.anchor_seq THEN
        held := gw.anchor_hash;
    ELSE
        SELECT hash INTO held FROM records WHERE gateway_id = NEW.gateway_id AND seq = NEW.record_id;
    END IF;
    IF NEW.record_id > 0 AND held IS DISTINCT FROM NEW.hash THEN
        RAISE EXCEPTION 'gateway %: signed head % refused: record % is not the one the central store holds',
            NEW.gateway_id, NEW.seq, NEW.record_id;
    END IF;
    IF h->>'next_key' IS NOT NULL THEN  -- a rotation, signed by the old key: the new one signs from now on
        UPDATE gateways SET public_key = h->>'next_key' WHERE gateway_id = NEW.gateway_id;
    END IF;
    RETURN NEW;
END $$"""


def migration() -> Migration:
    """Central schema 2: the gateways' registered public keys, and the checks on their signed heads."""
    return Migration((
        "ALTER TABLE gateways ADD COLUMN public_key TEXT CHECK (public_key ~ '^ed25519:[A-Za-z0-9+/=]+$')",
        # seq is the head's own number; record_id and hash the chain position it vouches for
        "ALTER TABLE chain_heads ADD COLUMN record_id BIGINT NOT NULL DEFAULT 0, "
        "ADD COLUMN head TEXT NOT NULL DEFAULT '{}'",
        _HEAD_ARRIVED,
        "REVOKE ALL ON FUNCTION central_head_arrived() FROM PUBLIC",
        """CREATE TRIGGER chain_head_arrived BEFORE INSERT ON chain_heads
            FOR EACH ROW EXECUTE FUNCTION central_head_arrived()""",
    ))


class HeadRefused(UserError):
    """The central store refused a signed head: a bad signature, a fork, or a record it does not hold."""


def registered_key(con: Any, gateway_id: str) -> str | None:
    row = con.execute("SELECT public_key FROM gateways WHERE gateway_id = %s", (gateway_id,)).fetchone()
    if row is None:
        raise LookupError(f"gateway {gateway_id!r} is not registered with the central store "
                          "(or this role may not read it)")
    return row[0]


def _last_head(con: Any, gateway_id: str) -> SignedHead | None:
    row = con.execute("SELECT head FROM chain_heads WHERE gateway_id = %s ORDER BY seq DESC LIMIT 1",
                      (gateway_id,)).fetchone()
    return SignedHead.from_dict(json.loads(row[0]), f"central chain_heads of {gateway_id}") if row else None


def receive_head(con: Any, gateway_id: str, head: SignedHead) -> bool:
    """Check `head` (see the module docstring) and keep it; False if it was held already (or the gateway
    has no key registered, logged: its records still ship). Raises
    `HeadRefused` naming the problem; the database refuses what this check might have let by."""
    import psycopg

    with con.transaction():
        key_text = registered_key(con, gateway_id)
        if key_text is None:  # records still ship; no anchor for this gateway until its key is registered
            log.warning("central_head_unchecked", gateway=gateway_id, seq=head.seq,
                        reason="no public key registered (CentralStore.set_public_key)")
            return False
        last = _last_head(con, gateway_id)
        if last is not None and last.to_json() == head.to_json():
            return False
        problem = head.verify(parse_public_key(key_text)) or successor_problem(last, head)
        if problem:
            raise HeadRefused(f"gateway {gateway_id}: {problem}")
        try:
            with con.transaction():
                con.execute("INSERT INTO chain_heads (gateway_id, seq, record_id, hash, signature, head) "
                            "VALUES (%s, %s, %s, %s, %s, %s)", (gateway_id, head.seq, head.record_id,
                                                                  head.hash, head.signature, head.to_json()))
        except psycopg.errors.RaiseException as exc:
            raise HeadRefused(str(exc).strip().splitlines()[0]) from None
    return True


def latest_head(con: Any, gateway_id: str) -> tuple[SignedHead, str] | None:
    """The last head the central store accepted from the gateway, and the key that signed it as the
    central store registered it (after a rotation head, the key before the rotation)."""
    head = _last_head(con, gateway_id)
    if head is None:
        return None
    key_text = registered_key(con, gateway_id) or ""
    return head, head.key if head.next_key is not None and head.next_key == key_text else key_text


__all__ = ["HeadRefused", "latest_head", "migration", "receive_head", "registered_key"]
