"""The store against its anchors: its own last signed head, and heads copied off the box.

Plain SQL over the tables of `monitor.store.schema` (a DB-API connection, inside
the caller's transaction), so the central store can run the same checks. The
latest signed head is kept in ``store_meta`` (name ``signed_head``): the next one
names it, and `verify` holds the chain to it even without a copy from elsewhere.
Its earlier heads live where they were sent (the journal, the export log, the
central store); `contains` is what `verify --against` runs for each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.logsetup import get_logger
from monitor.store.chain import ChainHead
from monitor.store.signing import HeadError, SignedHead, sign
from monitor.store.transactions import own_connection

if TYPE_CHECKING:  # imported where a key is used: reading the store needs none
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = get_logger("monitor.store.anchors")

META_NAME = "signed_head"


@dataclass(frozen=True, slots=True)
class AnchorFault:
    """A head the store no longer holds: removed (records gone) or changed (a different hash there)."""

    kind: str
    record_id: int
    problem: str


def last_signed(con: Any) -> SignedHead | None:
    row = con.execute("SELECT value FROM store_meta WHERE name = ?", (META_NAME,)).fetchone()
    if not row:
        return None
    try:
        return SignedHead.from_dict(json.loads(row[0]), "store_meta.signed_head")
    except ValueError as exc:
        raise HeadError(f"store_meta.signed_head: not a signed head: {exc}") from None


def record_signed(
    con: Any, key: Ed25519PrivateKey, head: ChainHead | None, reason: str, now: float
) -> SignedHead:
    """Sign `head` (default: the chain's head now) after the store's last signed head, and keep it.

    Runs inside the caller's write transaction, so two signers never name the same head before."""
    if head is None:
        row = con.execute("SELECT id, hash FROM records ORDER BY id DESC LIMIT 1").fetchone()
        cp = con.execute("SELECT through_record, hash FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
        head = ChainHead(*row) if row else ChainHead(*cp) if cp else ChainHead(0, "0" * 64)
    return keep(con, sign(key, head, last_signed(con), reason, now))


def keep(con: Any, signed: SignedHead) -> SignedHead:
    """Make `signed` the store's last signed head (the next one names it)."""
    text = signed.to_json()
    if con.execute("UPDATE store_meta SET value = ? WHERE name = ?", (text, META_NAME)).rowcount == 0:
        con.execute("INSERT INTO store_meta (name, value) VALUES (?, ?)", (META_NAME, text))
    return signed


def sign_store_file(path: Path, key: Ed25519PrivateKey | Callable[[Any], SignedHead], head: ChainHead | None,
                    reason: str, now: float, busy_timeout: float = 10.0) -> SignedHead:
    """`record_signed` on a connection of its own: an export signs from inside its read snapshot.
    (`key` may instead make the head itself from the connection: a key rotation does.)

    The head goes to the journal as one ``chain_head_signed`` line as it is made."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # on first signing

    with own_connection(path, busy_timeout) as con:
        signed = (record_signed(con, key, head, reason, now) if isinstance(key, Ed25519PrivateKey)
                  else keep(con, key(con)))
    log.info("chain_head_signed", store=str(path), signed_head=signed.to_dict())
    return signed


def contains(con: Any, head: ChainHead, checkpoint: ChainHead | None, said: str) -> AnchorFault | None:
    """Whether the store still holds `head` (and so, its links verified, everything before it).

    `said` names the anchor in the message ("the signed head of 2026-09-21T14:13Z")."""
    if head.record_id == 0:
        return None
    row = con.execute("SELECT hash FROM records WHERE id = ?", (head.record_id,)).fetchone()
    if row is None and checkpoint is not None and checkpoint.record_id == head.record_id:
        row = (checkpoint.hash,)
    if row is not None:
        if row[0] == head.hash:
            return None
        return AnchorFault("changed", head.record_id, f"record {head.record_id} is not the one {said} names "
                           f"(hash {row[0][:16]}…, signed {head.hash[:16]}…): the chain was rewritten at or "
                           f"before record {head.record_id}")
    if checkpoint is not None and head.record_id < checkpoint.record_id:
        return None  # compacted away by retention: the checkpoint's own link was verified instead
    last = con.execute("SELECT MAX(id) FROM records").fetchone()[0] or (checkpoint.record_id if checkpoint
                                                                      else 0)
    return AnchorFault("removed", head.record_id, f"record {head.record_id}, which {said} names, is not in "
                       f"the store (its chain ends at record {last}): records were removed or renumbered")


def check_heads(
    con: Any, heads: Iterable[SignedHead], checkpoint: ChainHead | None, key: Ed25519PublicKey
) -> tuple[int, AnchorFault | str | None]:
    """Each head's signature under `key`, then `contains`; how many held, and the first that did not.

    A bad signature is a string (the head is no anchor at all); a head not held is an `AnchorFault`."""
    held = 0
    for head in heads:
        if problem := head.verify(key):
            return held, problem
        fault = contains(con, head.chain_head, checkpoint, f"signed head {head.seq} of {head.signed_at}")
        if fault is not None:
            return held, fault
        held += 1
    return held, None


__all__ = ["META_NAME", "AnchorFault", "check_heads", "contains", "keep", "last_signed", "record_signed",
           "sign_store_file"]
