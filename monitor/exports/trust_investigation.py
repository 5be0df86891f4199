"""An investigation export (clause 3.3) from the central store: one device or one person, every gateway.

A laptop carried between schools, or a person who works at two, is recorded by
several gateways; an investigation run on one of them misses the rest. This is
`monitor.exports.investigation` read from the central store (`CentralReader`, one
read-only snapshot): the same scope (a device's sessions whoever used it, or a
person's on any device), identified, with a case reference and a reason, and
evidence.jsonl holding the record of each session's latest version exactly as the
central store holds it, naming its gateway (session ids repeat across gateways).
Instead of one chain head the manifest names each gateway's central cursor and
signed head (``sources``); `verify DIR --against central` later checks the
evidence records and those cursors against the central store. The export is
entered in the running machine's export log as an investigation, with the case.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import structlog

from monitor.config.loader import Config
from monitor.exports.encode import write_sessions
from monitor.exports.evidence import EVIDENCE, write_gateway_evidence
from monitor.exports.investigation import (
    InvestigationRequest,
    case_log_entry,
    case_manifest,
    checked,
    scope_filter,
)
from monitor.exports.log import LogEntry, current_user, log_head
from monitor.exports.request import ExportError, ExportResult
from monitor.exports.sealed import ExportWriter, base_manifest
from monitor.exports.trust import (
    GatewayReviewColumns,
    central_log_extra,
    central_provenance,
    gateway_of,
    sources_dict,
)
from monitor.store.postgres.reader import CentralReader

log = structlog.get_logger("monitor.exports.trust_investigation")


def run_trust_investigation(config: Config, reader: CentralReader, request: InvestigationRequest, *,
                            log_path: Path | None = None, now: float | None = None, user: str | None = None,
                            signing_key: Any = None) -> ExportResult:
    """Write one investigation export from the central store and append it to the export log."""
    request = checked(request)  # before anything is read or signed
    started = time.perf_counter()
    now = time.time() if now is None else now
    user = user or current_user()
    where = scope_filter(config, request)
    sources = sources_dict(reader.sources())  # the first read of the snapshot
    export_log_head = log_head(log_path) if log_path is not None else None
    devices, owners = reader.devices_and_owners(where)
    flagged = 0
    gateways: set[str] = set()

    def count(s: Any, _device: str, _owner: str | None) -> None:
        nonlocal flagged
        flagged += s.flagged
        gateways.add(gateway_of(s))

    writer = ExportWriter(request.out)
    try:
        columns = GatewayReviewColumns(reader.reviews_by_gateway(), identified=True)
        n = write_sessions(writer, reader.sessions(where), observe=count, extra=columns)
        with writer.open_text(EVIDENCE) as fh:
            proved = write_gateway_evidence(fh, reader.gateway_evidence(where))
        if proved != n:  # one snapshot: a difference means the store does not hold what it lists
            raise ExportError(f"{n} sessions but {proved} chain records in the central store's snapshot: run "
                              "`social-monitor central verify`; nothing was exported")
        writer.add_text("README.txt", _readme(config, request, n, sources))
        manifest = base_manifest(config, "investigation", user, now)
        manifest.update(case_manifest(config, request, devices, owners, n, flagged))
        manifest.update({
            "reviews": {"reviewed": columns.reviewed, "open": columns.open},
            "gateways_in_sessions": sorted(gateways),
            **central_provenance(reader, sources),
            "export_log_head": export_log_head,
        })

        def entry_for(_log: Path, out: Path, manifest_hash: str) -> LogEntry:
            return case_log_entry(manifest, request, user, out, manifest_hash, n, owners, devices,
                                  central_log_extra(reader, sources))

        out, manifest_hash, entry = writer.seal_logged(manifest, log_path, entry_for, signing_key)
    except BaseException as exc:
        raise writer.failed(exc) from None
    seconds = time.perf_counter() - started
    log.info("trust_investigation_written", case=request.case, scope=request.scope, sessions=n,
             gateways=len(gateways), out=str(out), seconds=round(seconds, 3))
    return ExportResult(out, n, flagged, manifest_hash, seconds, entry, manifest)


def _readme(config: Config, request: InvestigationRequest, n: int, sources: dict[str, Any]) -> str:
    what = f"device {request.target}" if request.scope == "device" else f"staff id {request.target} " \
        "(sessions whose owner is this person, on any device)"
    period = f"from {request.first_day} to {request.last_day}" if request.first_day else \
        "the whole history still stored"
    cursors = ", ".join(f"{g} through record {s['cursor']['record_id']}" for g, s in sources.items())
    return (
        f"Investigation export, case {request.case}: {config.trust.name}, from the trust's central store\n\n"
        f"Scope: {what}, at every school; {period}. Sessions: {n}. Nothing outside this scope is included.\n"
        f"Reason given: {request.reason}\n\n"
        "sessions.csv / sessions.jsonl: the sessions, identified; social.gateway names the school network\n"
        "that recorded each (session ids are each gateway's own).\n"
        f"{EVIDENCE}: the hash-chain record of each session's latest version, as the central store\n"
        "holds it, with its gateway.\n"
        f"manifest.json: the SHA-256 of each file and each gateway's central cursor ({cursors or 'none'})\n"
        "and latest signed chain head, signed with this machine's key.\n\n"
        "To show the records were not altered:\n"
        "  social-monitor verify DIR --public-key KEY              (files, signature, each evidence record)\n"
        "  social-monitor verify DIR --against central --config …  (each gateway's central chain still runs\n"
        "                                                           through its cursor, signed head and\n"
        "                                                           every evidence record)\n"
    )


__all__ = ["run_trust_investigation"]
