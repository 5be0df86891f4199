"""A subject access request across every gateway, from the trust's central store (UK GDPR art. 15).

A person who works at two schools is recorded by two gateways, perhaps under
two sign-in forms (`TRUST\\jsmith` at one, the staff id the login map gave at
the other). A SAR run on one gateway misses the other's records, and merging by
hand misses forms; this one searches the central store under every form of the
person's identity (`monitor.exports.subjects.identity_forms`, over the whole
trust's stored owners) and writes what a gateway's SAR writes, with the gateway
of each session and review named (session ids are per gateway), and, in the
manifest, each gateway's central cursor and latest signed head.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import structlog

from monitor.config.loader import Config
from monitor.exports.encode import write_sessions
from monitor.exports.log import LogEntry, current_user, log_head
from monitor.exports.request import ExportError, ExportResult
from monitor.exports.reviews import iso
from monitor.exports.sar import _sar_readme
from monitor.exports.sealed import ExportWriter, base_manifest
from monitor.exports.subjects import Disclosures, IdentityForms, Included, disclosures, identity_forms
from monitor.exports.trust import (
    GatewayReviewColumns,
    central_log_extra,
    central_provenance,
    gateway_of,
    sources_dict,
)
from monitor.store.filter import SessionFilter
from monitor.store.postgres.reader import CentralReader, CentralSession
from monitor.store.reviews import Review, latest

log = structlog.get_logger("monitor.exports.trust_sar")


def trust_subject_sessions(reader: CentralReader, forms: IdentityForms) -> list[CentralSession]:
    """Every session about the person at every gateway, oldest first, each once: keyed by gateway and
    session id (ids repeat across gateways), as `monitor.exports.subjects.subject_sessions` chooses them."""
    found: dict[tuple[str, int], CentralSession] = {}
    for owner in forms.owners:
        for s in reader.sessions(SessionFilter(owner=owner)):
            found[(s.gateway, s.id or 0)] = s
    for device in forms.devices:
        for s in reader.sessions(SessionFilter(device=device)):
            if s.owner is None or forms.is_theirs(s.owner):
                found[(s.gateway, s.id or 0)] = s
    return sorted(found.values(), key=lambda s: (s.first_seen, s.gateway, s.id or 0))


def write_reviews(writer: ExportWriter, reviews: dict[str, list[Review]], sessions: set[tuple[str, int]]
                  ) -> int:
    """``reviews.jsonl``: every review of the subject's sessions at every gateway, superseded ones too."""
    n = 0
    with writer.open_text("reviews.jsonl") as fh:
        for gateway, found in sorted(reviews.items()):
            current = {r.record_id for r in latest(found).values()}
            for r in found:
                if (gateway, r.session_id) in sessions:
                    entry = {**r.to_dict(), "gateway": gateway, "recorded_at": iso(r.recorded_at),
                             "current": r.record_id in current}
                    fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
                    n += 1
    return n


def run_trust_sar(
    config: Config,
    reader: CentralReader,
    staff_id: str,
    out: Path,
    *,
    log_path: Path | None = None,
    reference: str | None = None,
    now: float | None = None,
    user: str | None = None,
    signing_key: Any = None,
) -> ExportResult:
    """Everything the central store holds about one person, from every gateway, with a manifest, logged."""
    started = time.perf_counter()
    if not staff_id.strip():
        raise ExportError("--staff: give the person's staff id (as in the inventory)")
    now = time.time() if now is None else now
    user = user or current_user()
    sources = sources_dict(reader.sources())  # the first read of the snapshot
    export_log_head = log_head(log_path) if log_path is not None else None
    forms = identity_forms(config, reader, staff_id)
    given = disclosures(log_path, forms) if log_path is not None else Disclosures([], 0)
    writer = ExportWriter(out)
    try:
        flagged = 0
        keys: set[tuple[str, int]] = set()
        reviews = reader.reviews_by_gateway()
        columns = GatewayReviewColumns(reviews, identified=True)
        included = Included()
        seen_on: set[str] = set()
        at_gateways: set[str] = set()

        def count(s: Any, _device: str, _owner: str | None) -> None:
            nonlocal flagged
            flagged += s.flagged
            keys.add((gateway_of(s), s.id or 0))
            at_gateways.add(gateway_of(s))
            included.add(s)
            seen_on.add(s.device)

        n = write_sessions(writer, trust_subject_sessions(reader, forms), observe=count, extra=columns)
        n_reviews = write_reviews(writer, reviews, keys)
        readme = _sar_readme(config, forms, sorted(seen_on), n, given)
        where = ", ".join(f"{g} (through record {s['cursor']['record_id']})" for g, s in sources.items())
        readme += (f"Searched the trust's central store, every gateway's records: {where or 'none'}.\n"
                   "Each session names the gateway (school network) that recorded it (social.gateway).\n")
        writer.add_text("README.txt", readme)
        manifest = base_manifest(config, "sar", user, now)
        manifest.update({
            "scope": "trust",
            "subject": forms.staff_id,
            "devices": forms.devices,
            "searched": forms.to_dict(),
            "devices_in_sessions": sorted(seen_on),
            "gateways_in_sessions": sorted(at_gateways),
            "recipients": given.rows(),
            "recipients_unrecorded": given.unrecorded,
            "reference": reference,
            "identified": True,
            "sessions": n,
            "flagged": flagged,
            "reviews": n_reviews,
            "retention_days": config.model.retention_days,
            **central_provenance(reader, sources),
            "export_log_head": export_log_head,
        })

        def entry_for(log: Path, out: Path, manifest_hash: str) -> LogEntry:
            return LogEntry(
                kind="sar", at=manifest["created_at"], user=user, out=str(out.resolve()),
                manifest_sha256=manifest_hash, sessions=n, identified=True,
                reason=reference or "subject access request", subject=forms.staff_id,
                extra={"included": included.tokens(log), **central_log_extra(reader, sources)},
            )

        out, manifest_hash, entry = writer.seal_logged(manifest, log_path, entry_for, signing_key)
    except BaseException as exc:
        raise writer.failed(exc) from None
    seconds = time.perf_counter() - started
    log.info("trust_sar_written", sessions=n, gateways=len(at_gateways), out=str(out),
             seconds=round(seconds, 3))
    return ExportResult(out, n, flagged, manifest_hash, seconds, entry, manifest)


__all__ = ["run_trust_sar", "trust_subject_sessions", "write_reviews"]
