"""A trust-wide export's sources checked against the central store later: its chains still hold.

A trust export, SAR or investigation from the central store names, per gateway,
the central cursor (id and hash of the last record held at its snapshot) and the
gateway's latest signed head accepted there (`monitor.store.postgres.reader.Source`).
`check_sources` asks the central store, now, whether each gateway's chain still
runs through that cursor with that hash (walked link by link with
`monitor.store.chain.walk` over `CentralStore.records`, which includes held copies
and the tombstones of dropped months), and whether each signed head is one the
central store holds, signed by a key it registered for the gateway, naming a
record of that chain. A record changed centrally, or a chain rewritten after the
export (even consistently), fails with the gateway and the record named.
Evidence records (an investigation's `evidence.jsonl`) are held to the chain too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.store.chain import GENESIS, ChainHead, Record, walk
from monitor.store.postgres.central import CentralStore
from monitor.store.postgres.heads import registered_key
from monitor.store.signing import HeadError, SignedHead, parse_public_key

_HELD_HEADS = "SELECT seq, head FROM chain_heads WHERE gateway_id = %s ORDER BY seq"


@dataclass(frozen=True, slots=True)
class SourceCheck:
    """One gateway's verdict: ok, and one line naming the gateway (and the record at fault)."""

    gateway_id: str
    ok: bool
    line: str


def check_sources(central: CentralStore, sources: Mapping[str, Any],
                  evidence: Mapping[str, Mapping[int, str]] | None = None) -> list[SourceCheck]:
    """Each gateway of `sources` (a manifest's) checked against the central store in one transaction;
    `evidence` maps a gateway to the record ids and hashes an export carries of it."""
    with central.con.transaction():
        return [_check(central, gateway, source, (evidence or {}).get(gateway, {}))
                for gateway, source in sorted(sources.items())]


def _fail(gateway: str, problem: str) -> SourceCheck:
    return SourceCheck(gateway, False, f"sources: {gateway}: {problem}")


def _cursor(source: Any) -> ChainHead:
    cursor = source["cursor"]
    record_id, hashed = cursor["record_id"], cursor["hash"]
    if not isinstance(record_id, int) or isinstance(record_id, bool) or record_id < 0 or \
            not isinstance(hashed, str):
        raise ValueError("cursor: not a record id and a hash")
    return ChainHead(record_id, hashed)


def _check(central: CentralStore, gateway: str, source: Any, evidence: Mapping[int, str]) -> SourceCheck:
    try:
        cursor = _cursor(source)
        head = SignedHead.from_dict(source["signed_head"], f"sources.{gateway}.signed_head") \
            if source.get("signed_head") is not None else None
    except (KeyError, TypeError, ValueError, AttributeError, HeadError) as exc:
        return _fail(gateway, f"malformed in the manifest ({exc})")
    try:
        anchor = central.cursor(gateway).anchor
    except LookupError:
        return _fail(gateway, "not registered with the central store (or this role may not read it)")
    if head is not None and (problem := _head_problem(central, gateway, head)):
        return _fail(gateway, problem)
    wanted = {cursor.record_id: (cursor.hash, "the cursor the export was read at")}
    if head is not None:
        wanted.setdefault(head.record_id, (head.hash, f"signed head {head.seq}"))
    for record_id, hashed in evidence.items():
        wanted.setdefault(record_id, (hashed, "an evidence record"))
    found: dict[int, str] = {anchor.record_id: anchor.hash, 0: GENESIS}
    last = max(wanted)

    def through(records: Iterator[Record]) -> Iterator[Record]:
        for record in records:
            if record[0] > last:
                return
            if record[0] in wanted:
                found[record[0]] = record[7]
            yield record

    held, fault = walk(through(iter(central.records(gateway, anchor.record_id))),
                       anchor if anchor.record_id else None, lambda *_: False)
    if fault is not None:
        return _fail(gateway, f"central chain broken at record {fault.record_id}: {fault.kind}: "
                     f"{fault.problem}")
    for record_id, (hashed, what) in sorted(wanted.items()):
        if record_id < anchor.record_id:
            return _fail(gateway, f"record {record_id} ({what}) is before the central store's anchor at "
                         f"record {anchor.record_id}: it cannot be checked")
        if record_id not in found:
            return _fail(gateway, f"record {record_id} ({what}) is no longer held centrally (the chain "
                         f"stops at record {anchor.record_id + held})")
        if found[record_id] != hashed:
            return _fail(gateway, f"record {record_id} ({what}) has hash {found[record_id][:16]}… centrally, "
                         f"the export names {hashed[:16]}…: the chain was changed or rewritten since")
    signed = f"; signed head {head.seq} (record {head.record_id}) signed by its registered key, on its " \
             "central chain" if head is not None else "; no signed head named"
    return SourceCheck(gateway, True, f"sources: {gateway}: central chain intact through record "
                       f"{cursor.record_id} ({cursor.hash[:16]}…), as at the export{signed}")


def _head_problem(central: CentralStore, gateway: str, head: SignedHead) -> str | None:
    """Why the manifest's signed head is not one the central store holds under a key it registered."""
    held = [(seq, json.loads(text)) for seq, text in central.con.execute(_HELD_HEADS, (gateway,))]
    same = next((h for seq, h in held if seq == head.seq), None)
    if same is None or SignedHead.from_dict(same, "central chain_heads").to_json() != head.to_json():
        return f"signed head {head.seq} (record {head.record_id}) is not the head {head.seq} the central " \
               "store holds (a fork: the chain was rewritten and signed again)"
    registered = registered_key(central.con, gateway)
    # a key handed on by a rotation head the central store accepted was registered until then
    keys = {registered} | {h["key"] for _, h in held if h.get("next_key")}
    if head.key not in keys:
        return f"signed head {head.seq} is not signed by the gateway's registered key"
    if problem := head.verify(parse_public_key(head.key, f"sources.{gateway}.signed_head.key")):
        return f"signed head {head.seq}: {problem}"
    return None


def evidence_hashes(lines: Iterator[dict[str, Any]]) -> dict[str, dict[int, str]]:
    """An investigation's evidence records by gateway: record id -> hash."""
    found: dict[str, dict[int, str]] = {}
    for line in lines:
        found.setdefault(str(line.get("gateway")), {})[int(line["record_id"])] = str(line["hash"])
    return found


__all__ = ["SourceCheck", "check_sources", "evidence_hashes"]
