"""evidence.jsonl: the chain record behind every session of an investigation export, and its check.

An investigation (clause 3.3) must show that the records were not altered. The
export carries, beside the sessions, the record of each session's latest
version exactly as the store's hash chain holds it: its header, its body (the
session in canonical JSON) and its hash. Anyone can then recompute, without the
gateway, that each body has its digest and each header its hash; the manifest's
signed chain head (and `social-monitor verify --against DIR` on the gateway)
shows that the chain those records belong to is the one the gateway signed and
still holds, up to and past every one of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from monitor.store.chain import Record, body_digest, record_hash

EVIDENCE = "evidence.jsonl"
FIELDS = ("record_id", "session_id", "version", "recorded_at", "body", "body_sha256", "prev_hash", "hash")


def write_evidence(fh: Any, records: Iterable[Record]) -> int:
    """One JSON line per record, in chain order; returns how many."""
    n = 0
    for record in records:
        line = dict(zip(FIELDS, record, strict=True))
        fh.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n


def write_gateway_evidence(fh: Any, rows: Iterable[tuple[str, Record]]) -> int:
    """As `write_evidence`, each line naming the gateway whose chain holds it (from the central store)."""
    n = 0
    for gateway, record in rows:
        line = {**dict(zip(FIELDS, record, strict=True)), "gateway": gateway}
        fh.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n


def _head_of(manifest: dict[str, Any]) -> Any:
    """The last record id each evidence line may name: the chain head, or (from the central store) the
    cursor of the line's gateway in the manifest's sources."""
    sources = manifest.get("sources")
    if isinstance(sources, dict):
        return lambda gateway: int(sources[gateway]["cursor"]["record_id"]) if gateway in sources else -1
    head_id = int((manifest.get("chain_head") or {}).get("record_id") or 0)
    return lambda _gateway: head_id


def record_problem(line: dict[str, Any], head_id: int) -> str | None:
    """Why one evidence line is not a record of the chain the manifest anchors, or None."""
    try:
        rid, sid, version = int(line["record_id"]), int(line["session_id"]), int(line["version"])
        at, body, digest = float(line["recorded_at"]), line["body"], str(line["body_sha256"])
        prev, stored = str(line["prev_hash"]), str(line["hash"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"not an evidence record ({exc})"
    if not isinstance(body, str) or body_digest(body) != digest:
        return f"record {rid}: the session's content does not match its digest (altered)"
    if record_hash(rid, sid, version, at, digest, prev) != stored:
        return f"record {rid}: its hash does not match its fields (altered)"
    if rid > head_id:
        return f"record {rid}: after the chain head the manifest names ({head_id})"
    return None


def check_evidence(directory: Path, manifest: dict[str, Any]) -> tuple[bool, str]:
    """Every record holds, one per session exported, and each is the session exported beside it (sessions
    keyed by gateway and id when the export came from the central store: ids repeat across gateways)."""
    head_of = _head_of(manifest)
    ids: list[tuple[str, int]] = []
    try:
        with (directory / EVIDENCE).open(encoding="utf-8") as fh:
            for lineno, text in enumerate(fh, 1):
                line = json.loads(text)
                gateway = line.get("gateway") or ""
                head_id = head_of(gateway)
                if head_id < 0:
                    return False, f"{EVIDENCE}:{lineno}: gateway {gateway!r} is not in the manifest's sources"
                if problem := record_problem(line, head_id):
                    where = f" of gateway {gateway}" if gateway else ""
                    return False, f"{EVIDENCE}:{lineno}: {problem}{where}"
                body = json.loads(line["body"])
                if body.get("id", line["session_id"]) != line["session_id"]:
                    return False, f"{EVIDENCE}:{lineno}: record {line['record_id']} is not session " \
                                  f"{line['session_id']}'s"
                ids.append((gateway, int(line["session_id"])))
        with (directory / "sessions.jsonl").open(encoding="utf-8") as fh:
            rows = [json.loads(t) for t in fh if t.strip()]
            exported = sorted((r.get("social.gateway") or "", int(r["social.session_id"])) for r in rows)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"{EVIDENCE}: cannot be checked: {exc}"
    if sorted(ids) != exported:
        return False, f"{EVIDENCE}: {len(ids)} records for {len(exported)} sessions exported: they differ"
    bound = "its gateway's central cursor" if isinstance(manifest.get("sources"), dict) else \
        f"the chain head (record {head_of('')})"
    return True, f"{EVIDENCE}: {len(ids)} chain records, each hash recomputed, one per session exported, " \
                 f"all at or before {bound}"


__all__ = ["EVIDENCE", "check_evidence", "record_problem", "write_evidence", "write_gateway_evidence"]
